"""EtcdServiceController: applies the ``EtcdSpecs(etcd/etcd)`` resource to the supervised etcd.

Input: the EtcdSpec (weak, id ``etcd``). Output: ``EtcdMembers(etcd/local)``. On every change
the controller gives the etcd service's runner the new spec (adding the service with
``define`` when the ServiceManager has none yet) and (re)starts the service when
the spec differs from what runs (or the service is not running); once the member is healthy
it publishes the local member id. When the spec is destroyed the service is stopped and the
EtcdMember destroyed. The join/bootstrap decision is made upstream: the spec it gets already
says ``new`` or ``existing`` with the right initial cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from kos.apis.etcd import EtcdClient, TLSFiles, format_member_id
from kos.controllers.runtime import (
    Controller,
    ControllerRuntime,
    Input,
    Output,
    OutputKind,
    ServiceDefiner,
    ServiceManager,
)
from kos.resources.core import Phase, Resource
from kos.resources.etcd import ETCD_MEMBERS, ETCD_SPECS, EtcdMemberSpec, EtcdSpecSpec

SPEC_ID = "etcd"
SERVICE_ID = "etcd"


@runtime_checkable
class EtcdSpecRunner(Protocol):
    """The etcd service's runner (machined's EtcdRunner): it runs the spec it is given."""

    spec: EtcdSpecSpec


def etcd_runner(sup: ServiceManager) -> EtcdSpecRunner:
    runner = sup.runner(SERVICE_ID)
    if not isinstance(runner, EtcdSpecRunner):
        raise TypeError(f"service {SERVICE_ID!r} does not run etcd (runner {type(runner).__name__})")
    return runner


class EtcdServiceController(Controller):
    name = "etcd.EtcdServiceController"

    def __init__(
        self,
        supervisor: ServiceManager,
        client_tls: TLSFiles | None,
        *,
        healthy_timeout: float = 60.0,
        define: ServiceDefiner | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.client_tls = client_tls
        self.healthy_timeout = healthy_timeout
        self.define = define

    def inputs(self) -> Sequence[Input]:
        return [Input(ETCD_SPECS.namespace, ETCD_SPECS.type, SPEC_ID)]

    def outputs(self) -> Sequence[Output]:
        return [Output(ETCD_MEMBERS.type, OutputKind.EXCLUSIVE)]

    def _runner(self) -> EtcdSpecRunner:
        if SERVICE_ID not in self.supervisor.ids():
            if self.define is None:
                raise RuntimeError(f"the supervisor has no {SERVICE_ID!r} service to run the EtcdSpec")
            self.define()  # e.g. a worker whose config made it a control plane
        return etcd_runner(self.supervisor)

    async def run(self, rt: ControllerRuntime) -> None:
        async for _ in rt.events():
            await self.reconcile(rt)
            rt.reset_restart_backoff()

    async def reconcile(self, rt: ControllerRuntime) -> None:
        sup = self.supervisor
        res = await rt.get_or_none(ETCD_SPECS.pointer(SPEC_ID))
        member_ptr = ETCD_MEMBERS.pointer("local")
        if res is None or res.metadata.phase != Phase.RUNNING:
            if SERVICE_ID in sup.ids() and sup.is_active(SERVICE_ID):
                rt.logger.info("etcd spec gone: stopping etcd")
                await sup.stop(SERVICE_ID)
            if await rt.get_or_none(member_ptr) is not None:
                await rt.destroy(member_ptr)
            return
        spec: EtcdSpecSpec = res.spec
        runner = self._runner()
        changed = runner.spec != spec
        runner.spec = spec.copy()
        if changed and sup.is_active(SERVICE_ID):
            rt.logger.info("etcd spec changed: restarting etcd")
            await sup.restart(SERVICE_ID)
        elif not sup.is_active(SERVICE_ID):
            await sup.start(SERVICE_ID)
        await sup.wait_healthy(SERVICE_ID, timeout=self.healthy_timeout)
        async with EtcdClient(spec.advertise_client_urls[:1], self.client_tls) as c:
            st = await c.status()
        member_id = format_member_id(st.member_id)

        def apply(r: Resource[Any]) -> None:
            r.spec = EtcdMemberSpec(member_id=member_id)

        await rt.modify(Resource.new(EtcdMemberSpec(), "local"), apply)
