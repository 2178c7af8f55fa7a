"""The client configuration file (``kosconfig``, like talosconfig).

Default path ``~/.kos/config``, overridden by ``$KOSCONFIG`` or ``--kosconfig``. YAML::

    context: prod
    contexts:
        prod:
            endpoints: [10.5.0.2, 10.5.0.3:50000]
            nodes: [10.5.0.2]
            ca: <base64 PEM>
            crt: <base64 PEM>
            key: <base64 PEM>

Bad files raise ``ConfigError`` naming the file, the key and what was expected.

This is the one implementation of the format. It lives in the resources layer because the
config generator (``kosctl gen config``) writes one; ``kos.apis.client`` re-exports these
classes, and kosctl, machined, the cluster tools and the tests all read and write kosconfig
files through them. In memory the CA, certificate and key are PEM
bytes; in the file they are base64 text.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

from kos.resources import plainyaml

DEFAULT_PORT = 50000


class ConfigError(ValueError):
    pass


def default_path() -> Path:
    env = os.environ.get("KOSCONFIG")
    if env:
        return Path(env)
    return Path.home() / ".kos" / "config"


class Context:
    """One context: where the API is and the client's mutual-TLS material. (Plain classes
    here, not dataclasses: every kosctl command reads a kosconfig, and importing
    ``dataclasses`` costs more than the reading.)"""

    def __init__(self, endpoints: list[str] | None = None, nodes: list[str] | None = None, ca: bytes = b"",
                 crt: bytes = b"", key: bytes = b"") -> None:
        self.endpoints: list[str] = endpoints if endpoints is not None else []
        self.nodes: list[str] = nodes if nodes is not None else []
        self.ca = ca
        self.crt = crt
        self.key = key

    def _fields(self) -> tuple[Any, ...]:
        return (self.endpoints, self.nodes, self.ca, self.crt, self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Context) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass with eq

    def __repr__(self) -> str:
        return (f"Context(endpoints={self.endpoints!r}, nodes={self.nodes!r}, ca=<{len(self.ca)} bytes>, "
                f"crt=<{len(self.crt)} bytes>, key=<{len(self.key)} bytes>)")

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"endpoints": list(self.endpoints)}
        if self.nodes:
            out["nodes"] = list(self.nodes)
        for k in ("ca", "crt", "key"):
            v = getattr(self, k)
            if v:
                out[k] = base64.b64encode(v).decode()
        return out

    @classmethod
    def from_yaml(cls, data: Any, where: str) -> Context:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping")
        ctx = cls()
        for key in ("endpoints", "nodes"):
            v = data.get(key) or []
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ConfigError(f"{where}.{key}: expected a list of strings, got {v!r}")
            setattr(ctx, key, list(v))
        for key in ("ca", "crt", "key"):
            v = data.get(key)
            if v is None or v == "":
                continue
            if not isinstance(v, str):
                raise ConfigError(f"{where}.{key}: expected base64 text")
            try:
                setattr(ctx, key, base64.b64decode(v, validate=True))
            except (binascii.Error, ValueError):
                raise ConfigError(f"{where}.{key}: not valid base64") from None
        unknown = set(data) - {"endpoints", "nodes", "ca", "crt", "key"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
        return ctx


class ClientConfig:
    def __init__(self, context: str = "", contexts: dict[str, Context] | None = None, path: Path | None = None) -> None:
        self.context = context
        self.contexts: dict[str, Context] = contexts if contexts is not None else {}
        self.path = path  # where it was read from (not compared)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClientConfig) and (self.context, self.contexts) == (other.context, other.contexts)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ClientConfig(context={self.context!r}, contexts={self.contexts!r}, path={self.path!r})"

    default_path = staticmethod(default_path)

    @classmethod
    def load(cls, path: Path | str | None = None, *, missing_ok: bool = True) -> ClientConfig:
        """Read a kosconfig file (default ``$KOSCONFIG`` or ``~/.kos/config``); a missing file is
        an empty config unless ``missing_ok`` is false. ``parse`` reads YAML text."""
        p = Path(path) if path is not None else default_path()
        try:
            text = p.read_text()
        except FileNotFoundError:
            if missing_ok:
                return cls(path=p)
            raise ConfigError(f"{p}: client config not found (use --kosconfig or $KOSCONFIG)") from None
        return cls.parse(text, p)

    @classmethod
    def parse(cls, text: str, path: Path | None = None) -> ClientConfig:
        where = str(path or "kosconfig")
        try:
            data = plainyaml.parse_subset(text) or {}  # what kos writes, without importing PyYAML
        except plainyaml.OutsideSubset:
            import yaml

            try:
                data = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{where}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping at the top level")
        ctxs = data.get("contexts") or {}
        if not isinstance(ctxs, dict):
            raise ConfigError(f"{where}: contexts: expected a mapping of name -> context")
        cfg = cls(context=str(data.get("context") or ""), path=path)
        for name, c in ctxs.items():
            cfg.contexts[str(name)] = Context.from_yaml(c, f"{where}: contexts.{name}")
        if cfg.context and cfg.context not in cfg.contexts:
            raise ConfigError(f"{where}: context {cfg.context!r} is not among contexts {sorted(cfg.contexts)}")
        return cfg

    @classmethod
    def load_file(cls, path: Path | str | None = None) -> ClientConfig:
        """``load`` of a file that must exist."""
        return cls.load(Path(path) if path is not None else None, missing_ok=False)

    def to_yaml(self) -> str:
        return self.dump()

    def dump(self) -> str:
        data = {"context": self.context, "contexts": {n: c.to_yaml() for n, c in self.contexts.items()}}
        from kos.resources.core import dump

        return dump(data)

    def save(self, path: Path | str | None = None) -> Path:
        p = Path(path) if path is not None else (self.path or default_path())
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.dump())
        tmp.replace(p)
        return p

    def current(self, name: str | None = None) -> tuple[str, Context]:
        n = name or self.context
        if not n:
            raise ConfigError(f"{self.path or 'kosconfig'}: no current context (kosctl config context NAME)")
        try:
            return n, self.contexts[n]
        except KeyError:
            raise ConfigError(f"context {n!r} not found (have: {', '.join(sorted(self.contexts)) or 'none'})") from None

    def merge(self, other: ClientConfig) -> list[str]:
        """Add ``other``'s contexts; a name already present gets a ``-1``, ``-2``... suffix.
        Returns the names added; the current context becomes other's (renamed) current one."""
        added = []
        renamed: dict[str, str] = {}
        for name, c in other.contexts.items():
            new = name
            i = 1
            while new in self.contexts:
                new = f"{name}-{i}"
                i += 1
            self.contexts[new] = c
            renamed[name] = new
            added.append(new)
        if other.context:
            self.context = renamed.get(other.context, other.context)
        return added
