"""Run by test_election inside the etcd's network namespace: report leadership changes."""

from __future__ import annotations

import sys

import anyio

from kos.apis.etcd.client import EtcdClient
from kos.controllers.network.election import EtcdLeaderElection


async def main() -> None:
    endpoint = sys.argv[1]
    async with EtcdClient([endpoint], timeout=1.0) as client:
        election = EtcdLeaderElection(client, endpoint, interval=0.1)
        with anyio.fail_after(30):
            await election.wait_leader("10.0.0.100")
        print("leader", flush=True)
        with anyio.fail_after(30):
            await election.wait_follower("10.0.0.100")
        print("follower", flush=True)


anyio.run(main)
