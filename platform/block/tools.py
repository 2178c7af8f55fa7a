"""Running the disk tools (partx, mkfs.*, mount, wipefs...) from async code."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

import anyio
import structlog

log = structlog.get_logger("kos.platform.block")


class ToolError(RuntimeError):
    """A disk tool failed; the message carries the command, exit code and its stderr."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"{' '.join(argv)} failed (exit {returncode}): {stderr.strip() or 'no output'}")


async def run(*argv: str, env: Mapping[str, str] | None = None, check: bool = True) -> str:
    """Run a command without a shell; return stdout; ToolError when it fails."""
    full_env = {**os.environ, **env} if env else None
    log.debug("run", argv=list(argv))
    result = await anyio.run_process(list(argv), check=False, env=full_env, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise ToolError(argv, result.returncode, result.stderr.decode(errors="replace"))
    return result.stdout.decode(errors="replace")
