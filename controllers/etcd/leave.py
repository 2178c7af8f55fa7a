"""Leaving the etcd cluster for good: what EtcdLeaveCluster and a graceful reset do.

``leave_local_member(state, paths)`` removes the local member through the *other* members
(leadership is handed over first when it leads; the local etcd stops once it sees its removal),
then records ``left`` in the bootstrap marker, so the EtcdSpec controller drops the spec and the
etcd service stays stopped (it is not started again until the node is reset).
"""

from __future__ import annotations

import dataclasses

import anyio

from kos.apis.etcd import EtcdClient, format_member_id
from kos.controllers.etcd.join import leave_cluster
from kos.controllers.etcd.marker import EtcdPaths, publish_marker, read_marker
from kos.resources.core import State
from kos.resources.etcd import ETCD_SPECS


class NotRunningError(Exception):
    """etcd does not run on this node (no EtcdSpec)."""


class OnlyVoterError(Exception):
    """The local member is the only voter: leaving would destroy the cluster."""


async def leave_local_member(state: State, paths: EtcdPaths, *, timeout: float = 10.0) -> str:
    """Leave; returns the member's name. Raises NotRunningError, OnlyVoterError, EtcdError,
    MarkerError."""
    spec_r = await state.get_or_none(ETCD_SPECS.pointer("etcd"))
    if spec_r is None:
        raise NotRunningError("etcd is not running on this node (not a control plane, not bootstrapped or not "
                              "joined yet)")
    async with EtcdClient(spec_r.spec.advertise_client_urls[:1], paths.admin_tls, timeout=timeout) as c:
        own = (await c.status()).member_id
        members = await c.member_list()
    voters = [m for m in members if not m.is_learner and m.id != own]
    if not voters:
        raise OnlyVoterError("this node is the only etcd voter: leaving would destroy the cluster")
    name = next((m.name for m in members if m.id == own), format_member_id(own))
    others = [u for m in voters for u in m.client_urls]
    async with EtcdClient(others, paths.admin_tls, timeout=timeout) as rest:
        await leave_cluster(rest, own, timeout=timeout * 3)
    marker = await anyio.to_thread.run_sync(read_marker, paths.marker)
    await publish_marker(state, paths.marker, dataclasses.replace(marker, left=True))
    return name
