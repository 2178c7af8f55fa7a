"""VIP elections (the ``operators.Election`` interface: ``wait_leader(ip)``/``wait_follower(ip)``).

* ``StaticElection`` (in ``operators``): a settable flag; the default makes every control plane
  node announce, right for a single control plane.
* ``EtcdLeaderElection``: the node whose local etcd member is the raft leader holds the VIPs,
  so at most one node of a healthy cluster announces them. The local member's status is asked
  every ``interval`` seconds (the etcd v3 API the kos client speaks has no leadership
  notification); an unreachable etcd counts as "not leader", so a node cut off from its etcd
  releases the VIP. During a leadership change two nodes may hold the VIP for up to
  ``interval``; gratuitous ARP from the new holder moves the traffic.
"""

from __future__ import annotations

import anyio

from kos.apis.etcd.client import EtcdClient, EtcdError


class EtcdLeaderElection:
    def __init__(self, client: EtcdClient, endpoint: str, *, interval: float = 1.0) -> None:
        """``endpoint``: the local member's client URL (one of ``client.endpoints``)."""
        self.client = client
        self.endpoint = endpoint
        self.interval = interval

    async def is_leader(self) -> bool:
        try:
            return (await self.client.status(self.endpoint)).is_leader
        except EtcdError:
            return False

    async def _wait(self, leader: bool) -> None:
        # polling by design: etcd's v3 API (as the kos client speaks it) has no leadership watch
        while await self.is_leader() != leader:  # noqa: ASYNC110
            await anyio.sleep(self.interval)

    async def wait_leader(self, ip: str) -> None:
        await self._wait(True)

    async def wait_follower(self, ip: str) -> None:
        await self._wait(False)
