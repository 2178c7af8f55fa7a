"""``kos.resources.lazy.logger``: a module-level logger that costs no structlog import until a
line is logged, and then logs through the structlog configuration in force at that moment
(machined configures structlog after its first API answer)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import io, json, sys
from kos.resources.lazy import logger
log = logger("kos.test")
before = "structlog" in sys.modules
import structlog
out = io.StringIO()
structlog.configure(processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
                    logger_factory=structlog.PrintLoggerFactory(out))
log.info("hello", n=1)
print(json.dumps({"before": before, "line": json.loads(out.getvalue())}))
"""


def test_structlog_is_imported_on_the_first_line_and_its_configuration_applies() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["before"] is False
    assert got["line"] == {"n": 1, "event": "hello", "level": "info"}
