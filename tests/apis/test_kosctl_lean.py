"""``kosctl get`` (a table, no watch, no selector) takes the lean path (issue 17): against two
real ``machined`` processes it loads none of grpclib's client, asyncio, PyYAML, dataclasses or
the resource model; prints exactly what the grpclib path prints (tables, -n fan-out through
an endpoint, errors); and tells which node failed and how when one does not answer."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError, ClientConfig, Request, SyncConnection
from kos.apis.kosctl import common
from kos.apis.kosctl.commands import get
from kos.apis.kosctl.main import build_parser
from kos.apis.server.nodepki import NodePKI

from .nodeproc import kosctl, machined

# modules `kosctl get` must not load (beyond what the bare interpreter loads)
HEAVY = ("asyncio", "anyio", "grpclib.client", "grpclib.protocol", "grpclib.server", "h2", "hpack", "yaml",
         "betterproto", "cryptography", "google", "dataclasses", "kos.resources.core", "kos.apis.wire",
         "kos.apis.client.connection", "kos.apis.client.state", "kos.apis.auth", "re2", "tempfile")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path, Path]]:
    base = tmp_path_factory.mktemp("lean")
    sd1, sd2 = base / "n1", base / "n2"
    args = ("--no-controllers", "--writable-namespace", "user")
    with machined(sd1, *args) as ep1:
        (sd2 / "pki").mkdir(parents=True)
        for f in ("ca.crt", "ca.key"):  # one CA: the nodes forward to each other
            shutil.copy(sd1 / "pki" / f, sd2 / "pki" / f)
        with machined(sd2, *args) as ep2:
            reader = base / "reader.kosconfig"
            NodePKI.load_or_create(sd1 / "pki", ["127.0.0.1"]).client_config("reader", [ep1], [auth.READER],
                                                                              3600).save(reader)
            yield ep1, ep2, sd1 / "kosconfig", reader


def _loaded(code: str, env: dict[str, str] | None = None) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_get_table_loads_no_heavy_module(nodes: tuple[str, str, Path, Path]) -> None:
    ep1, ep2, kosconfig, _ = nodes
    bare = _loaded("pass")
    env = dict(os.environ, KOSCONFIG=str(kosconfig), XDG_CACHE_HOME=str(kosconfig.parent / "cache"))
    for argv in (["get", "rd"], ["get", "namespaces"], ["-n", f"{ep2},{ep1}", "get", "ns", "meta"]):
        code = ("import contextlib, io\nfrom kos.apis.kosctl.main import main\n"
                f"with contextlib.redirect_stdout(io.StringIO()) as out:\n    assert main({argv!r}) == 0\n"
                "assert out.getvalue().startswith('NODE ')")
        loaded = _loaded(code, env) - bare
        heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
        assert not heavy, f"kosctl {' '.join(argv)} loaded {heavy}"
        assert "kos.apis.client.syncgrpc" in loaded


def _both(argv: list[str], kosconfig: Path) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """(exit code, stdout, stderr) of the lean and of the grpclib path for one command line."""
    results = []
    for lean in (True, False):
        args = build_parser("get").parse_args(["--kosconfig", str(kosconfig), "get", *argv])
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            t = common.target(args)
            try:
                rc = get.run_sync(args, t) if lean else get.run_async(args, t, "table", "", [])
            except get.CLIError as exc:
                rc, _ = 1, print(f"error: {exc}", file=sys.stderr)
        results.append((rc, out.getvalue(), err.getvalue()))
    return results[0], results[1]


def test_lean_and_grpclib_paths_print_the_same(nodes: tuple[str, str, Path, Path],
                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ep1, ep2, kosconfig, reader = nodes
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for argv in (["rd"], ["ns"], ["ns", "meta"], ["namespaces", "--namespace", "meta"], ["-n", f"{ep2},{ep1}", "rd"],
                 ["-n", ep2, "ns", "user"], ["ns", "missing"], ["bogus"], ["-n", f"{ep1},127.0.0.1:1", "ns"]):
        lean, grpclib = _both(argv, kosconfig)
        assert lean == grpclib, argv
    lean, grpclib = _both(["osrootsecrets"], reader)
    assert lean == grpclib and "PERMISSION_DENIED: access denied" in lean[2]


def test_a_node_that_refuses_is_named_with_the_reason(nodes: tuple[str, str, Path, Path]) -> None:
    ep1, _, kosconfig, _ = nodes
    r = kosctl("-n", f"{ep1},127.0.0.1:1", "get", "ns", "meta", kosconfig=kosconfig)
    assert r.returncode == 1 and r.stdout.splitlines()[1].split()[0] == ep1
    assert r.stderr == ("error: 127.0.0.1:1: UNAVAILABLE: node 127.0.0.1:1: connection to 127.0.0.1:1 refused: nothing "
                        "listens there (the node's API is not running, or the port is wrong: the API port is 50000 "
                        "unless the endpoint names another)\n")
    r = kosctl("-e", "127.0.0.1:1", "get", "ns", kosconfig=kosconfig)
    assert r.returncode == 1 and "UNAVAILABLE: connection to 127.0.0.1:1 refused: nothing listens there" in r.stderr


@pytest.fixture
def silent() -> Iterator[str]:
    """An address that accepts TCP connections and never answers (a hung node)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield f"127.0.0.1:{s.getsockname()[1]}"
    finally:
        s.close()


