"""Kubernetes container logs read as the kubelet leaves them: CRI records (partial ones joined,
any chunking), the container an operator names, tails, and following across a rotation."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kos.platform.container import crilog

CID = "3e2a" + "0" * 56 + "beef"
OTHER = "3e2b" + "1" * 60


def record(content: bytes, *, partial: bool = False, stream: str = "stdout") -> bytes:
    return b"2026-12-05T15:00:00.123456789Z " + stream.encode() + (b" P " if partial else b" F ") + content + b"\n"


def node_with(root: Path, pod: str, ns: str, container: str, cid: str, records: bytes, attempt: int = 0) -> Path:
    """Lay a container's log out under root/var/log as the kubelet does (file + link)."""
    d = root / "var/log/pods" / f"{ns}_{pod}_0000-uid" / container
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"{attempt}.log"
    f.write_bytes(records)
    links = root / "var/log/containers"
    links.mkdir(parents=True, exist_ok=True)
    os.symlink(f"/{f.relative_to(root)}", links / f"{pod}_{ns}_{container}-{cid}.log")
    return f


line = st.binary(min_size=0, max_size=40).filter(lambda b: b"\n" not in b)


@given(st.lists(st.tuples(line, st.integers(0, 3)), max_size=20), st.lists(st.integers(1, 50), max_size=30))
def test_records_join_into_the_containers_lines_whatever_the_chunks(lines: list[tuple[bytes, int]],
                                                                     cuts: list[int]) -> None:
    data = b""
    for content, pieces in lines:  # each line written as `pieces` P records and one F record
        step = max(1, len(content) // (pieces + 1))
        parts = [content[i:i + step] for i in range(0, len(content), step)] or [b""]
        data += b"".join(record(p, partial=True) for p in parts[:-1]) + record(parts[-1])
    joiner, out, pos = crilog.LineJoiner(), [], 0
    for cut in cuts:
        out += joiner.feed(data[pos:pos + cut])
        pos += cut
    out += joiner.feed(data[pos:])
    assert out == [content for content, _ in lines]


def test_a_line_that_never_ends_is_bounded() -> None:
    joiner = crilog.LineJoiner()
    big = record(b"x" * (3 * crilog.MAX_LINE), partial=True) * 3 + record(b"end")
    out = joiner.feed(big)
    assert len(out) == 1 and len(out[0]) == crilog.MAX_LINE


def test_containers_are_named_as_operators_name_them(tmp_path: Path) -> None:
    node_with(tmp_path, "kube-apiserver-cp-1", "kube-system", "kube-apiserver", CID, record(b"a"))
    node_with(tmp_path, "web-5d9", "default", "web", OTHER, record(b"b"))
    found = anyio.run(crilog.containers, tmp_path / "var/log")
    assert [c.ref for c in found] == ["default/web-5d9:web:3e2b11111111",
                                      "kube-system/kube-apiserver-cp-1:kube-apiserver:3e2a00000000"]
    for ref in ("kube-system/kube-apiserver-cp-1:kube-apiserver:3e2a00000000",
                "kube-system/kube-apiserver-cp-1:kube-apiserver", "kube-system/kube-apiserver-cp-1",
                "3e2a00", CID):
        assert crilog.select(found, ref).id == CID, ref
    with pytest.raises(ValueError, match="at least 6 hex digits"):
        crilog.select(found, "3e2")
    node_with(tmp_path, "web-5d9", "default", "sidecar", "9" * 64, record(b"c"))
    with pytest.raises(ValueError, match="'default/web-5d9' is ambiguous: default/web-5d9:sidecar:999999999999, "
                                         "default/web-5d9:web:3e2b11111111"):
        crilog.select(anyio.run(crilog.containers, tmp_path / "var/log"), "default/web-5d9")
    with pytest.raises(LookupError, match=r"'default/nope' not found .*kosctl containers -k"):
        crilog.select(found, "default/nope")
    for bad in ("", "a b", "x" * 600, "../../etc/passwd\n", "default"):
        with pytest.raises(ValueError, match="expected NAMESPACE/POD"):
            crilog.select(found, bad)


def test_restarted_container_reads_the_current_attempt(tmp_path: Path) -> None:
    node_with(tmp_path, "web-5d9", "default", "web", OTHER, record(b"first run"), attempt=0)
    newer = node_with(tmp_path, "web-5d9", "default", "web", "a" * 64, record(b"second run"), attempt=1)
    os.utime(newer, (2e9, 2e9))
    found = anyio.run(crilog.containers, tmp_path / "var/log")
    assert crilog.select(found, "default/web-5d9:web").path == newer


def test_tail_all_and_follow_across_rotation(tmp_path: Path) -> None:
    f = node_with(tmp_path, "web-5d9", "default", "web", OTHER,
                  b"".join(record(b"line %d" % i) for i in range(5000)) + record(b"half ", partial=True))

    async def main() -> None:
        whole = b"".join([chunk async for chunk in crilog.read_all(f)])
        assert whole.splitlines() == [b"line %d" % i for i in range(5000)]
        lines, offset, joiner = await crilog.read_tail(f, 3)
        assert lines == [b"line 4997", b"line 4998", b"line 4999"]
        got: list[bytes] = []
        arrived = anyio.Event()

        async def follower() -> None:
            nonlocal arrived
            async for chunk in crilog.follow(f, offset, joiner, poll=0.02):
                got.extend(chunk.splitlines())
                arrived.set()

        async def lines_until(last: bytes) -> None:
            nonlocal arrived
            with anyio.fail_after(5):
                while got[-1:] != [last]:
                    await arrived.wait()
                    arrived = anyio.Event()

        async with anyio.create_task_group() as tg:
            tg.start_soon(follower)
            with f.open("ab") as out:
                out.write(record(b"done"))
            await lines_until(b"half done")
            assert got == [b"half done"]
            os.rename(f, f.with_suffix(".log.20261205-150000"))  # the kubelet rotates
            f.write_bytes(record(b"after rotation"))
            await lines_until(b"after rotation")
            tg.cancel_scope.cancel()

    anyio.run(main)


def test_a_link_leading_outside_the_pod_logs_is_not_a_container(tmp_path: Path) -> None:
    """The Logs RPC serves readers: a link in /var/log/containers that points at another file of
    the node (absolute, relative or through ..) is never read as a container's log."""
    node_with(tmp_path, "web-5d9", "default", "web", OTHER, record(b"fine"))
    secret = tmp_path / "etc/kos/secret.key"
    secret.parent.mkdir(parents=True)
    secret.write_text("key")
    links = tmp_path / "var/log/containers"
    os.symlink("/etc/kos/secret.key", links / f"evil_default_a-{'a' * 64}.log")
    os.symlink("../../../etc/kos/secret.key", links / f"evil_default_b-{'b' * 64}.log")
    os.symlink("/var/log/pods/../../../etc/kos/secret.key", links / f"evil_default_c-{'c' * 64}.log")
    found = anyio.run(crilog.containers, tmp_path / "var/log")
    assert [c.ref for c in found] == ["default/web-5d9:web:3e2b11111111"]
    with pytest.raises(LookupError):
        crilog.select(found, "default/evil")
