"""cosi.resource.State over mutual TLS against a real ``machined`` process on loopback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kos.apis.client import AccessDeniedError, ClientConfig, Connection, Context, GrpcState
from kos.apis.server.nodepki import NodePKI
from kos.resources.core import ConflictError, EventType, Kind, NamespaceSpec, NotFoundError, Pointer, Resource

NS_TYPE = "Namespaces.meta.cosi.dev"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    sd = tmp_path_factory.mktemp("node")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kos.machined.main", "--state-dir", str(sd), "--listen", "127.0.0.1:0",
         "--writable-namespace", "user"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not (sd / "kosconfig").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"machined did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.05)
        yield sd
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _conn(sd: Path) -> Connection:
    _, ctx = ClientConfig.load(sd / "kosconfig").current()
    return Connection.from_context(ctx)


@pytest.mark.anyio
async def test_get_list_create_conflict_notfound(node: Path) -> None:
    async with _conn(node) as conn:
        st = GrpcState(conn)
        meta = await st.get(Pointer("meta", NS_TYPE, "meta"))
        assert isinstance(meta.spec, NamespaceSpec) and meta.metadata.version == 1
        rds = await st.list(Kind("meta", "ResourceDefinitions.meta.cosi.dev"))
        assert [r.id for r in rds] == sorted(r.id for r in rds) and any(r.id == NS_TYPE.lower() for r in rds)
        r = Resource.new(NamespaceSpec(description="x"), "a", namespace="user")
        await st.create(r, owner="t")
        assert r.metadata.version == 1 and r.metadata.owner == "t"
        with pytest.raises(ConflictError):
            await st.create(Resource.new(NamespaceSpec(), "a", namespace="user"), owner="t")
        with pytest.raises(NotFoundError):
            await st.get(Pointer("user", NS_TYPE, "missing"))
        # meta is not writable through the API
        with pytest.raises(AccessDeniedError):
            await st.create(Resource.new(NamespaceSpec(), "b"), owner="t")


@pytest.mark.anyio
async def test_watch_bootstrap_then_update(node: Path) -> None:
    async with _conn(node) as conn:
        st = GrpcState(conn)
        r = Resource.new(NamespaceSpec(description="w"), "w1", namespace="user")
        await st.create(r)
        async with st.watch_kind_aggregated(Kind("user", NS_TYPE), bootstrap_contents=True) as batches:
            it = aiter(batches)
            first = await anext(it)
            assert first[-1].type == EventType.BOOTSTRAPPED
            assert "w1" in [e.resource.id for e in first[:-1] if e.resource is not None]
            await st.update_with_conflicts(r.pointer, lambda x: setattr(x.spec, "description", "v2"))
            batch = await anext(it)
            assert batch[0].type == EventType.UPDATED and batch[0].resource is not None
            assert batch[0].resource.spec.description == "v2"


@pytest.mark.anyio
async def test_reader_denied_write_and_unknown_ca_rejected(node: Path, tmp_path: Path) -> None:
    pki = NodePKI.load_or_create(node / "pki", ["127.0.0.1"])
    endpoint = (node / "api-endpoint").read_text().strip()
    reader = pki.client(["os:reader"], 3600)
    async with Connection(endpoint, ca=pki.ca.cert_pem, identity=reader) as conn:
        st = GrpcState(conn)
        assert (await st.get(Pointer("meta", NS_TYPE, "meta"))).id == "meta"
        with pytest.raises(AccessDeniedError):
            await st.create(Resource.new(NamespaceSpec(), "r", namespace="user"))
    other = NodePKI.load_or_create(tmp_path / "other", ["127.0.0.1"])
    stranger = other.client(["os:admin"], 3600)
    ctx = Context(endpoints=[endpoint], ca=pki.ca.cert_pem, crt=stranger.cert_pem, key=stranger.key_pem)
    async with Connection.from_context(ctx, timeout=10) as conn:
        with pytest.raises(Exception) as info:
            await GrpcState(conn).get(Pointer("meta", NS_TYPE, "meta"))
        assert "UNAVAILABLE" in str(info.value) or "TLS" in str(info.value) or "terminated" in str(info.value)
