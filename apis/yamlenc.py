"""Fast YAML text of specs for the wire (``cosi.resource.Spec.yaml_spec``).

``kos.resources.core.yamlfmt.dump`` (PyYAML with the Go-like layout) costs ~100 us per spec,
more than the whole protobuf encoding; the API sends YAML with every resource, so this
module renders the common case (nested dicts/lists of ints, bools, nulls and plain-safe
strings) directly and produces byte-identical text. Anything else (floats, strings that
need quoting, multi-line text) falls back to ``yamlfmt.dump`` for the whole document.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml

from kos.resources.core import dump, spec_yaml

_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./+=@-]*$")
_RESOLVER = yaml.resolver.Resolver()


class _Fallback(Exception):
    pass


@functools.lru_cache(maxsize=4096)
def _plain_ok(s: str) -> bool:
    if not _PLAIN.match(s):
        return False
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, s, (True, False))  # type: ignore[no-untyped-call]
    return tag == "tag:yaml.org,2002:str"


def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if type(v) is int:
        return str(v)
    if type(v) is str and _plain_ok(v):
        return v
    raise _Fallback


def _emit(v: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(v, dict):
        for k, x in v.items():
            if type(k) is not str or not _plain_ok(k):
                raise _Fallback
            if isinstance(x, dict | list):
                if not x:
                    out.append(f"{pad}{k}: {'{}' if isinstance(x, dict) else '[]'}\n")
                else:
                    out.append(f"{pad}{k}:\n")
                    _emit(x, indent + 4, out)
            else:
                out.append(f"{pad}{k}: {_scalar(x)}\n")
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, dict | list):
                if not x:
                    out.append(f"{pad}- {'{}' if isinstance(x, dict) else '[]'}\n")
                    continue
                sub: list[str] = []
                _emit(x, indent + 4, sub)
                sub[0] = f"{pad}-   " + sub[0][indent + 4 :]
                out.extend(sub)
            else:
                out.append(f"{pad}- {_scalar(x)}\n")
    else:
        raise _Fallback


def yaml_text(data: Any) -> str:
    """The YAML text ``yamlfmt.dump(data)`` would produce, faster for common data."""
    if not isinstance(data, dict) or not data:
        return dump(data)
    out: list[str] = []
    try:
        _emit(data, 0, out)
    except _Fallback:
        return dump(data)
    return "".join(out)


def spec_yaml_text(spec: Any) -> str:
    """YAML text of a spec (typed: its ``to_yaml()``; dynamic: the text it carries)."""
    to_yaml = getattr(spec, "to_yaml", None)
    if to_yaml is None or hasattr(spec, "yaml"):
        return spec_yaml(spec)
    return yaml_text(to_yaml())
