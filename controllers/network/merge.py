"""Reduce the layered specs of ``network-config`` into the merged specs of ``network``.

The merge rules (pure functions, property-tested):

* **links**: by name, field by field: each field takes the value of the highest layer that
  sets it (a non-default value); the merged ``layer`` is the highest contributing layer.
* **addresses, routes, operators**: the union by id; on the same id the higher layer's spec
  wins whole.
* **hostname, time servers**: the highest layer's spec wins whole.
* **resolvers**: ``dnsServers`` and ``searchDomains`` are chosen separately, each from the
  highest layer that sets a non-empty list (so DHCP-provided search domains survive a
  configuration that only lists name servers).

Within one layer an id appears at most once (layered ids are ``<layer>/<id>``); should two
specs still tie, the one with the larger YAML text wins, so the result never depends on input
order.

``MergeController`` runs one merge per kind: merged specs are written with ``modify`` (no
write when unchanged); merged specs no layer asks for any more are torn down and destroyed
once the apply controllers have removed their finalizers (i.e. cleaned the kernel).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from kos.controllers.runtime import Controller, ControllerRuntime, Input, InputKind, Output, OutputKind
from kos.resources.core import Kind, NotFoundError, Phase, Pointer, Resource, Spec
from kos.resources.network import (
    NAMESPACE,
    ConfigLayer,
    LinkSpecSpec,
    ResolverSpecSpec,
    config_kind,
    split_layered_id,
)

S = TypeVar("S", bound=Spec)

Layered = tuple[str, Any]  # (id without layer prefix, spec with .layer)


def _key(spec: Any) -> tuple[int, str]:
    return (int(spec.layer), repr(spec.to_yaml()))


def merge_by_id(items: Iterable[Layered]) -> dict[str, Any]:
    """Union by id; the highest layer wins whole."""
    out: dict[str, Any] = {}
    for id, spec in items:
        cur = out.get(id)
        if cur is None or _key(spec) > _key(cur):
            out[id] = spec
    return {k: out[k].copy() for k in sorted(out)}


def merge_single(items: Iterable[Layered]) -> dict[str, Any]:
    """One spec per id (hostname, time servers): the highest layer wins."""
    return merge_by_id(items)


_LINK_FIELDS = [f.name for f in dataclasses.fields(LinkSpecSpec) if f.name not in ("name", "layer")]
_LINK_DEFAULTS = LinkSpecSpec()


def merge_links(items: Iterable[Layered]) -> dict[str, LinkSpecSpec]:
    """Field by field: each field from the highest layer that sets it."""
    by_name: dict[str, list[LinkSpecSpec]] = {}
    for id, spec in items:
        by_name.setdefault(id, []).append(spec)
    out: dict[str, LinkSpecSpec] = {}
    for name in sorted(by_name):
        specs = sorted(by_name[name], key=_key)  # ascending: later ones win
        merged = LinkSpecSpec(name=name, layer=specs[-1].layer)
        for f in _LINK_FIELDS:
            default = getattr(_LINK_DEFAULTS, f)
            for s in specs:
                v = getattr(s, f)
                if v != default:
                    setattr(merged, f, v)
        out[name] = merged
    return out


def merge_resolvers(items: Iterable[Layered]) -> dict[str, ResolverSpecSpec]:
    by_id: dict[str, list[ResolverSpecSpec]] = {}
    for id, spec in items:
        by_id.setdefault(id, []).append(spec)
    out: dict[str, ResolverSpecSpec] = {}
    for id in sorted(by_id):
        specs = sorted(by_id[id], key=_key)
        merged = ResolverSpecSpec(layer=ConfigLayer.DEFAULT)
        for s in specs:
            if s.dns_servers:
                merged.dns_servers = list(s.dns_servers)
                merged.layer = max(merged.layer, s.layer)
            if s.search_domains:
                merged.search_domains = list(s.search_domains)
                merged.layer = max(merged.layer, s.layer)
        out[id] = merged
    return out


MergeFn = Callable[[Iterable[Layered]], dict[str, Any]]


class MergeController(Controller):
    """``network-config`` layered specs of one type -> merged specs in ``network``."""

    def __init__(self, spec_class: type[Spec], merge: MergeFn) -> None:
        self.spec_class = spec_class
        self.merge = merge
        self.out_kind = Kind(NAMESPACE, spec_class.definition.type)
        self.in_kind = config_kind(self.out_kind)
        self.name = f"network.{spec_class.definition.display_type}MergeController"

    def inputs(self) -> Sequence[Input]:
        return (
            Input(self.in_kind.namespace, self.in_kind.type, None, InputKind.WEAK),
            Input(self.out_kind.namespace, self.out_kind.type, None, InputKind.DESTROY_READY),
        )

    def outputs(self) -> Sequence[Output]:
        return (Output(self.out_kind.type, OutputKind.SHARED),)

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            await self.cycle(rt)

    async def cycle(self, rt: ControllerRuntime) -> None:
        layered: list[Layered] = []
        for r in await rt.list(self.in_kind):
            if r.metadata.phase != Phase.RUNNING:
                continue
            _, id = split_layered_id(r.metadata.id)
            layered.append((id, r.spec))
        merged = self.merge(layered)
        for id, spec in merged.items():
            ptr = Pointer(self.out_kind.namespace, self.out_kind.type, id)
            cur = await rt.get_or_none(ptr)
            if cur is not None and cur.metadata.phase == Phase.TEARING_DOWN:
                # being removed from the kernel: recreate once it is gone (destroy-ready input)
                if not cur.metadata.finalizers:
                    await rt.destroy(ptr)
                    cur = None
                else:
                    continue

            def fill(r: Resource[Any], spec: Any = spec) -> None:
                r.spec = spec

            await rt.modify(Resource.new(self.spec_class(), id, namespace=self.out_kind.namespace), fill)
        for r in await rt.list(self.out_kind):
            if r.metadata.owner != self.name or r.metadata.id in merged:
                continue
            try:
                if await rt.teardown(r.pointer):
                    await rt.destroy(r.pointer)
            except NotFoundError:
                pass
        rt.reset_restart_backoff()
