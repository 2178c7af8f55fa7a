"""machine.sysctls / machine.sysfs -> KernelParamSpecs -> the kernel -> KernelParamStatuses.

The per-network-namespace sysctls are set for real in a private network namespace (read back
through nsenter, and the host's value is untouched); on a namespace node (shared kernel) the
rest is reported unsupported, never written; removing a sysctl restores its previous value."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.controllers.system import render
from kos.controllers.system.configspecs import ConfigSpecsController
from kos.controllers.system.kernel import KernelParamApplyController
from kos.platform.linux.kernelparams import KernelParamError, param_path
from kos.resources.runtime import KERNEL_PARAM_SPECS, KERNEL_PARAM_STATUSES, KernelParamSpecSpec
from tests.network.netns import needs_netns, netns, nsenter
from tests.system.helpers import machine_config, running, set_config

pytestmark = pytest.mark.anyio


def controllers(**kw: object) -> list[object]:
    return [ConfigSpecsController("system.KernelParamConfigController", KernelParamSpecSpec, render.kernel_params),
            KernelParamApplyController(**kw)]  # type: ignore[arg-type]


def host_sysctl(key: str) -> str:
    return Path("/proc/sys/" + key.replace(".", "/")).read_text().strip()


def sysctl(ns: str, key: str) -> str:
    return nsenter(ns, "cat", "/proc/sys/" + key.replace(".", "/")).stdout.strip()


def test_keys_become_paths_below_proc_sys_or_sys() -> None:
    assert param_path("net.ipv4.ip_forward") == "proc/sys/net/ipv4/ip_forward"
    assert param_path("net/ipv4/conf/eth0.100/rp_filter") == "proc/sys/net/ipv4/conf/eth0.100/rp_filter"
    assert param_path("kernel.mm.transparent_hugepage.enabled", sysfs=True) == \
        "sys/kernel/mm/transparent_hugepage/enabled"
    for bad in ("net..ipv4", "../../etc/passwd", "net/../../x", "", "a b"):
        with pytest.raises(KernelParamError):
            param_path(bad)


@needs_netns
async def test_net_sysctls_are_set_in_the_nodes_netns_and_the_rest_is_unsupported() -> None:
    host_before = host_sysctl("net.ipv4.conf.all.forwarding")
    with netns("sysctl") as ns:
        assert sysctl(ns, "net.ipv4.conf.all.forwarding") == "0"
        async with running(controllers(netns=ns, shared_kernel=True)) as state:
            await set_config(state, machine_config("""
sysctls:
  net.ipv4.conf.all.forwarding: "1"
  net.ipv4.ip_local_port_range: "40000 50000"
  net.ipv4.no_such_sysctl: "1"
  kernel.pid_max: "65536"
sysfs:
  kernel.mm.transparent_hugepage.enabled: never
