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


def test_every_kind_is_in_the_documents_and_talos_tables() -> None:
    from kos.resources.machineconfig import DOCUMENT_KINDS

    text = DOC.read_text()
    documents = text[text.index("## Documents"):text.index("## Validation")]
    talos = text[text.index("## Talos compatibility"):text.index("## What the node does with each field")]
    for kind in DOCUMENT_KINDS:
        assert f"| `{kind}` |" in documents, kind
        assert f"`{kind}`" in talos, kind
