"""The disk selector language: parsing, type checking, evaluation (hypothesis)."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.controllers.block.selector import (
    DISK_SCHEMA,
    UNITS,
    And,
    Compare,
    Const,
    Field,
    Node,
    Not,
    Or,
    SelectorError,
    compile_disk_selector,
    compile_volume_locator,
    parse_size,
    render,
)

DISK = {
    "name": "nvme0n1",
    "size": 512 * 10**9,
    "io_size": 4096,
    "sector_size": 512,
    "readonly": False,
    "model": "WDC WDS500G2B0C",
    "serial": "S3Z9NB0K123",
    "modalias": "",
    "wwid": "eui.0025388b71b2e2c1",
    "bus_path": "/pci0000:00/0000:00:1d.0",
    "sub_system": "/sys/class/block",
    "transport": "nvme",
    "rotational": False,
    "cdrom": False,
    "dev_path": "/dev/nvme0n1",
    "uuid": "",
    "system_disk": False,
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("true", True),
        ("false", False),
        ("disk.size >= 500GB", True),
        ("disk.size >= 500GiB", False),
        ("size > 1TB || transport == 'nvme'", True),
        ("disk.model =~ 'WDC*' && !disk.rotational", True),
        ("disk.model !~ 'WDC*'", False),
        ("not disk.cdrom and disk.serial == \"S3Z9NB0K123\"", True),
        ("disk.size < 10 GB", False),
        ("(disk.transport == 'sata' || disk.transport == 'nvme') && disk.size <= 1.5TB", True),
        ("disk.dev_path == '/dev/sda'", False),
    ],
)
def test_examples(expr: str, expected: bool) -> None:
    assert compile_disk_selector(expr).matches(DISK) is expected


@pytest.mark.parametrize(
    ("expr", "fragment", "column"),
    [
        ("", "empty expression", 1),
        ("disk.size", "not a condition", 1),
        ("disk.size >= 'big'", "cannot compare a size/number with a string", 1),
        ("disk.cdrom && disk.size", "disk.size is a size/number", 15),
        ("disk.colour == 'red'", "unknown field 'disk.colour'", 1),
        ("disk.model > 'a'", "ordering > needs numbers", 1),
        ("disk.size =~ 10", "glob match =~ needs strings", 1),
        ("(disk.cdrom", "expected ')'", 12),
        ("disk.size >= 10XB", "invalid size '10XB'", 14),
        ("disk.cdrom $", "unexpected character '$'", 12),
        ("disk.cdrom disk.readonly", "expected '&&', '||' or the end", 12),
        ("disk.size >=", "unexpected the end of the expression", 13),
    ],
)
def test_errors_name_the_problem_and_column(expr: str, fragment: str, column: int) -> None:
    with pytest.raises(SelectorError) as info:
        compile_disk_selector(expr)
    assert fragment in str(info.value)
    assert f"at column {column}" in str(info.value)


def test_volume_locator_scope() -> None:
    sel = compile_volume_locator('volume.partition_label == "STATE" && volume.name == "xfs"')
    assert sel.matches({"partition_label": "STATE", "name": "xfs"})
    assert not sel.matches({"partition_label": "STATE", "name": "ext4"})
    with pytest.raises(SelectorError, match=r"unknown field 'disk\.size'"):
        compile_volume_locator("disk.size > 1GB")


@pytest.mark.parametrize(
    ("text", "value"),
    [("10GB", 10**10), ("1 GiB", 2**30), ("1.5TB", 15 * 10**11), ("512", 512), ("4kB", 4000), ("3 MiB", 3 << 20)],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_parse_size_error_names_value() -> None:
    with pytest.raises(ValueError, match="invalid size '10 parsecs'"):
        parse_size("10 parsecs")


# --- hypothesis: random well-typed trees render, re-parse to the same tree, and evaluate
# like a direct interpretation ---------------------------------------------------------------

INT_FIELDS = [k for k, t in DISK_SCHEMA.items() if t == "int"]
STR_FIELDS = [k for k, t in DISK_SCHEMA.items() if t == "str"]
BOOL_FIELDS = [k for k, t in DISK_SCHEMA.items() if t == "bool"]

safe_text = st.text(alphabet=st.characters(codec="ascii", exclude_characters="\x00"), max_size=8)
globs = st.text(alphabet="ab*?", max_size=5)


def comparisons() -> st.SearchStrategy[Node]:
    ints = st.builds(
        Compare,
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        st.sampled_from(INT_FIELDS).map(Field),
        st.integers(0, 2**50).map(Const),
    )
    strs = st.builds(
        Compare, st.sampled_from(["==", "!="]), st.sampled_from(STR_FIELDS).map(Field), safe_text.map(Const)
    )
    glob = st.builds(Compare, st.sampled_from(["=~", "!~"]), st.sampled_from(STR_FIELDS).map(Field), globs.map(Const))
    bools = st.sampled_from(BOOL_FIELDS).map(Field)
    consts = st.booleans().map(Const)
    return st.one_of(ints, strs, glob, bools, consts)


trees = st.recursive(
    comparisons(),
    lambda kids: st.one_of(st.builds(And, kids, kids), st.builds(Or, kids, kids), st.builds(Not, kids)),
    max_leaves=12,
)

disks = st.fixed_dictionaries(
    {
        k: (
            st.integers(0, 2**50)
            if t == "int"
            else st.booleans()
            if t == "bool"
            else st.one_of(safe_text, st.text(alphabet="ab", max_size=4))
        )
        for k, t in DISK_SCHEMA.items()
    }
)


def interpret(node: Node, env: dict[str, Any]) -> Any:
    if isinstance(node, Field):
        return env[node.name]
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Not):
        return not interpret(node.operand, env)
    if isinstance(node, And):
        return interpret(node.left, env) and interpret(node.right, env)
    if isinstance(node, Or):
        return interpret(node.left, env) or interpret(node.right, env)
    a, b = interpret(node.left, env), interpret(node.right, env)
    return {
        "==": lambda: a == b,
        "!=": lambda: a != b,
        "<": lambda: a < b,
        "<=": lambda: a <= b,
        ">": lambda: a > b,
        ">=": lambda: a >= b,
        "=~": lambda: fnmatch.fnmatchcase(a, b),
        "!~": lambda: not fnmatch.fnmatchcase(a, b),
    }[node.op]()


@settings(max_examples=300, deadline=None)
@given(trees, disks)
def test_roundtrip_and_evaluation(tree: Node, disk: dict[str, Any]) -> None:
    text = render(tree)
    sel = compile_disk_selector(text)
    assert sel.tree == tree
    assert sel.matches(disk) == bool(interpret(tree, disk))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(sorted(UNITS)), st.integers(0, 2**60))
def test_size_units(number: int, unit: str, size: int) -> None:
    sel = compile_disk_selector(f"disk.size >= {number}{unit}")
    assert sel.matches({**DISK, "size": size}) == (size >= number * UNITS[unit])


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("disk.ize ()!&|=<>~'\"0123456789GBMbtrueflsmod")), max_size=30))
def test_garbage_gives_only_selector_errors(text: str) -> None:
    try:
        sel = compile_disk_selector(text)
    except SelectorError as exc:
        assert "at column" in str(exc)
    else:
        assert isinstance(sel.matches(DISK), bool)
