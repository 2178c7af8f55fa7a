"""The ``meta`` namespace: Namespaces and ResourceDefinitions as resources (cosi-semantics.md 1.5).

``publish_meta(state, registry, namespaces)`` writes one ``Namespace`` per namespace and one
``ResourceDefinition`` (id = lower-cased type) per registered type, owned by ``meta``, so
that clients (``kosctl get rd``, ``kosctl get ns``) discover what a node serves. It is
idempotent: unchanged definitions keep their versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kos.resources.core.definition import (
    REGISTRY,
    PrintColumn,
    Registry,
    ResourceDefinition,
    Sensitivity,
    resource_type,
)
from kos.resources.core.resource import Resource
from kos.resources.core.spec import Spec, spec_field
from kos.resources.core.state import State

META_NAMESPACE = "meta"
META_OWNER = "meta"


@resource_type("Namespaces.meta.cosi.dev", namespace=META_NAMESPACE, aliases=["ns"])
@dataclass
class NamespaceSpec(Spec):
    description: str = spec_field(1, default="")


@dataclass
class PrintColumnSpec(Spec):
    name: str = spec_field(1, default="")
    json_path: str = spec_field(2, yaml="jsonPath", default="")


@resource_type(
    "ResourceDefinitions.meta.cosi.dev",
    namespace=META_NAMESPACE,
    aliases=["api-resources"],
    print_columns=[("Aliases", "{.aliases}")],
)
@dataclass
class ResourceDefinitionSpec(Spec):
    type: str = spec_field(1, default="")
    display_type: str = spec_field(2, yaml="displayType", default="")
    default_namespace: str = spec_field(3, yaml="defaultNamespace", default="")
    aliases: list[str] = spec_field(4, default_factory=list)
    all_aliases: list[str] = spec_field(5, yaml="allAliases", default_factory=list)
    print_columns: list[PrintColumnSpec] = spec_field(6, yaml="printColumns", default_factory=list)
    sensitivity: Sensitivity = spec_field(7, default=Sensitivity.NON_SENSITIVE)
    skip_automatic_aliases: bool = spec_field(None, yaml="skipAutomaticAliases", omitempty=True, default=False)

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "displayType": self.display_type,
            "defaultNamespace": self.default_namespace,
            "aliases": list(self.aliases),
            "allAliases": list(self.all_aliases),
        }
        if self.skip_automatic_aliases:
            out["skipAutomaticAliases"] = True
        out["printColumns"] = [{"name": c.name, "jsonPath": c.json_path} for c in self.print_columns]
        if self.sensitivity == Sensitivity.SENSITIVE:
            out["sensitivity"] = "sensitive"
        return out

    @classmethod
    def from_definition(cls, d: ResourceDefinition) -> ResourceDefinitionSpec:
        return cls(
            type=d.type,
            display_type=d.display_type,
            default_namespace=d.default_namespace,
            aliases=list(d.aliases),
            all_aliases=list(d.all_aliases),
            print_columns=[PrintColumnSpec(c.name, c.json_path) for c in d.print_columns],
            sensitivity=d.sensitivity,
            skip_automatic_aliases=d.skip_automatic_aliases,
        )

    def to_definition(self) -> ResourceDefinition:
        return ResourceDefinition(
            type=self.type,
            display_type=self.display_type,
            default_namespace=self.default_namespace,
            aliases=tuple(self.aliases),
            all_aliases=tuple(self.all_aliases),
            print_columns=tuple(PrintColumn(c.name, c.json_path) for c in self.print_columns),
            sensitivity=Sensitivity(self.sensitivity),
            skip_automatic_aliases=self.skip_automatic_aliases,
        )


async def publish_meta(
    state: State, registry: Registry = REGISTRY, namespaces: dict[str, str] | None = None
) -> None:
    """Create/refresh the meta resources for every registered type and the given namespaces
    (name -> description). Namespaces used as RD defaults are added automatically."""
    all_ns = {META_NAMESPACE: "Metadata namespace which contains resource and namespace definitions."}
    for d in registry:
        all_ns.setdefault(d.default_namespace, "")
    all_ns.update(namespaces or {})
    for name, description in sorted(all_ns.items()):
        spec = NamespaceSpec(description=description)
        await state.modify(
            Resource.new(NamespaceSpec(), name),
            lambda r, spec=spec: setattr(r, "spec", spec.copy()),  # type: ignore[misc]
            owner=META_OWNER,
        )
    for d in registry:
        rd = ResourceDefinitionSpec.from_definition(d)
        await state.modify(
            Resource.new(ResourceDefinitionSpec(), d.id),
            lambda r, rd=rd: setattr(r, "spec", rd.copy()),  # type: ignore[misc]
            owner=META_OWNER,
        )
