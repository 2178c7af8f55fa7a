"""Small resource types used by the store tests (registered under the conformance suffix)."""

from __future__ import annotations

from dataclasses import dataclass

from kos.resources.core import Kind, Pointer, Resource, Spec, resource_type, spec_field

NS = "default"


@resource_type("Counters.conformance.kos.dev", namespace=NS, print_columns=[("Value", "{.value}")])
@dataclass
class CounterSpec(Spec):
    value: int = spec_field(1, default=0)
    note: str = spec_field(2, default="")
    tags: list[str] = spec_field(3, default_factory=list)


COUNTERS = Kind(NS, CounterSpec.definition.type)


def counter(id: str, value: int = 0, *, labels: dict[str, str] | None = None, ns: str = NS) -> Resource[CounterSpec]:
    return Resource.new(CounterSpec(value=value), id, namespace=ns, labels=labels or {})


def ptr(id: str, ns: str = NS) -> Pointer:
    return Pointer(ns, CounterSpec.definition.type, id)
