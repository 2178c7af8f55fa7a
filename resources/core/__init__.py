"""The COSI core of kos: resource metadata, versions, queries, definitions, errors and states.

Everything a controller or an API needs to talk about resources is importable from here::

    from kos.resources.core import Metadata, Resource, Phase, InMemoryState, ...
"""

from typing import TYPE_CHECKING

from kos.resources.core.echo import ECHO_CHARS, MESSAGE_CHARS, cap, echo
from kos.resources.lazy import surface, table_of

if TYPE_CHECKING:
    from kos.resources.core.definition import (
        REGISTRY,
        AmbiguousTypeError,
        Registry,
        ResourceDefinition,
        Sensitivity,
        automatic_aliases,
        resource_type,
        singular,
    )
    from kos.resources.core.errors import (
        ConflictError,
        InvalidWatchBookmarkError,
        NotFoundError,
        OwnerConflictError,
        PhaseConflictError,
        StateError,
        UnsupportedError,
        is_conflict,
    )
    from kos.resources.core.events import (
        Event,
        EventType,
    )
    from kos.resources.core.inmem import (
        InMemoryState,
        NamespacedState,
    )
    from kos.resources.core.meta import (
        NamespaceSpec,
        ResourceDefinitionSpec,
        publish_meta,
    )
    from kos.resources.core.metadata import (
        Kind,
        Metadata,
        Phase,
        Pointer,
        parse_version,
        version_string,
    )
    from kos.resources.core.query import (
        IDQuery,
        LabelOp,
        LabelQuery,
        LabelTerm,
        matches_labels,
        parse_number,
    )
    from kos.resources.core.resource import (
        Resource,
        tombstone,
    )
    from kos.resources.core.slicing import (
        TimeSlice,
    )
    from kos.resources.core.spec import (
        EMPTY_SPEC,
        DynamicSpec,
        EmptySpec,
        Spec,
        spec_field,
    )
    from kos.resources.core.sqlite_store import (
        SqliteStore,
    )
    from kos.resources.core.state import (
        AggregatedWatchStream,
        State,
        WatchKindArgs,
        WatchKindOptions,
        WatchStream,
    )
    from kos.resources.core.yamlfmt import (
        dump,
        metadata_yaml,
        resource_yaml,
        spec_yaml,
    )

__getattr__ = surface(
    __name__,
    globals(),
    table_of(
        {
            "definition": (
                "REGISTRY",
                "AmbiguousTypeError",
                "Registry",
                "ResourceDefinition",
                "Sensitivity",
                "automatic_aliases",
                "resource_type",
                "singular",
            ),
            "errors": (
                "ConflictError",
                "InvalidWatchBookmarkError",
                "NotFoundError",
                "OwnerConflictError",
                "PhaseConflictError",
                "StateError",
                "UnsupportedError",
                "is_conflict",
            ),
            "events": (
                "Event",
                "EventType",
            ),
            "inmem": (
                "InMemoryState",
                "NamespacedState",
            ),
            "meta": (
                "NamespaceSpec",
                "ResourceDefinitionSpec",
                "publish_meta",
            ),
            "metadata": (
                "Kind",
                "Metadata",
                "Phase",
                "Pointer",
                "parse_version",
                "version_string",
            ),
            "query": (
                "IDQuery",
                "LabelOp",
                "LabelQuery",
                "LabelTerm",
                "matches_labels",
                "parse_number",
            ),
            "resource": (
                "Resource",
                "tombstone",
            ),
            "slicing": ("TimeSlice",),
            "spec": (
                "EMPTY_SPEC",
                "DynamicSpec",
                "EmptySpec",
                "Spec",
                "spec_field",
            ),
            "sqlite_store": ("SqliteStore",),
            "state": (
                "AggregatedWatchStream",
                "State",
                "WatchKindArgs",
                "WatchKindOptions",
                "WatchStream",
            ),
            "yamlfmt": (
                "dump",
                "metadata_yaml",
                "resource_yaml",
                "spec_yaml",
            ),
        }
    ),
)

__all__ = [
    "ECHO_CHARS",
    "EMPTY_SPEC",
    "MESSAGE_CHARS",
    "REGISTRY",
    "AggregatedWatchStream",
    "AmbiguousTypeError",
    "ConflictError",
    "DynamicSpec",
    "EmptySpec",
    "Event",
    "EventType",
    "IDQuery",
    "InMemoryState",
    "InvalidWatchBookmarkError",
    "Kind",
    "LabelOp",
    "LabelQuery",
    "LabelTerm",
    "Metadata",
    "NamespaceSpec",
    "NamespacedState",
    "NotFoundError",
    "OwnerConflictError",
    "Phase",
    "PhaseConflictError",
    "Pointer",
    "Registry",
    "Resource",
    "ResourceDefinition",
    "ResourceDefinitionSpec",
    "Sensitivity",
    "Spec",
    "SqliteStore",
    "State",
    "StateError",
    "TimeSlice",
    "UnsupportedError",
    "WatchKindArgs",
    "WatchKindOptions",
    "WatchStream",
    "automatic_aliases",
    "cap",
    "dump",
    "echo",
    "is_conflict",
    "matches_labels",
    "metadata_yaml",
    "parse_number",
    "parse_version",
    "publish_meta",
    "resource_type",
    "resource_yaml",
    "singular",
    "spec_field",
    "spec_yaml",
    "tombstone",
    "version_string",
]
