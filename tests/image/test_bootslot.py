"""The initramfs's busybox sh boot-slot choice (rootfs-build/initramfs/bootslot.sh) makes the
same choice and writes the same META as kos.platform.image.meta."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kos.platform.image import meta

SCRIPT = Path(__file__).resolve().parents[2] / "rootfs-build" / "initramfs" / "bootslot.sh"
BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="busybox (busybox-static) is not installed")


def run_sh(dev: Path) -> str:
    proc = subprocess.run([str(BUSYBOX), "sh", "-c", f'. "{SCRIPT}"; kos_next_boot "$1"', "sh", str(dev)],
                          capture_output=True, text=True, timeout=30, check=True)
    return proc.stdout.strip()


def check(tmp_path: Path, block: bytes) -> None:
    dev = tmp_path / "meta.img"
    dev.write_bytes(block.ljust(1 << 16, b"\0"))
    values = meta.decode(block)
    slot, state = meta.next_boot(meta.BootState.from_meta(values))
    assert run_sh(dev) == slot
    written = dev.read_bytes()
    assert written[:4096] == meta.encode(state.to_meta(values))
    assert written[4096:] == b"\0" * ((1 << 16) - 4096)


@pytest.mark.parametrize("block", [
    b"", b"garbage", meta.encode({"active": "B"}), meta.encode({"active": "B", "fallback": "A", "tries": "2"}),
    meta.encode({"active": "A", "fallback": "B", "tries": "0"}), meta.encode({"active": "X", "tries": "z"}),
    meta.encode({"active": "B", "fallback": "A", "tries": "junk", "sha256-b": "ab12"}),
    b"KOSMETA1\nactive=B\nfallback=A\ntries=1\n",  # torn: no end line
])
def test_examples(tmp_path: Path, block: bytes) -> None:
    check(tmp_path, block)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["A", "B", "C", ""]), st.sampled_from(["A", "B", "", "Q"]),
       st.sampled_from(["0", "1", "2", "7", "", "x"]),
       st.dictionaries(st.from_regex(r"[a-z0-9_-]{1,8}", fullmatch=True).filter(
           lambda k: k not in ("active", "fallback", "tries")), st.from_regex(r"[a-zA-Z0-9.:/]{0,12}", fullmatch=True),
           max_size=3))
def test_matches_python(tmp_path: Path, active: str, fallback: str, tries: str, extra: dict[str, str]) -> None:
    vals = dict(extra)
    for k, v in (("active", active), ("fallback", fallback), ("tries", tries)):
        if v:
            vals[k] = v
    check(tmp_path, meta.encode(vals))


def test_three_boots_of_an_unconfirmed_upgrade(tmp_path: Path) -> None:
    dev = tmp_path / "meta.img"
    dev.write_bytes(meta.encode(meta.stage_upgrade(meta.BootState("A"), 2).to_meta({})))
    assert [run_sh(dev) for _ in range(4)] == ["B", "B", "A", "A"]
    assert meta.decode(dev.read_bytes()) == {"active": "A"}
