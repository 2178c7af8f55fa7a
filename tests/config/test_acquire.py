"""Config sources: kernel cmdline parsing and URL fetching (file://, real HTTP on loopback,
unreachable hosts, bad schemes)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kos.controllers.config.acquire import AcquireError, config_url, fetch

pytestmark = pytest.mark.anyio


def test_config_url_from_cmdline() -> None:
    assert config_url("console=ttyS0 kos.config=http://10.0.0.1/c.yaml quiet") == "http://10.0.0.1/c.yaml"
    assert config_url("kos.config=file:///a kos.config=file:///b") == "file:///b"
    assert config_url("console=ttyS0 kos.config=") is None
    assert config_url("kos.configx=1 talos.config=2") is None
    assert config_url('a="unbalanced') is None


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "c.yaml").write_text("version: v1alpha1\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(tmp_path), **kw)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


async def test_fetch_http_and_file(http_server: str, tmp_path: Path) -> None:
    assert await fetch(f"{http_server}/c.yaml", attempts=1) == b"version: v1alpha1\n"
    p = tmp_path / "local.yaml"
    p.write_text("x: 1\n")
    assert await fetch(f"file://{p}", attempts=1) == b"x: 1\n"


async def test_fetch_errors_name_the_url_and_the_reason(http_server: str, tmp_path: Path) -> None:
    with pytest.raises(AcquireError, match=r"HTTP 404.*after 2 attempts"):
        await fetch(f"{http_server}/missing.yaml", attempts=2, delay=0.01)
    with pytest.raises(AcquireError, match=r"127\.0\.0\.1:1/c.yaml: unreachable"):
        await fetch("http://127.0.0.1:1/c.yaml", attempts=1)
    with pytest.raises(AcquireError, match=r"expected an http://, https:// or file:// URL"):
        await fetch("ftp://host/c.yaml")
    with pytest.raises(AcquireError, match="No such file"):
        await fetch(f"file://{tmp_path}/nope.yaml", attempts=1)
    (tmp_path / "empty.yaml").write_text("  \n")
    with pytest.raises(AcquireError, match="empty"):
        await fetch(f"file://{tmp_path}/empty.yaml", attempts=1)
