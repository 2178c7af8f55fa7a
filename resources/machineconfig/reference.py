"""The v1alpha1 field reference as Markdown table rows (path, type, secret), generated from
the models so that docs/config.md cannot drift from the schema (a test compares them)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from kos.resources.machineconfig.schema import Model, field_hints
from kos.resources.machineconfig.v1alpha1 import Config, PEMEncodedCertificateAndKey, PEMEncodedKey

_LEAVES = (PEMEncodedCertificateAndKey, PEMEncodedKey)


def _type_text(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        (inner,) = typing.get_args(tp)
        return f"list of {_type_text(inner)}"
    if origin is dict:
        return "map" if typing.get_args(tp)[1] is Any else "map of string"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a) for a in typing.get_args(tp) if a is not type(None))
    if isinstance(tp, type) and issubclass(tp, _LEAVES):
        return "object (`crt`, `key`)" if tp is PEMEncodedCertificateAndKey else "object (`key`)"
    if isinstance(tp, type) and issubclass(tp, Model):
        return "object"
    return {str: "string", int: "integer", bool: "bool", float: "number"}.get(tp, str(tp))


def _rows(cls: type[Model], prefix: str, out: list[str]) -> None:
    hints = field_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key, attr in cls.yaml_keys().items():
        tp = hints[attr]
        path = f"{prefix}.{key}" if prefix else key
        secret = " (secret)" if fields[attr].metadata.get("sensitive") else ""
        out.append(f"| `{path}` | {_type_text(tp)}{secret} |")
        inner = tp
        if typing.get_origin(tp) is list:
            inner = typing.get_args(tp)[0]
            path += "[]"
        if isinstance(inner, type) and issubclass(inner, Model) and not issubclass(inner, _LEAVES):
            _rows(inner, path, out)


def v1alpha1_reference() -> str:
    """Markdown table (header included) of every v1alpha1 field."""
    out = ["| path | type |", "|---|---|"]
    _rows(Config, "", out)
    return "\n".join(out) + "\n"
