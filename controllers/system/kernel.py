"""``KernelParamApplyController``: KernelParamSpecs -> writes below ``/proc/sys`` and ``/sys``
-> KernelParamStatuses (same id).

Each spec is written (in a worker thread; inside ``netns`` when given, so ``/proc/sys/net`` is
that namespace's) and read back: ``applied`` with the current value, or ``failed`` with the
kernel's error. The value before the first write is kept in the status as ``default`` and
written back when the spec goes away (as Talos restores defaults).

``shared_kernel=True`` (a namespace node: the kernel is the host's) applies only what the node
owns, the per-network-namespace ``net.*`` sysctls; every other sysctl and every sysfs key is
reported ``unsupported`` with the reason, never written and never silently dropped.
"""

from __future__ import annotations

from typing import Any

import anyio

from kos.controllers.runtime import ControllerRuntime
from kos.controllers.system.apply import ApplyController
from kos.platform.linux import kernelparams as kp
from kos.platform.network.netns import run_in_netns
from kos.resources.runtime import KernelParamSpecSpec, KernelParamStatusSpec

SHARED_KERNEL_REASON = (
    "this node shares the host's kernel (namespace node): only net.* sysctls are per network namespace; "
    "set it on the host or use a QEMU node"
)
SHARED_SYSFS_REASON = (
    "this node shares the host's kernel (namespace node): /sys belongs to the host; set it on the host or use a "
    "QEMU node"
)


def node_owns(spec: KernelParamSpecSpec) -> bool:
    """On a shared kernel, only ``proc/sys/net/...`` belongs to the node."""
    return spec.path.startswith("proc/sys/net/")


class KernelParamApplyController(ApplyController):
    name = "system.KernelParamApplyController"
    spec_type = KernelParamSpecSpec
    status_type = KernelParamStatusSpec

    def __init__(self, *, root: str = "/", netns: str | None = None, shared_kernel: bool = False) -> None:
        self.root = root
        self.netns = netns
        self.shared_kernel = shared_kernel

    def _io(self, fn: Any) -> Any:
        return anyio.to_thread.run_sync(lambda: run_in_netns(self.netns, fn))

    async def undo(self, rt: ControllerRuntime, id_: str, status: Any) -> None:
        st: KernelParamStatusSpec = status
        if st.state != "applied" or not st.default or kp.same_value(st.default, st.current):
            return
        try:
            await self._io(lambda: kp.write_param(self.root, st.path, st.default))
            rt.logger.info("kernel parameter restored", param=id_, value=st.default)
        except OSError as exc:
            rt.logger.warning("kernel parameter not restored", param=id_, error=str(exc))

    async def apply(self, rt: ControllerRuntime, id_: str, spec: Any, old: Any | None) -> Any:
        return await self._apply(spec, old)

    async def _apply(self, spec: KernelParamSpecSpec, old: KernelParamStatusSpec | None) -> KernelParamStatusSpec:
        if self.shared_kernel and not node_owns(spec):
            reason = SHARED_SYSFS_REASON if spec.path.startswith("sys/") else SHARED_KERNEL_REASON
            return KernelParamStatusSpec(state="unsupported", reason=reason, path=spec.path)
        root, path, value = self.root, spec.path, spec.value

        def apply() -> tuple[str, str]:
            if not kp.exists(root, path):
                raise FileNotFoundError(f"/{path} does not exist" +
                                        (" in this network namespace" if path.startswith("proc/sys/net/") else ""))
            before = kp.read_param(root, path)
            if not kp.same_value(before, value):
                kp.write_param(root, path, value)
            return kp.selected(before), kp.selected(kp.read_param(root, path))

        default = old.default if old is not None and old.state == "applied" else ""
        try:
            before, current = await self._io(apply)
        except (OSError, kp.KernelParamError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return KernelParamStatusSpec(state="failed", reason=f"/{path}: {reason}" if exc.args[1:] else reason,
                                         path=path, default=default)
        if not kp.same_value(current, value):
            return KernelParamStatusSpec(state="failed", current=current, default=default or before, path=path,
                                         reason=f"/{path}: the kernel keeps {current!r} after writing {value!r}")
        return KernelParamStatusSpec(state="applied", current=current, default=default or before, path=path)