def _connection(kosconfig: Path, endpoint: str, timeout: float) -> SyncConnection:
    _, ctx = ClientConfig.load(kosconfig).current()
    return SyncConnection.to(endpoint, ca=ctx.ca, crt=ctx.crt, key=ctx.key, timeout=timeout)


def test_a_node_that_does_not_answer_is_never_an_empty_deadline(nodes: tuple[str, str, Path, Path],
                                                                silent: str) -> None:
    ep1, _, kosconfig, _ = nodes
    ns = get._kind_request("meta", "Namespaces.meta.cosi.dev")
    # forwarded: the client's deadline comes first and says what it waited for
    with _connection(kosconfig, ep1, 1.0) as c:
        t0 = time.monotonic()
        [reply] = c.calls([Request(get.STATE + "List", ns, silent)])
        assert isinstance(reply, APIError) and time.monotonic() - t0 < 5
        assert reply.status == Status.DEADLINE_EXCEEDED and reply.node == silent
        assert reply.message.startswith(f"no answer within 1 s: the endpoint {ep1} forwards the call to node {silent}")
        # the same connection still serves the next call
        assert isinstance(c.calls([Request(get.STATE + "List", ns)])[0], list)
    # with a longer deadline the endpoint gives up connecting first and says so
    with _connection(kosconfig, ep1, 25.0) as c:
        [reply] = c.calls([Request(get.STATE + "List", ns, silent)])
        assert isinstance(reply, APIError) and reply.status == Status.UNAVAILABLE
        assert reply.message.startswith(f"node {silent}: connecting to {silent} timed out: no answer within 10 s")
    # directly: the TLS handshake that never ends
    with _connection(kosconfig, silent, 1.0) as c:
        [reply] = c.calls([Request(get.STATE + "List", ns)])
        assert isinstance(reply, APIError) and reply.status == Status.UNAVAILABLE
        assert f"the TLS handshake with {silent} timed out after 1 s" in reply.message


def test_many_calls_share_one_connection_and_large_replies_flow(nodes: tuple[str, str, Path, Path]) -> None:
    ep1, ep2, kosconfig, _ = nodes
    rds = get._kind_request("meta", "ResourceDefinitions.meta.cosi.dev")
    with _connection(kosconfig, ep1, 30.0) as c:
        replies = c.calls([Request(get.STATE + "List", rds, node) for node in [None, ep2] * 40])
        assert len(replies) == 80 and all(isinstance(r, list) for r in replies)
        assert all(r == replies[0] for r in replies[0::2]) and all(r == replies[1] for r in replies[1::2])
        assert sum(len(m) for r in replies for m in r) > 10 * 65535  # far past HTTP/2's initial window
