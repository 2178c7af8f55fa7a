"""Small resource types for the runtime tests (the COSI conformance ``test/int``, ``test/str``,
``test/sentence`` resources)."""

from __future__ import annotations

from dataclasses import dataclass

from kos.resources.core import Kind, Pointer, Resource, Spec, resource_type, spec_field

NS = "default"


@resource_type("IntResources.test.kos.dev", namespace=NS, print_columns=[("Value", "{.value}")])
@dataclass
class IntSpec(Spec):
    value: int = spec_field(1, default=0)


@resource_type("StrResources.test.kos.dev", namespace=NS, print_columns=[("Value", "{.value}")])
@dataclass
class StrSpec(Spec):
    value: str = spec_field(1, default="")


@resource_type("SentenceResources.test.kos.dev", namespace=NS, print_columns=[("Value", "{.value}")])
@dataclass
class SentenceSpec(Spec):
    value: str = spec_field(1, default="")


INTS = Kind(NS, IntSpec.definition.type)
STRS = Kind(NS, StrSpec.definition.type)
SENTENCES = Kind(NS, SentenceSpec.definition.type)


def int_res(id: str, value: int, ns: str = NS) -> Resource[IntSpec]:
    return Resource.new(IntSpec(value=value), id, namespace=ns)


def str_res(id: str, value: str = "", ns: str = NS) -> Resource[StrSpec]:
    return Resource.new(StrSpec(value=value), id, namespace=ns)


def int_ptr(id: str, ns: str = NS) -> Pointer:
    return Pointer(ns, INTS.type, id)


def str_ptr(id: str, ns: str = NS) -> Pointer:
    return Pointer(ns, STRS.type, id)


def sentence_ptr(id: str, ns: str = NS) -> Pointer:
    return Pointer(ns, SENTENCES.type, id)


def sentence_res(id: str, value: str = "", ns: str = NS) -> Resource[SentenceSpec]:
    return Resource.new(SentenceSpec(value=value), id, namespace=ns)
