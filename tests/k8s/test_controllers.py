"""The k8s controllers end to end on an in-memory state, fed by the real config and secrets
controllers: a generated control-plane config -> root secrets -> issued certificates ->
Nodename/NodeIP/KubeletSpec, static pods and their files on disk, bootstrap manifests pending
(no API server). Config changes re-render exactly the affected pods; a bad change keeps the
previous outputs; no secret reaches a non-sensitive resource or a log line."""

from __future__ import annotations

import dataclasses
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
import yaml

from kos.controllers.k8s.assembly import k8s_controllers
from kos.controllers.k8s.validate import check_kubelet_configuration, check_pod
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.controllers.secrets.assembly import secrets_controllers
from kos.resources import k8s
from kos.resources.config import MachineConfigSpec, MachineTypeSpec
from kos.resources.core import InMemoryState, Resource
from kos.resources.machineconfig import ConfigContainer, GenOptions, SecretsBundle, generate
from kos.resources.network import HostnameStatusSpec, NodeAddressSpec
from kos.resources.pki import certificate_sans, check_kubeconfig, verify_chain
from kos.resources.secrets import K8S_ROOT

pytestmark = pytest.mark.anyio

SD = "secrets"


@dataclasses.dataclass
class Node:
    state: InMemoryState
    container: ConfigContainer
    bundle: SecretsBundle
    tmp: Path

    @property
    def secrets_dir(self) -> Path:
        return self.tmp / SD

    @property
    def pod_dir(self) -> Path:
        return self.tmp / "manifests"

    async def set_config(self, container: ConfigContainer) -> None:
        ptr = Resource.new(MachineConfigSpec(), "v1alpha1", namespace="config").pointer
        spec = MachineConfigSpec.from_container(container)
        await self.state.update_with_conflicts(ptr, lambda r: setattr(r, "spec", spec))


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with start_node(tmp_path) as n:
        yield n


@asynccontextmanager
async def start_node(tmp_path: Path, addresses: list[str] | None = None) -> AsyncIterator[Node]:
    bundle = SecretsBundle.generate()
    gen = generate(GenOptions("kos-test", "https://10.5.0.2:6443"), bundle)
    state = InMemoryState(history_max=4096)
    runtime = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
    for c in secrets_controllers():
        runtime.register(c)
    # nothing listens on port 1: the applier must report the manifests as pending
    for c in k8s_controllers(supervisor=None, static_pod_dir=str(tmp_path / "manifests"),
                             secrets_dir=str(tmp_path / SD), api_url="https://127.0.0.1:1", manifest_retry=0.5):
        runtime.register(c)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        await state.create(Resource.new(MachineConfigSpec.from_container(gen.controlplane), "v1alpha1",
                                        namespace="config"))
        await state.create(Resource.new(MachineTypeSpec(machine_type="controlplane"), "machine-type",
                                        namespace="config"))
        await state.create(Resource.new(HostnameStatusSpec(hostname="Node-1", domainname="example.org"), "hostname"))
        for id in ("routed", "accumulative", "current", "default"):
            addrs = addresses or ["10.5.0.2/24", "fd00::2/64"]
            await state.create(Resource.new(NodeAddressSpec(addresses=addrs), id))
        yield Node(state, gen.controlplane, bundle, tmp_path)
        tg.cancel_scope.cancel()


def read(p: Path) -> str:
    return p.read_text()


def check_files_on_disk(node: Node, cid: str) -> None:
    """The manifest is a valid pod whose files exist, keys 0600, the component dir 0700."""
    pod = yaml.safe_load((node.pod_dir / f"{cid}.yaml").read_text())
    files = {f"{cid}/{p.name}": p.read_text() for p in (node.secrets_dir / cid).iterdir()}
    check_pod(pod, cid, files=files, secrets_dir=str(node.secrets_dir))
    assert stat.S_IMODE((node.secrets_dir / cid).stat().st_mode) == 0o700
    for p in (node.secrets_dir / cid).iterdir():
        secret = p.name.endswith(".key") or p.name in ("kubeconfig", "encryptionconfig.yaml")
        assert stat.S_IMODE(p.stat().st_mode) == (0o600 if secret else 0o644), p


async def statuses(node: Node) -> dict[str, Resource[Any]]:
    return await assert_resources(node.state, k8s.STATIC_POD_STATUSES, k8s.CONTROL_PLANE_IDS, timeout=20)


