"""The cpio writer against GNU cpio: listing, extraction (modes, symlinks, device nodes),
determinism and bad input."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.platform.image import cpio

E = cpio.Entry


def _list(archive: bytes) -> list[str]:
    out = subprocess.run(["cpio", "-it", "--quiet"], input=archive, capture_output=True, check=True)
    return out.stdout.decode().split()


def test_gnu_cpio_extracts_what_was_written(tmp_path: Path) -> None:
    archive = cpio.write([
        E.file("bin/tool", b"#!x\n", 0o755),
        E.symlink("bin/sh", "tool"),
        E.file("etc/conf", b"a=1\n"),
        E.directory("run", 0o700),
        E.chardev("dev/null", 1, 3, 0o666),
    ])
    assert _list(archive) == ["bin", "bin/sh", "bin/tool", "dev", "dev/null", "etc", "etc/conf", "run"]
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], input=archive, cwd=dest, check=True)
    assert (dest / "bin/tool").read_bytes() == b"#!x\n"
    assert stat.S_IMODE((dest / "bin/tool").stat().st_mode) == 0o755
    assert os.readlink(dest / "bin/sh") == "tool"
    assert stat.S_IMODE((dest / "run").stat().st_mode) == 0o700
    st_null = (dest / "dev/null").lstat()
    assert stat.S_ISCHR(st_null.st_mode) and os.major(st_null.st_rdev) == 1 and os.minor(st_null.st_rdev) == 3
    assert (dest / "etc/conf").stat().st_mtime == 0  # fixed times


def test_order_of_input_does_not_matter() -> None:
    entries = [E.file("b/x", b"1"), E.file("a", b"22"), E.file("b/a", b"333")]
    assert cpio.write(entries) == cpio.write(list(reversed(entries)))
    assert len(cpio.write(entries)) % 4 == 0


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([E.file("a", b""), E.file("/a/", b"")], "given twice"),
        ([E.file("a/../b", b"")], "relative path"),
        ([E.file("", b"")], "relative path"),
        ([E.file("f", b""), E.file("f/g", b"")], "parent 'f' is not a directory"),
    ],
)
def test_bad_entries_are_refused(entries: list[cpio.Entry], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cpio.write(entries)


def test_tree_entries_keep_modes_and_links(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/f").write_bytes(b"data")
    os.chmod(tmp_path / "d/f", 0o600)
    os.symlink("f", tmp_path / "d/l")
    got = {e.path: e for e in cpio.tree_entries(tmp_path, "pre")}
    assert set(got) == {"pre/d", "pre/d/f", "pre/d/l"}
    assert got["pre/d/f"].data == b"data" and stat.S_IMODE(got["pre/d/f"].mode) == 0o600
    assert got["pre/d/l"].data == b"f"


names = st.text(alphabet="abcxyz019_-.", min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.lists(names, min_size=1, max_size=3).map("/".join), st.binary(max_size=64), max_size=8))
def test_listing_matches_any_tree(files: dict[str, bytes]) -> None:
    # drop paths whose parent is itself a file in the example
    paths = sorted(files)
    keep = {p: d for p, d in files.items() if not any(p.startswith(q + "/") for q in paths)}
    archive = cpio.write([E.file(p, d) for p, d in keep.items()])
    listed = _list(archive)
    expected: set[str] = set()
    for p in keep:
        parts = p.split("/")
        expected.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    assert sorted(listed) == sorted(expected)
    assert listed == sorted(listed, key=lambda s: s.split("/"))
