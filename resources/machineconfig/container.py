"""A whole machine config: the v1alpha1 document plus the multi-doc documents. Loading
(strict: unknown fields are errors; non-strict: warnings), stable YAML output, redaction,
and the raw per-document data that patches work on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kos.resources.machineconfig import yamlio
from kos.resources.machineconfig.documents import DOCUMENT_KINDS, Document, is_v1alpha1
from kos.resources.machineconfig.errors import MISSING, ConfigError, ConfigErrors
from kos.resources.machineconfig.schema import Decoder
from kos.resources.machineconfig.v1alpha1 import Config

D = TypeVar("D", bound=Document)


@dataclass
class ConfigContainer:
    """The config of one machine. ``warnings`` holds what non-strict loading tolerated."""

    v1alpha1: Config | None = None
    documents: list[Document] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list, compare=False)

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, text: str | bytes, *, strict: bool = True) -> ConfigContainer:
        """Parse YAML text; raises ``ConfigErrors`` listing every problem found."""
        return cls.from_data(yamlio.load_all(text), strict=strict)

    @classmethod
    def from_data(cls, docs: Iterable[Any], *, strict: bool = True) -> ConfigContainer:
        dec = Decoder(strict=strict)
        out = cls()
        seen: dict[tuple[str, str, str], str] = {}
        for i, data in enumerate(docs):
            prefix = f"<document {i}>"
            if not isinstance(data, dict):
                dec.error(prefix, data, "a mapping (a v1alpha1 config or an apiVersion/kind document)")
                continue
            if is_v1alpha1(data):
                if out.v1alpha1 is not None:
                    dec.error(prefix, "v1alpha1", "at most one v1alpha1 document")
                    continue
                version = data.get("version", MISSING)
                if version != "v1alpha1":
                    dec.error("version", version, "'v1alpha1'")
                out.v1alpha1 = Config.decode(data, "", dec)
                continue
            kind = data.get("kind", MISSING)
            doc_cls = DOCUMENT_KINDS.get(kind) if isinstance(kind, str) else None
            if doc_cls is None:
                e = ConfigError(f"{prefix}.kind", kind, f"one of {', '.join(DOCUMENT_KINDS)}")
                (dec.errors if strict else dec.warnings).append(e)
                continue
            if data.get("apiVersion", MISSING) != doc_cls.API_VERSION:
                dec.error(f"{kind}.apiVersion", data.get("apiVersion", MISSING), repr(doc_cls.API_VERSION))
                continue
            doc = doc_cls.decode(data, kind + (f"[{data.get('name')}]" if doc_cls.NAMED else ""), dec)
            if doc_cls.NAMED and not doc.doc_name:
                dec.error(f"{kind}.name", data.get("name", MISSING), "a non-empty name")
            if doc.key in seen:
                dec.error(f"{prefix}", doc.describe(), f"one {doc.describe()} document (also {seen[doc.key]})")
                continue
            seen[doc.key] = prefix
            out.documents.append(doc)
        if not out.v1alpha1 and not out.documents and not dec.errors:
            dec.error("", "empty", "at least one config document")
        dec.raise_if_errors()
        out.warnings = dec.warnings
        return out

    # -- access --------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        """The v1alpha1 document (an empty one if the config has only multi-doc documents)."""
        return self.v1alpha1 if self.v1alpha1 is not None else Config()

    def documents_of(self, cls: type[D]) -> Iterator[D]:
        for d in self.documents:
            if isinstance(d, cls):
                yield d

    def document(self, cls: type[D], name: str = "") -> D | None:
        return next((d for d in self.documents_of(cls) if d.doc_name == name), None)

    @property
    def machine_type(self) -> str:
        return self.config.machine_type

    # -- output --------------------------------------------------------------------------
    def to_data(self) -> list[dict[str, Any]]:
        docs = [self.v1alpha1.encode()] if self.v1alpha1 is not None else []
        for d in self.documents:
            body = {k: v for k, v in d.encode().items() if k not in ("apiVersion", "kind")}
            docs.append({"apiVersion": d.API_VERSION, "kind": d.KIND, **body})
        return docs

    def to_yaml(self) -> str:
        return yamlio.dump_all(self.to_data())

    def redacted(self) -> ConfigContainer:
        """A copy with secrets (tokens, CA and service-account keys...) replaced by ``******``."""
        return ConfigContainer(
            self.v1alpha1.redacted() if self.v1alpha1 is not None else None,
            [d.redacted() for d in self.documents],
            list(self.warnings),
        )

    def validate(self, mode: str = "metal") -> list[ConfigError]:
        """Validate for a runtime mode (``metal``/``cloud``/``container``); returns warnings,
        raises ``ConfigErrors`` with every error."""
        from kos.resources.machineconfig.validate import validate

        return validate(self, mode)


def load(text: str | bytes, *, strict: bool = True) -> ConfigContainer:
    return ConfigContainer.load(text, strict=strict)


def check_errors(errors: list[ConfigError], what: str = "config") -> None:
    if errors:
        raise ConfigErrors(errors, what=what)
