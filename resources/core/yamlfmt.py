"""YAML rendering of resources in the COSI shape (cosi-semantics.md 1.7).

A document is ``{metadata, spec}``; metadata keys come in COSI order (namespace, type, id,
version, owner, phase, created, updated, then labels, annotations, finalizers when not
empty), labels/annotations sorted by key, all metadata values plain scalars, times in
RFC 3339 at second precision, 4-space indentation with sequences indented under their key,
like the Go encoder talosctl prints. Specs are rendered from ``spec.to_yaml()`` with the
same layout (strings are quoted only where YAML would otherwise read another type).
"""

from __future__ import annotations

import datetime
from typing import Any

import yaml

from kos.resources.core.metadata import Metadata, version_string
from kos.resources.core.resource import Resource


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_presenter)


def rfc3339(ts: float) -> str:
    return datetime.datetime.fromtimestamp(int(ts), tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dump(data: Any) -> str:
    """YAML text of plain data with the Go-like layout (4 spaces, indented sequences)."""
    if data is None or data == {}:
        return "{}\n"
    out: str = yaml.dump(data, Dumper=_Dumper, indent=4, sort_keys=False, default_flow_style=False, width=1 << 16)
    return out


def metadata_yaml(md: Metadata) -> str:
    lines = [
        f"namespace: {md.namespace}",
        f"type: {md.type}",
        f"id: {md.id}",
        f"version: {version_string(md.version)}",
        f"owner: {md.owner}".rstrip(),
        f"phase: {md.phase}",
        f"created: {rfc3339(md.created)}",
        f"updated: {rfc3339(md.updated)}",
    ]
    if md.labels:
        lines.append("labels:")
        lines.extend(f"    {k}: {v}".rstrip() for k, v in sorted(md.labels.items()))
    if md.annotations:
        lines.append("annotations:")
        lines.extend(f"    {k}: {v}".rstrip() for k, v in sorted(md.annotations.items()))
    if md.finalizers:
        lines.append("finalizers:")
        lines.extend(f"    - {f}" for f in md.finalizers)
    return "\n".join(lines) + "\n"


def spec_yaml(spec: Any) -> str:
    to_yaml = getattr(spec, "to_yaml", None)
    yaml_text = getattr(spec, "yaml", None)
    if isinstance(yaml_text, str):  # DynamicSpec: re-emit what the server sent
        return yaml_text if yaml_text.endswith("\n") or not yaml_text else yaml_text + "\n"
    return dump(to_yaml() if to_yaml is not None else {})


def _indent(text: str) -> str:
    return "".join(("    " + line if line.strip() else line) for line in text.splitlines(keepends=True))


def resource_yaml(r: Resource[Any]) -> str:
    """The whole ``{metadata, spec}`` document."""
    spec = spec_yaml(r.spec)
    if spec.strip() in ("{}", ""):
        spec_part = "spec: {}\n"
    else:
        spec_part = "spec:\n" + _indent(spec)
    return "metadata:\n" + _indent(metadata_yaml(r.metadata)) + spec_part
