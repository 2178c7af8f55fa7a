"""Shared pytest configuration: async tests run on asyncio through anyio's plugin; tests
marked ``slow`` (long VM and cluster tests) are skipped unless ``KOS_SLOW=1``."""

import os

import pytest


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