"""))
            got = await assert_resources(state, KERNEL_PARAM_STATUSES, [
                "net.ipv4.conf.all.forwarding", "net.ipv4.ip_local_port_range", "net.ipv4.no_such_sysctl",
                "kernel.pid_max", "sysfs.kernel.mm.transparent_hugepage.enabled"])
            fwd = got["net.ipv4.conf.all.forwarding"].spec
            assert (fwd.state, fwd.current, fwd.default) == ("applied", "1", "0")
            assert got["net.ipv4.ip_local_port_range"].spec.current == "40000 50000"
            missing = got["net.ipv4.no_such_sysctl"].spec
            assert missing.state == "failed" and "does not exist in this network namespace" in missing.reason
            for key, why in (("kernel.pid_max", "only net.* sysctls"),
                             ("sysfs.kernel.mm.transparent_hugepage.enabled", "/sys belongs to the host")):
                st = got[key].spec
                assert st.state == "unsupported" and "shares the host's kernel" in st.reason and why in st.reason
            # the kernel, seen from outside: the namespace has it, the host does not
            assert sysctl(ns, "net.ipv4.conf.all.forwarding") == "1"
            assert sysctl(ns, "net.ipv4.ip_local_port_range").split() == ["40000", "50000"]
            assert host_sysctl("net.ipv4.conf.all.forwarding") == host_before

            # removing it restores the value from before
            await set_config(state, machine_config('sysctls: {net.ipv4.ip_local_port_range: "40000 50000"}'))
            await assert_no_resource(state, KERNEL_PARAM_STATUSES.pointer("net.ipv4.conf.all.forwarding"))
            await assert_no_resource(state, KERNEL_PARAM_SPECS.pointer("kernel.pid_max"))
            assert sysctl(ns, "net.ipv4.conf.all.forwarding") == "0"
            assert sysctl(ns, "net.ipv4.ip_local_port_range").split() == ["40000", "50000"]


@needs_netns
async def test_a_value_the_kernel_refuses_is_a_failed_status() -> None:
    with netns("sysctl") as ns:
        async with running(controllers(netns=ns, shared_kernel=True)) as state:
            await set_config(state, machine_config('sysctls: {net.ipv4.conf.all.forwarding: "banana"}'))
            got = await assert_resources(state, KERNEL_PARAM_STATUSES, ["net.ipv4.conf.all.forwarding"],
                                         lambda r: r.spec.state == "failed")
            assert "Invalid argument" in got["net.ipv4.conf.all.forwarding"].spec.reason
            assert sysctl(ns, "net.ipv4.conf.all.forwarding") == "0"


async def test_a_machine_with_its_own_kernel_writes_sysfs_and_restores_it(tmp_path: Path) -> None:
    """The write/read-back/restore logic on a root of plain files (the host's real /sys and
    non-net sysctls are not ours to change in a test)."""
    attr = tmp_path / "sys/kernel/mm/transparent_hugepage/enabled"
    attr.parent.mkdir(parents=True)
    attr.write_text("always\n")
    async with running(controllers(root=str(tmp_path), shared_kernel=False)) as state:
        await set_config(state, machine_config("sysfs: {kernel.mm.transparent_hugepage.enabled: never}"))
        await assert_resources(state, KERNEL_PARAM_STATUSES, ["sysfs.kernel.mm.transparent_hugepage.enabled"],
                               lambda r: r.spec.state == "applied" and r.spec.default == "always")
        assert attr.read_text() == "never"
        await set_config(state, machine_config("env: {A: b}"))
        await assert_no_resource(state, KERNEL_PARAM_STATUSES.pointer("sysfs.kernel.mm.transparent_hugepage.enabled"))
        assert attr.read_text() == "always"


async def test_a_bad_key_keeps_the_previous_specs(tmp_path: Path) -> None:
    async with running(controllers(root=str(tmp_path), shared_kernel=True)) as state:
        await set_config(state, machine_config('sysctls: {net.ipv4.ip_forward: "1"}'))
        await assert_resources(state, KERNEL_PARAM_SPECS, ["net.ipv4.ip_forward"])
        await set_config(state, machine_config('sysctls: {"net/../../x": "1"}'))
        await anyio.sleep(0.2)
        assert await state.get_or_none(KERNEL_PARAM_SPECS.pointer("net.ipv4.ip_forward")) is not None


def test_sysfs_and_sysctl_changes_apply_without_a_reboot() -> None:
    from kos.resources.machineconfig import ConfigContainer, reboot_required

    old = ConfigContainer.load(machine_config('sysctls: {net.ipv4.ip_forward: "0"}'), strict=False)
    new = ConfigContainer.load(machine_config('sysctls: {net.ipv4.ip_forward: "1"}\n'
                                              'sysfs: {kernel.mm.transparent_hugepage.enabled: never}'), strict=False)
    assert reboot_required(old, new) == []


def test_a_node_with_its_own_kernel_gets_what_the_kubelet_needs_under_the_configs_own() -> None:
    from kos.resources.machineconfig import ConfigContainer

    c = ConfigContainer.load(machine_config('sysctls: {kernel.panic: "30", net.core.somaxconn: "1024"}'),
                             strict=False)
    got = render.kernel_params_with_defaults(c)
    assert set(got) == set(render.KERNEL_PARAM_DEFAULTS) | {"net.core.somaxconn"}
    for key in ("vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic_on_oops", "kernel.keys.root_maxkeys",
                "kernel.keys.root_maxbytes", "net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"):
        spec = got[key]
        assert isinstance(spec, KernelParamSpecSpec)
        assert (spec.value, spec.source) == (render.KERNEL_PARAM_DEFAULTS[key], "defaults")
    panic = got["kernel.panic"]
    assert isinstance(panic, KernelParamSpecSpec) and (panic.value, panic.source) == ("30", "machine.sysctls")
    # the kubelet's protectKernelDefaults values, exactly
    assert {k: render.KERNEL_PARAM_DEFAULTS[k] for k in (
        "vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
        "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes")} == {
        "vm.overcommit_memory": "1", "vm.panic_on_oom": "0", "kernel.panic": "10", "kernel.panic_on_oops": "1",
        "kernel.keys.root_maxkeys": "1000000", "kernel.keys.root_maxbytes": "25000000"}
    # a namespace node's render has none of them (the host's kernel; nodeinit masks them read-only)
    assert "vm.overcommit_memory" not in render.kernel_params(c)


async def test_the_defaults_are_written_and_a_missing_one_is_a_failed_status(tmp_path: Path) -> None:
    """On a root of plain files standing for /proc/sys (the host's own kernel settings are not
    ours to change in a test); net.bridge.* exists only once br_netfilter is loaded."""
    for key in render.KERNEL_PARAM_DEFAULTS:
        if key.startswith("net.bridge."):
            continue
        f = tmp_path / param_path(key)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("0\n")
    ctl = [ConfigSpecsController("system.KernelParamConfigController", KernelParamSpecSpec,
                                 render.kernel_params_with_defaults), KernelParamApplyController(root=str(tmp_path))]
    async with running(ctl) as state:
        await set_config(state, machine_config("env: {A: b}"))
        want = [k for k in render.KERNEL_PARAM_DEFAULTS if not k.startswith("net.bridge.")]
        await assert_resources(state, KERNEL_PARAM_STATUSES, want, lambda r: r.spec.state == "applied")
        for key in want:
            assert (tmp_path / param_path(key)).read_text().strip() == render.KERNEL_PARAM_DEFAULTS[key]
        got = await assert_resources(state, KERNEL_PARAM_STATUSES, ["net.bridge.bridge-nf-call-iptables"],
                                     lambda r: r.spec.state == "failed")
        assert "does not exist" in got["net.bridge.bridge-nf-call-iptables"].spec.reason
