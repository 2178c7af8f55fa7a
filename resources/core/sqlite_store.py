"""Persistence of chosen namespaces to an SQLite file (a ``BackingStore`` for InMemoryState).

One row per resource: metadata as JSON and the spec as its protobuf bytes. Every put/delete
is its own transaction (WAL journal, ``synchronous=FULL``), so a power loss leaves either the
old or the new row, never half of one. Specs are decoded through the resource registry;
a type this process does not know comes back as a ``DynamicSpec``.

Writes run synchronously on the event loop: they are used for the small amount of state
that must survive a reboot (node identity, config), not for hot paths.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kos.resources.core.definition import REGISTRY, Registry
from kos.resources.core.metadata import Kind, Metadata, Phase, Pointer
from kos.resources.core.resource import Resource
from kos.resources.core.spec import DynamicSpec

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    namespace TEXT NOT NULL,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    metadata TEXT NOT NULL,
    spec BLOB NOT NULL,
    PRIMARY KEY (namespace, type, id)
)
"""


def metadata_to_json(md: Metadata) -> str:
    return json.dumps(
        {
            "version": md.version,
            "owner": md.owner,
            "phase": int(md.phase),
            "finalizers": list(md.finalizers),
            "labels": md.labels,
            "annotations": md.annotations,
            "created": md.created,
            "updated": md.updated,
        },
        sort_keys=True,
    )


def metadata_from_json(ns: str, type: str, id: str, text: str) -> Metadata:
    d = json.loads(text)
    return Metadata(
        ns,
        type,
        id,
        version=d["version"],
        owner=d["owner"],
        phase=Phase(d["phase"]),
        finalizers=tuple(d["finalizers"]),
        labels=d["labels"],
        annotations=d["annotations"],
        created=d["created"],
        updated=d["updated"],
    )


class SqliteStore:
    """A BackingStore persisting the namespaces in ``namespaces`` (all if None)."""

    def __init__(self, path: str | Path, *, namespaces: Iterable[str] | None = None, registry: Registry = REGISTRY):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        self._namespaces = None if namespaces is None else frozenset(namespaces)
        self._registry = registry

    def persists(self, namespace: str) -> bool:
        return self._namespaces is None or namespace in self._namespaces

    def load(self, kind: Kind) -> Iterable[Resource[Any]]:
        if not self.persists(kind.namespace):
            return []
        rows = self._db.execute(
            "SELECT id, metadata, spec FROM resources WHERE namespace = ? AND type = ? ORDER BY id",
            (kind.namespace, kind.type),
        ).fetchall()
        spec_cls = self._registry.spec_class(kind.type)
        out: list[Resource[Any]] = []
        for id, md_text, spec_bytes in rows:
            md = metadata_from_json(kind.namespace, kind.type, id, md_text)
            spec: Any = spec_cls.unmarshal_proto(spec_bytes) if spec_cls is not None else DynamicSpec(spec_bytes)
            out.append(Resource(md, spec))
        return out

    def put(self, resource: Resource[Any]) -> None:
        md = resource.metadata
        if not self.persists(md.namespace):
            return
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO resources (namespace, type, id, metadata, spec) VALUES (?, ?, ?, ?, ?)",
                (md.namespace, md.type, md.id, metadata_to_json(md), resource.spec.marshal_proto()),
            )

    def delete(self, ptr: Pointer) -> None:
        if not self.persists(ptr.namespace):
            return
        with self._db:
            self._db.execute(
                "DELETE FROM resources WHERE namespace = ? AND type = ? AND id = ?", (ptr.namespace, ptr.type, ptr.id)
            )

    def close(self) -> None:
        self._db.close()
