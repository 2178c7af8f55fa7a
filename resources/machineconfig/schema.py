"""A small typed schema layer for config documents: dataclass models whose fields carry
their YAML key, decoded from plain YAML data with every error collected (path, value,
expectation), unknown keys reported (error when strict, warning otherwise), and encoded
back in declaration order with empty values omitted, so a load/dump round trip is stable.

Fields are declared with ``kos.resources.core.spec.spec_field(yaml=..., default=...,
sensitive=...)`` (the YAML key defaults to lowerCamelCase of the attribute name; sensitive
fields are redacted for display). Every field needs a default. Supported field types:
``str``, ``int``, ``bool``, ``float``, ``Any``, ``X | None``,
``list[T]``, ``dict[str, T]`` and nested ``Model`` subclasses.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from kos.resources.machineconfig.cooperate import breathe
from kos.resources.machineconfig.errors import ConfigError, ConfigErrors, ErrorList, join_path

REDACTED = "******"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@dataclass
class Decoder:
    """Decoding context: strictness and the errors/warnings collected so far."""

    strict: bool = True
    errors: list[ConfigError] = field(default_factory=ErrorList)
    warnings: list[ConfigError] = field(default_factory=ErrorList)

    def error(self, path: str, value: Any, expected: str) -> None:
        self.errors.append(ConfigError(path, value, expected))

    def unknown(self, path: str, value: Any, known: list[str]) -> None:
        e = ConfigError(path, value, f"one of: {', '.join(known)}", unknown=True)
        (self.errors if self.strict else self.warnings).append(e)

    def raise_if_errors(self, what: str = "config") -> None:
        if self.errors:
            raise ConfigErrors(self.errors, what=what, dropped=getattr(self.errors, "dropped", 0))


_HINTS: dict[type, dict[str, Any]] = {}


def field_hints(cls: type) -> dict[str, Any]:
    h = _HINTS.get(cls)
    if h is None:
        h = _HINTS[cls] = typing.get_type_hints(cls)
    return h


class Model:
    """Base of config models (subclasses are dataclasses)."""

    _keys: ClassVar[dict[str, str]]

    @classmethod
    def yaml_keys(cls) -> dict[str, str]:
        """Map YAML key -> attribute name, in declaration order."""
        keys = cls.__dict__.get("_keys")
        if keys is None:
            keys = {
                (fl.metadata.get("yaml") or _camel(fl.name)): fl.name
                for fl in dataclasses.fields(cls)  # type: ignore[arg-type]
            }
            cls._keys = keys
        return keys

    @classmethod
    def decode(cls, data: Any, path: str, dec: Decoder) -> Self:
        obj = cls()
        if data is None:
            return obj
        if not isinstance(data, dict):
            dec.error(path, data, f"a mapping ({cls.__name__})")
            return obj
        keys = cls.yaml_keys()
        hints = field_hints(cls)
        for k, v in data.items():
            attr = keys.get(k) if isinstance(k, str) else None
            p = join_path(path, str(k))
            if attr is None:
                dec.unknown(p, v, list(keys))
                continue
            setattr(obj, attr, decode_value(hints[attr], v, p, dec))
        return obj

    def encode(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        present = type(self)._present_when_set()
        for key, attr in type(self).yaml_keys().items():
            raw = getattr(self, attr)
            v = encode_value(raw)
            if v is None and attr in present and raw is not None:
                out[key] = {}  # an optional section that is set, even if empty (``nodeID: {}``)
                continue
            if v is None or v == [] or v == {} or v == "" or (type(v) is int and v == 0):
                continue
            out[key] = v
        return out

    @classmethod
    def _present_when_set(cls) -> frozenset[str]:
        """Attributes declared ``Model | None``: their presence is meaningful."""
        got = cls.__dict__.get("_present")
        if got is None:
            got = frozenset(
                fl.name for fl in dataclasses.fields(cls)  # type: ignore[arg-type]
                if fl.default is None and any(isinstance(a, type) and issubclass(a, Model)
                                              for a in typing.get_args(field_hints(cls)[fl.name]))
            )
            cls._present = got  # type: ignore[attr-defined]
        return got

    def redacted(self) -> Self:
        """A deep copy with every sensitive, non-empty field replaced by ``******``."""
        new = dataclasses.replace(self)  # type: ignore[type-var]
        for fl in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, fl.name)
            if fl.metadata.get("sensitive") and v:
                setattr(new, fl.name, REDACTED)
            else:
                setattr(new, fl.name, _redact_value(v))
        return new


# Secrets inside opaque sections (registry auth and client identities, wireguard keys,
# disk-encryption passphrases) are recognised by key name.
SECRET_KEYS = frozenset({"password", "auth", "identityToken", "privateKey", "presharedKey", "passphrase", "key"})


def _redact_value(v: Any) -> Any:
    if isinstance(v, Model):
        return v.redacted()
    if isinstance(v, list):
        return [_redact_value(x) for x in v]
    if isinstance(v, dict):
        return {
            k: REDACTED if k in SECRET_KEYS and isinstance(x, str) and x else _redact_value(x) for k, x in v.items()
        }
    return v


def encode_value(v: Any) -> Any:
    if isinstance(v, Model):
        d = v.encode()
        return d or None
    if isinstance(v, list):
        return [encode_value(x) if not isinstance(x, Model) else x.encode() for x in v]
    if isinstance(v, dict):
        return {k: encode_value(x) for k, x in v.items()}
    return v


_OCTAL_12 = re.compile(r"^0o[0-7]{1,22}$")


def _scalar_text(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return v


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean (true/false)", float: "a number"}


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if isinstance(tp, type) and issubclass(tp, Model):
        return f"a mapping ({tp.__name__})"
    return _TYPE_NAMES.get(tp, str(tp))


def decode_value(tp: Any, v: Any, path: str, dec: Decoder) -> Any:
    """Decode plain YAML data ``v`` as type ``tp``; on error record it and return a default."""
    breathe()
    origin = typing.get_origin(tp)
    if tp is Any:
        return v
    if origin in (typing.Union, types.UnionType):
        if v is None:
            return None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        for a in args:
            sub = Decoder(dec.strict)
            out = decode_value(a, v, path, sub)
            if not sub.errors:
                dec.warnings.extend(sub.warnings)
                return out
        if len(args) == 1:
            return decode_value(args[0], v, path, dec)
        dec.error(path, v, type_name(tp))
        return None
    if origin is list:
        (inner,) = typing.get_args(tp)
        if v is None:
            return []
        if not isinstance(v, list):
            dec.error(path, v, f"a list of {type_name(inner).removeprefix('a ').removeprefix('an ')}")
            return []
        return [decode_value(inner, x, join_path(path, i), dec) for i, x in enumerate(v)]
    if origin is dict:
        _, inner = typing.get_args(tp)
        if v is None:
            return {}
        if not isinstance(v, dict):
            dec.error(path, v, "a mapping")
            return {}
        if inner is str:
            # map values (extraArgs, sysctls, env, labels) are strings, but YAML users write
            # `net.ipv4.ip_forward: 1` or `flag: true`; take the scalar's YAML text
            v = {k: _scalar_text(x) for k, x in v.items()}
        return {str(k): decode_value(inner, x, join_path(path, str(k)), dec) for k, x in v.items()}
    if isinstance(tp, type) and issubclass(tp, Model):
        return tp.decode(v, path, dec)
    if tp is bool:
        if isinstance(v, bool) or v is None:
            return bool(v)
        dec.error(path, v, "a boolean (true/false)")
        return False
    if tp is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, str) and _OCTAL_12.match(v):
            return int(v[2:], 8)  # YAML 1.2 octal (Talos writes `permissions: 0o644`)
        if v is None:
            return 0
        dec.error(path, v, "an integer")
        return 0
    if tp is float:
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
        dec.error(path, v, "a finite number")
        return 0.0
    if tp is str:
        if isinstance(v, str):
            return v
        if v is None:
            return ""
        dec.error(path, v, "a string")
        return ""
    raise TypeError(f"schema: unsupported field type {tp!r} at {path}")
