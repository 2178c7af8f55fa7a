"""The etcd service's health probe on a real etcd: it keeps one TLS connection between probes
(an idle control plane probes every 5 s; a handshake each time was most of its idle CPU),
and opens a new one after a failure or when the endpoint changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kos.machined.services.etcd import etcd_health_probe
from tests.support.countingproxy import counting_proxy
from tests.support.localcluster import LocalCluster

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(shutil.which("etcd") is None, reason="needs etcd")]


async def test_probe_keeps_one_connection(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path, 1) as lc:
        await lc.bootstrap()
        ip = lc.ip(0)
        async with counting_proxy(ip, ip, 2379) as proxy:
            endpoint = [f"https://{ip}:{proxy.port}"]
            hc = etcd_health_probe(lambda: endpoint[0], lc.admin_tls)
            for _ in range(5):
                await hc.probe()
            assert proxy.accepted == 1
            proxy.drop_all()  # etcd went away: the next probe fails or reconnects, then one more
            try:
                await hc.probe()
            except Exception:
                await hc.probe()
            await hc.probe()
            assert proxy.accepted == 2
            async with counting_proxy(ip, ip, 2379) as other:  # a new endpoint: a new connection
                endpoint[0] = f"https://{ip}:{other.port}"
                await hc.probe()
                await hc.probe()
                assert (proxy.accepted, other.accepted) == (2, 1)
