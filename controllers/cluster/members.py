"""``MemberController``: one ``Members(<hostname>)`` per ``Affiliates`` resource that has a
hostname (Talos's Members are the affiliates by node name)."""

from __future__ import annotations

from typing import Any

from kos.controllers.runtime import TransformController, transform
from kos.resources.cluster import AffiliateSpec, MemberSpec
from kos.resources.core import Resource


def _map(inp: Resource[Any]) -> Resource[Any] | None:
    hostname = inp.spec.hostname
    return Resource.new(MemberSpec(), hostname) if hostname else None


def _fill(rt: Any, inp: Resource[Any], out: Resource[Any]) -> None:
    a: AffiliateSpec = inp.spec
    out.spec = MemberSpec(node_id=a.node_id, hostname=a.hostname, machine_type=a.machine_type,
                          operating_system=a.operating_system, addresses=list(a.addresses))


def member_controller() -> TransformController[AffiliateSpec, MemberSpec]:
    return transform("cluster.MemberController", AffiliateSpec, MemberSpec, _fill, map_fn=_map)
