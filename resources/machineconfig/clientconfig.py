"""The kosctl client config (``kosconfig``): named contexts, each with API endpoints, default
target nodes, and base64 PEM CA / client certificate / client key; ``context`` names the
current one. Same shape as ``talosconfig``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kos.resources.core.spec import spec_field
from kos.resources.machineconfig import yamlio
from kos.resources.machineconfig.errors import MISSING
from kos.resources.machineconfig.schema import Decoder, Model


@dataclass
class Context(Model):
    endpoints: list[str] = spec_field(default_factory=list)
    nodes: list[str] = spec_field(default_factory=list)
    ca: str = spec_field(default="")
    crt: str = spec_field(default="")
    key: str = spec_field(default="", sensitive=True)


@dataclass
class ClientConfig(Model):
    context: str = spec_field(default="")
    contexts: dict[str, Context] = spec_field(default_factory=dict)

    @classmethod
    def load(cls, text: str | bytes) -> ClientConfig:
        docs = yamlio.load_all(text, what="client config")
        dec = Decoder(strict=True)
        cfg = cls.decode(docs[0] if docs else {}, "", dec)
        if cfg.context and cfg.context not in cfg.contexts:
            dec.error("context", cfg.context, f"one of the contexts ({', '.join(cfg.contexts) or 'none defined'})")
        for name, ctx in cfg.contexts.items():
            for key in ("ca", "crt", "key"):
                if not getattr(ctx, key):
                    dec.error(f"contexts.{name}.{key}", MISSING, "base64 PEM data")
        dec.raise_if_errors("client config")
        return cfg

    @staticmethod
    def default_path() -> Path:
        """``$KOSCONFIG`` if set, else ``~/.kos/config``."""
        env = os.environ.get("KOSCONFIG")
        return Path(env) if env else Path.home() / ".kos" / "config"

    @classmethod
    def load_file(cls, path: str | os.PathLike[str] | None = None) -> ClientConfig:
        p = Path(path) if path is not None else cls.default_path()
        try:
            text = p.read_text()
        except OSError as exc:
            raise ValueError(f"client config {str(p)!r}: {exc.strerror or exc}") from exc
        return cls.load(text)

    def current(self, name: str | None = None) -> Context:
        """The named context (default: the current one); ``KeyError`` naming the choices."""
        key = name or self.context
        if key not in self.contexts:
            choices = ", ".join(self.contexts) or "none defined"
            raise KeyError(f"context {key!r} is not defined (contexts: {choices})")
        return self.contexts[key]

    def merge(self, other: ClientConfig) -> None:
        """Add ``other``'s contexts (renaming clashes ``name-1``...) and switch to its current one."""
        renamed: dict[str, str] = {}
        for name, ctx in other.contexts.items():
            new = name
            i = 1
            while new in self.contexts:
                new = f"{name}-{i}"
                i += 1
            self.contexts[new] = ctx
            renamed[name] = new
        if other.context:
            self.context = renamed.get(other.context, other.context)

    def to_yaml(self) -> str:
        return yamlio.dump(self.encode())
