"""Shared pytest configuration: async tests run on asyncio through anyio's plugin; tests
marked ``slow`` (long VM and cluster tests) are skipped unless ``KOS_SLOW=1``.

Hypothesis runs without a per-example deadline: the machine is shared (load 10-20 while a
Kubernetes build runs), and one example taking 0.5 s there says nothing about the property.
A test's own ``@settings`` still wins for everything it sets.

Logged exceptions are rendered as plain tracebacks in tests: structlog's default (rich, with
every frame's locals) costs 25-150 ms per logged error, which timing tests of retry and
backoff would otherwise measure."""

import os

import pytest
import structlog
from hypothesis import HealthCheck, settings

settings.register_profile("kos", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kos")

structlog.configure(processors=[*structlog.get_config()["processors"][:-1],
                                structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("KOS_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test: set KOS_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
