"""Stable YAML text for configs: keys in the order given (never sorted), block style,
multi-line strings as literal blocks, no line wrapping; multi-document streams joined by
``---``. Parsing reports syntax errors with the document, line and column."""

from __future__ import annotations

from typing import Any

import yaml

from kos.resources.machineconfig.errors import ConfigError, ConfigErrors


class _Dumper(yaml.SafeDumper):
    """SafeDumper with literal blocks for multi-line strings and indented lists."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_representer)


def dump(data: Any) -> str:
    """One YAML document as text."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1 << 16,
                     allow_unicode=True)


def dump_all(docs: list[Any]) -> str:
    """Several documents separated by ``---``."""
    return "---\n".join(dump(d) for d in docs)


def load_all(text: str | bytes, *, what: str = "config") -> list[Any]:
    """Parse a (multi-document) YAML stream; empty documents are skipped. Raises
    ``ConfigErrors`` with the line/column of a syntax error."""
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError as exc:
            raise ConfigErrors([ConfigError("", f"byte {exc.start}", "UTF-8 text")], what=what) from exc
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigErrors(
            [ConfigError(f"<yaml {where}>", problem, "valid YAML")], what=what
        ) from exc
    return [d for d in docs if d is not None]
