"""The node as the ``LifecycleController`` of the Reboot/Shutdown/Reset/Upgrade/Rollback RPCs and
of signals: each request becomes a sequence run in the node's task group (refused while a
sequence that may not be preempted runs), ending with the ``Action`` machined performs.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import anyio
import structlog

from kos.machined.api import LifecycleRefusedError, LifecycleRequestError, ResetOptions, UpgradeUnavailableError
from kos.machined.init import Action
from kos.machined.nodebase import NodeBase, empty_directory
from kos.machined.sequencer import PREEMPTIVE, Phase, Sequence, SequenceBusyError, SequenceError

log = structlog.get_logger("kos.machined")


class NodeLifecycle(NodeBase):
    async def _config_reboot(self) -> None:
        """An applied config needs a reboot (ApplyConfiguration mode reboot/auto)."""
        try:
            await self.reboot(False)
        except LifecycleRefusedError as exc:
            log.warning("reboot after config apply refused", error=str(exc))

    def _schedule(self, seq: Sequence, action: Action | None) -> str:
        running = self.sequencer.running
        if running is not None and (running in PREEMPTIVE or seq.name not in PREEMPTIVE):
            raise LifecycleRefusedError(f"{seq.name} refused: sequence {running!r} is running")
        if self._tg is None:
            raise LifecycleRefusedError(f"{seq.name} refused: the node is not running")
        actor = str(uuid.uuid4())
        self._tg.start_soon(self._run_lifecycle, seq, action)
        return actor

    async def _run_lifecycle(self, seq: Sequence, action: Action | None) -> None:
        try:
            await self.sequencer.run(seq)
        except (SequenceError, SequenceBusyError) as exc:
            log.error("lifecycle sequence failed", sequence=seq.name, error=str(exc))
            if seq.name != "reset":
                return
        if action is not None:
            self.action = action
            if self._main_scope is not None:
                self._main_scope.cancel()

    def _stop_sequence(self, name: str, stage: str, extra: tuple[Phase, ...] = ()) -> Sequence:
        return Sequence(name, stage, (
            *extra,
            Phase.of("stopServices", ("stopAllServices", self._stop_services)),
            Phase.of("stopAPI", ("stopAPI", self._stop_api)),
        ))  # fmt: skip

    async def _stop_services(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop_all()

    async def _stop_api(self) -> None:
        await anyio.sleep(0.2)  # let the lifecycle RPC's answer leave
        server, self._server = self._server, None
        if server is not None:
            await server.close(grace=2.0)

    async def reboot(self, powercycle: bool) -> str:
        return self._schedule(self._stop_sequence("reboot", "rebooting"), Action.REBOOT)

    async def shutdown(self, force: bool) -> str:
        return self._schedule(self._stop_sequence("shutdown", "shuttingDown"), Action.SHUTDOWN)

    async def reset(self, options: ResetOptions) -> str:
        leave: tuple[Phase, ...] = ()
        if options.graceful:  # cordon and drain, then leave etcd (as Talos does)
            leave = (Phase.of("drain", ("cordonDrainNode", self._leave_kubernetes)),
                     Phase.of("leave", ("leaveEtcd", self._leave_etcd)))
        wipe = Phase.of("wipe", *[(f"wipe{label.title()}", self._wiper(label)) for label in options.wipe])
        seq = self._stop_sequence("reset", "resetting", leave)
        seq = Sequence(seq.name, seq.stage, (*seq.phases[:-1], wipe, seq.phases[-1]))
        return self._schedule(seq, Action.REBOOT if options.reboot else Action.SHUTDOWN)

    async def _leave_kubernetes(self) -> None:
        """Cordon and drain this node, stop the kubelet, delete its Node, with the kubelet's
        credentials (kos.controllers.k8s.drain). Failing to reach Kubernetes never blocks a reset."""
        from pathlib import Path

        from kos.controllers.k8s.drain import leave_kubernetes
        from kos.controllers.k8s.kubelet import KubeletPaths
        from kos.resources.k8s import NODENAME_ID, NODENAMES

        kubeconfig = Path(self._root()) / KubeletPaths.kubeconfig.lstrip("/")
        res = await self.state.get_or_none(NODENAMES.pointer(NODENAME_ID))
        if res is None or not await anyio.to_thread.run_sync(kubeconfig.exists):
            log.info("reset: the kubelet never joined Kubernetes, nothing to drain")
            return

        async def stop_kubelet() -> None:  # it would register the Node again
            sup = self.supervisor
            if sup is not None and "kubelet" in sup.ids() and sup.is_active("kubelet"):
                await sup.stop("kubelet")

        try:
            await leave_kubernetes(kubeconfig, res.spec.nodename, timeout=60.0, before_delete=stop_kubelet)
        except Exception as exc:  # an unreachable API server must not block the reset
            log.error("reset: leaving Kubernetes failed", error=str(exc)[:1000])

    async def _leave_etcd(self) -> None:
        """Leave the etcd cluster when this node is a member (what EtcdLeaveCluster does; the
        marker records it, so the etcd controllers do not start etcd again)."""
        from kos.controllers.etcd.leave import leave_local_member
        from kos.resources.etcd import ETCD_SPECS

        sup = self.supervisor
        spec = await self.state.get_or_none(ETCD_SPECS.pointer("etcd"))
        if spec is None or sup is None or "etcd" not in sup.ids() or not sup.status("etcd").running:
            log.info("reset: etcd does not run here, nothing to leave")
            return
        await leave_local_member(self.state, self._etcd_paths(), timeout=10)
        await sup.stop("etcd")

    def _wiper(self, label: str) -> Callable[[], Awaitable[None]]:
        async def wipe() -> None:
            if self.platform.mode.in_container:
                target = self.opts.state_dir if label == "STATE" else self.opts.ephemeral_dir
                if target is None:
                    return
                await anyio.to_thread.run_sync(empty_directory, target)
                return
            from kos.controllers.block.wipe import wipe as block_wipe  # disks only: not at start-up

            await block_wipe(self.state, labels=[label])

        return wipe

    async def upgrade(self, image: str, *, preserve: bool, stage: bool, force: bool) -> str:
        if not self.platform.mode.requires_install:
            raise UpgradeUnavailableError(
                f"upgrade to {image!r}: {self.opts.platform} nodes have no boot slots to install into; "
                "recreate the node (kosctl cluster destroy/create) to change its version"
            )
        from kos.platform.image.installer import upgrade_sequence  # imported when used: start-up stays short

        try:
            phases = upgrade_sequence(image, preserve=preserve, stage=stage, force=force)
        except ValueError as exc:
            raise LifecycleRequestError(str(exc)) from None
        return self._schedule(Sequence("upgrade", "upgrading", tuple(Phase.of(n, *t) for n, t in phases)),
                              Action.REBOOT)

    async def rollback(self) -> tuple[str, str, str]:
        """Manual rollback: check now that the other slot is a previous good one (else
        FAILED_PRECONDITION, nothing changed), then a reboot sequence whose first phase flips
        META to it."""
        if not self.platform.mode.requires_install:
            raise UpgradeUnavailableError(
                f"rollback: {self.opts.platform} nodes have no boot slots (only QEMU/metal nodes booted from a "
                "kos system disk have A/B slots); recreate the node to change its version"
            )
        from kos.platform.image import install as image_install
        from kos.platform.image import installer as image_installer

        try:
            state, target = await anyio.to_thread.run_sync(image_installer.rollback_check)
        except image_install.InstallError as exc:
            raise LifecycleRefusedError(f"rollback refused: {exc}") from None

        async def flip() -> None:
            flipped = await anyio.to_thread.run_sync(image_installer.rollback_now)
            log.info("rollback: next boot uses the previous slot", active=flipped.active)

        seq = self._stop_sequence("rollback", "rebooting", (Phase.of("rollback", ("flipBootSlot", flip)),))
        return self._schedule(seq, Action.REBOOT), state.active, target

    def request(self, action: Action, why: str) -> None:
        """A signal's request: shutdown (SIGTERM) or reboot (SIGINT / ctrl-alt-del)."""
        seq = self._stop_sequence("shutdown", "shuttingDown") if action is Action.SHUTDOWN else \
            self._stop_sequence("reboot", "rebooting")
        try:
            self._schedule(seq, action)
        except LifecycleRefusedError as exc:
            log.warning("signal request refused", why=why, error=str(exc))