async def test_config_to_static_pod_files_and_kubelet_spec(node: Node) -> None:
    got = await statuses(node)
    for cid in k8s.CONTROL_PLANE_IDS:
        assert Path(got[cid].spec.path) == node.pod_dir / f"{cid}.yaml"
        check_files_on_disk(node, cid)
    ca = read(node.secrets_dir / "kube-apiserver" / "ca.crt")
    check_kubeconfig(read(node.secrets_dir / "kube-scheduler" / "kubeconfig"), ca, expect_cn="system:kube-scheduler")
    check_kubeconfig(read(node.secrets_dir / "kube-controller-manager" / "kubeconfig"), ca,
                     expect_cn="system:kube-controller-manager")
    # the serving certificate the secrets controllers issued answers every name clients use
    serving = read(node.secrets_dir / "kube-apiserver" / "apiserver.crt").encode()
    verify_chain(serving, ca.encode())
    sans = certificate_sans(serving)
    for name in ("kubernetes.default.svc", "localhost", "10.96.0.1", "10.5.0.2", "127.0.0.1"):
        assert name in sans, name

    nn = await assert_resources(node.state, k8s.NODENAMES, ["nodename"], timeout=10)
    assert nn["nodename"].spec.nodename == "node-1"
    ips = await assert_resources(node.state, k8s.NODEIPS, ["kubelet"], timeout=10)
    assert ips["kubelet"].spec.addresses == ["10.5.0.2", "fd00::2"]
    ks = (await assert_resources(node.state, k8s.KUBELET_SPECS, ["kubelet"], timeout=10))["kubelet"].spec
    check_kubelet_configuration(yaml.safe_load(ks.config))
    assert "--hostname-override=node-1" in ks.args and "--node-ip=10.5.0.2,fd00::2" in ks.args
    info = check_kubeconfig(ks.bootstrap_kubeconfig, ca)
    # the generated config has KubePrism on: the kubelet reaches the API server through it (as on Talos)
    assert info.token == node.bundle.secrets.bootstrap_token and info.server == "https://127.0.0.1:7445"

    def pending(r: Resource[Any]) -> bool:
        return r.spec.pending == ["00-bootstrap-token", "01-csr-rbac", "10-kube-proxy", "11-coredns", "12-flannel"] \
            and "not reachable" in r.spec.last_error

    await assert_resources(node.state, k8s.MANIFEST_STATUSES, ["manifests"], pending, timeout=10)


async def test_config_change_rerenders_exactly_the_affected_pod(node: Node) -> None:
    before = await statuses(node)
    pods_before = {r.metadata.id: r.spec.pod for r in await node.state.list(k8s.STATIC_PODS)}
    data = node.container.to_data()
    data[0]["cluster"]["scheduler"]["extraArgs"] = {"v": "3"}
    await node.set_config(ConfigContainer.from_data(data))

    def changed(r: Resource[Any]) -> bool:
        return r.metadata.id != "kube-scheduler" or r.spec.sha256 != before["kube-scheduler"].spec.sha256

    after = await assert_resources(node.state, k8s.STATIC_POD_STATUSES, k8s.CONTROL_PLANE_IDS, changed, timeout=20)
    assert "--v=3" in read(node.pod_dir / "kube-scheduler.yaml")
    pods_after = {r.metadata.id: r.spec.pod for r in await node.state.list(k8s.STATIC_PODS)}
    for cid in ("kube-apiserver", "kube-controller-manager"):
        assert pods_after[cid] == pods_before[cid]
        assert after[cid].metadata.version == before[cid].metadata.version

    # a refused change (a protected flag) keeps what runs
    data[0]["cluster"]["apiServer"]["extraArgs"] = {"etcd-keyfile": "/tmp/k"}
    await node.set_config(ConfigContainer.from_data(data))
    await anyio.sleep(0.5)
    pod = (await node.state.get(k8s.STATIC_PODS.pointer("kube-apiserver"))).spec.pod
    assert pod == pods_before["kube-apiserver"] and (node.pod_dir / "kube-apiserver.yaml").exists()


async def test_worker_gets_a_kubelet_but_no_control_plane(node: Node) -> None:
    await statuses(node)
    ptr = Resource.new(MachineTypeSpec(), "machine-type", namespace="config").pointer
    await node.state.update_with_conflicts(ptr, lambda r: setattr(r, "spec", MachineTypeSpec(machine_type="worker")))
    for cid in k8s.CONTROL_PLANE_IDS:
        await assert_no_resource(node.state, k8s.STATIC_POD_STATUSES.pointer(cid), timeout=20)
        await assert_no_resource(node.state, k8s.STATIC_PODS.pointer(cid), timeout=20)
    await assert_no_resource(node.state, k8s.MANIFESTS.pointer("00-bootstrap-token"), timeout=20)
    assert not list(node.pod_dir.iterdir())
    assert not (node.secrets_dir / "kube-apiserver").exists()
    await assert_resources(node.state, k8s.KUBELET_SPECS, ["kubelet"], timeout=5)


async def test_secrets_stay_out_of_plain_resources_and_logs(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        gen = None
        async with start_node(tmp_path) as n:
            await statuses(n)
            await assert_resources(n.state, k8s.MANIFEST_STATUSES, ["manifests"], timeout=10)
            root = (await n.state.get(K8S_ROOT.pointer("k8s"))).spec
            secrets = [root.ca_key, root.bootstrap_token, root.secretbox_encryption_secret,
                       root.service_account_key, root.aggregator_ca_key]
            secrets = [s.strip().splitlines()[1] if "PRIVATE KEY" in s else s for s in secrets]
            plain = [k8s.NODENAMES, k8s.NODEIPS, k8s.KUBELET_CONFIGS, k8s.APISERVER_CONFIGS,
                     k8s.CONTROLLER_MANAGER_CONFIGS, k8s.SCHEDULER_CONFIGS, k8s.STATIC_PODS,
                     k8s.STATIC_POD_STATUSES, k8s.MANIFEST_STATUSES]
            for kind in plain:
                for r in await n.state.list(kind):
                    text = yaml.safe_dump(r.spec.to_yaml())
                    assert not any(s in text for s in secrets), f"secret in {r.pointer}"
            gen = n
        assert gen is not None
    dumped = repr(logs)
    assert logs and not any(s in dumped for s in secrets)
