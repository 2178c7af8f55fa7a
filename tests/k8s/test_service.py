"""The kubelet service under the real supervisor. There is no kubelet binary on this machine,
so the honest outcome is the one asserted first: the service waits, saying where it looked.
The second test only checks the wiring (the supervisor executes whatever sits at the
configured path with the rendered flags, and restarts it on a spec change); the program there
is a shell script and proves nothing about a real kubelet."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from kos.controllers.k8s.kubelet import KubeletPaths
from kos.controllers.k8s.service import KubeletServiceController
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_resources
from kos.machined.services import ServiceDefinition, ServiceState, Supervisor, TaskRunner
from kos.machined.services.kubelet import kubelet_service
from kos.resources.core import InMemoryState, Resource
from kos.resources.k8s import KubeletSpecSpec
from kos.resources.runtime import SERVICES
from tests.controllers.runtime.harness import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.root]


def paths(tmp: Path) -> KubeletPaths:
    return KubeletPaths(config=str(tmp / "etc/kubelet.yaml"),
                        bootstrap_kubeconfig=str(tmp / "etc/bootstrap-kubeconfig"),
                        kubeconfig=str(tmp / "etc/kubeconfig-kubelet"), ca_file=str(tmp / "etc/pki/ca.crt"),
                        cert_dir=str(tmp / "lib/pki"), static_pod_dir=str(tmp / "etc/manifests"),
                        root_dir=str(tmp / "lib"))


SPEC = KubeletSpecSpec(image="kubelet:v1.30.0", args=["--config=/x", "--v=2"], config="kind: KubeletConfiguration\n",
                       bootstrap_kubeconfig="token: secret\n", ca_crt="CA\n", expected_nodename="n1")


def read(p: str | Path) -> str:
    return Path(p).read_text() if os.path.exists(p) else ""


def mode(p: str) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


async def test_without_a_binary_the_kubelet_waits_naming_the_path(tmp_path: Path) -> None:
    state = InMemoryState()
    binary = str(tmp_path / "bin" / "kubelet")
    p = paths(tmp_path)
    async with Supervisor(state, cgroup_parent=f"kos-k8s-{uuid.uuid4().hex[:8]}") as sup:
        rt = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
        rt.register(KubeletServiceController(sup, p, binary=binary,
                                             define=lambda: sup.add(kubelet_service(sup, binary, binary_poll=0.05))))
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run)
            await state.create(Resource.new(SPEC.copy(), "kubelet"))

            def waiting(r: Resource[Any]) -> bool:
                msg = f"waiting for kubelet binary not found at {binary}"
                return r.spec.state == "Waiting" and r.spec.message == msg

            await assert_resources(state, SERVICES, ["kubelet"], waiting, timeout=10)
            assert mode(p.bootstrap_kubeconfig) == 0o600 and read(p.config) == SPEC.config
            assert mode(p.static_pod_dir) & 0o700 == 0o700  # created for the kubelet
            tg.cancel_scope.cancel()


async def test_service_wiring_runs_the_configured_path_with_the_rendered_flags(tmp_path: Path) -> None:
    state = InMemoryState()
    binary = tmp_path / "bin" / "kubelet"
    out = tmp_path / "argv"
    async with Supervisor(state, cgroup_parent=f"kos-k8s-{uuid.uuid4().hex[:8]}") as sup:
        rt = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
        rt.register(KubeletServiceController(
            sup, paths(tmp_path), binary=str(binary),
            define=lambda: sup.add(kubelet_service(sup, str(binary), binary_poll=0.05))))
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run)
            await state.create(Resource.new(SPEC.copy(), "kubelet"))
            await assert_resources(state, SERVICES, ["kubelet"], lambda r: "not found" in r.spec.message, timeout=10)
            binary.parent.mkdir(parents=True)
            binary.write_text(f'#!/bin/sh\necho "$@" > {out}\nexec sleep 60\n')
            binary.chmod(0o755)  # the image gains the binary: the service starts by itself
            st = await sup.wait_state("kubelet", ServiceState.RUNNING, timeout=10)
            first_pid = st.pid
            await wait_until(lambda: bool(read(out)), timeout=10, what="the program's argv")
            assert read(out).split() == SPEC.args

            changed = KubeletSpecSpec(**{**SPEC.__dict__, "args": ["--config=/x", "--v=4"]})
            await state.update_with_conflicts(Resource.new(SPEC, "kubelet").pointer,
                                              lambda r: setattr(r, "spec", changed))
            await sup.wait_for("kubelet", lambda s: s.running and s.pid not in (0, first_pid), timeout=20)
            await wait_until(lambda: "--v=4" in read(out), timeout=10, what="the restarted program's argv")

            await state.destroy(Resource.new(SPEC, "kubelet").pointer)
            await sup.wait_state("kubelet", ServiceState.FINISHED, timeout=20)
            tg.cancel_scope.cancel()


async def test_kubelet_waits_for_a_healthy_containerd_when_the_node_runs_one(tmp_path: Path) -> None:
    state = InMemoryState()
    binary = tmp_path / "kubelet"
    binary.write_text("#!/bin/sh\nexec sleep 60\n")
    binary.chmod(0o755)
    async with Supervisor(state, cgroup_parent=f"kos-k8s-{uuid.uuid4().hex[:8]}") as sup:
        # registered, never started
        sup.add(ServiceDefinition("containerd", TaskRunner(lambda log: anyio.sleep_forever())))
        rt = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
        rt.register(KubeletServiceController(
            sup, paths(tmp_path), binary=str(binary),
            define=lambda: sup.add(kubelet_service(sup, str(binary), binary_poll=0.05))))
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run)
            await state.create(Resource.new(SPEC.copy(), "kubelet"))
            await assert_resources(state, SERVICES, ["kubelet"],
                                   lambda r: r.spec.message == "waiting for service 'containerd' healthy", timeout=10)
            assert not sup.status("kubelet").running
            tg.cancel_scope.cancel()
