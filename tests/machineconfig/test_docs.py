"""docs/config.md's v1alpha1 field table is exactly the schema's generated reference."""

from __future__ import annotations

from pathlib import Path

from kos.resources.machineconfig.reference import v1alpha1_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_field_table_matches_schema() -> None:
    table = v1alpha1_reference()
    assert "| `cluster.controlPlane.endpoint` | string |" in table
    assert "| `machine.network.interfaces[].addresses` | list of string |" in table
    assert "| `machine.token` | string (secret) |" in table
    assert table in DOC.read_text(), "regenerate the table in docs/config.md from v1alpha1_reference()"
