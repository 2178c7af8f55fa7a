"""A one-node control plane with a real etcd: the generated config flows through the config,
secrets and k8s controllers; every static pod and bootstrap manifest is rendered and valid;
and the etcd credentials the kube-apiserver pod names (read back from the files on disk)
are accepted by a real etcd serving the node's EtcdCerts. No kube-apiserver runs: the
binaries are not available on this machine (see docs/kubernetes.md)."""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from kos.apis.etcd import EtcdClient, TLSFiles
from kos.controllers.k8s.validate import check_object
from kos.controllers.runtime.testing import assert_resources
from kos.machined.services import Supervisor
from kos.machined.services.etcd import etcd_service
from kos.resources import k8s
from kos.resources.etcd import EtcdSpecSpec
from kos.resources.pki import certificate_sans
from kos.resources.secrets import ETCD_CERTS
from tests.k8s.test_controllers import check_files_on_disk, start_node

pytestmark = [pytest.mark.anyio, pytest.mark.root]


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def pod_flags(pod_file: Path) -> dict[str, str]:
    pod = yaml.safe_load(pod_file.read_text())
    return dict(a[2:].split("=", 1) for a in pod["spec"]["containers"][0]["args"])


def manifest_objects(specs: list[Any]) -> list[dict[str, Any]]:
    return [o for s in specs for o in yaml.safe_load_all(s.objects) if o]


async def test_rendered_control_plane_talks_to_a_real_etcd(tmp_path: Path) -> None:
    ip = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    async with start_node(tmp_path, addresses=[f"{ip}/8"]) as node:
        await assert_resources(node.state, k8s.STATIC_POD_STATUSES, k8s.CONTROL_PLANE_IDS, timeout=20)
        for cid in k8s.CONTROL_PLANE_IDS:
            check_files_on_disk(node, cid)
        groups = await assert_resources(node.state, k8s.MANIFESTS,
                                        ["00-bootstrap-token", "01-csr-rbac", "10-kube-proxy", "11-coredns",
                                         "12-flannel"], timeout=10)
        objs = manifest_objects([r.spec for r in groups.values()])
        assert len(objs) == sum(r.spec.count for r in groups.values()) == 20
        for o in objs:
            check_object(o)

        etcd = (await node.state.get(ETCD_CERTS.pointer("etcd"))).spec
        assert "localhost" in certificate_sans(etcd.server_cert.encode())  # the apiserver dials https://localhost:2379
        pki = tmp_path / "etcd-pki"
        server = TLSFiles(write(pki / "ca.crt", etcd.ca_cert), write(pki / "server.crt", etcd.server_cert),
                          write(pki / "server.key", etcd.server_key))
        spec = EtcdSpecSpec(
            name="cp-1", data_dir=str(tmp_path / "etcd"),
            listen_client_urls=[f"https://{ip}:2379"], advertise_client_urls=[f"https://{ip}:2379"],
            listen_peer_urls=[f"https://{ip}:2380"], advertise_peer_urls=[f"https://{ip}:2380"],
            initial_cluster={"cp-1": f"https://{ip}:2380"},
            ca_file=server.ca, cert_file=server.cert, key_file=server.key,
            peer_ca_file=server.ca, peer_cert_file=server.cert, peer_key_file=server.key,
            heartbeat_ms=50, election_ms=300)
        async with Supervisor(cgroup_parent=f"kos-k8s-{uuid.uuid4().hex[:8]}") as sup:
            sup.add(etcd_service(spec, server, stop_timeout=2.0))
            await sup.start("etcd")
            await sup.wait_healthy("etcd", timeout=30)

            # the kube-apiserver's etcd client credentials, exactly as its manifest names them
            f = pod_flags(node.pod_dir / "kube-apiserver.yaml")
            assert f["etcd-servers"] == "https://localhost:2379"
            apiserver_tls = TLSFiles(f["etcd-cafile"], f["etcd-certfile"], f["etcd-keyfile"])
            async with EtcdClient([f"https://{ip}:2379"], apiserver_tls, timeout=5) as c:
                st = await c.status()
                members = await c.member_list()
            assert st.version.startswith("3.") and [m.name for m in members] == ["cp-1"]
