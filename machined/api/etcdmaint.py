"""etcd maintenance RPCs: EtcdAlarmList, EtcdAlarmDisarm and EtcdDefragment.

``EtcdMaintenanceAPI(state, supervisor, paths)`` is a machine-API extension next to
``EtcdAPI`` (same local member, same admin certificate, same status codes: UNAVAILABLE when
etcd does not run here, FAILED_PRECONDITION on a node that is not a control plane).

* alarm list: the cluster's active alarms (NOSPACE, CORRUPT) with the member that raised them;
* alarm disarm: deactivates them all and answers with those it disarmed (a NOSPACE alarm
  comes back at once if the database is still over its quota: defragment or compact first);
* defragment: defragments the local member's backend database (it blocks reads and writes
  while it runs, like ``etcdctl defrag``), answering with the database size before and after.
"""

from __future__ import annotations

from grpclib.const import Cardinality
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.etcd import EtcdError
from kos.apis.gen.kos import machine as pb
from kos.apis.server.dispatch import Call, Dispatcher
from kos.apis.server.state import parse
from kos.machined.api.etcd import EtcdAPI, etcd_status


class EtcdMaintenanceAPI(EtcdAPI):
    def register(self, d: Dispatcher) -> None:
        p = auth.MACHINE
        unary = Cardinality.UNARY_UNARY
        d.add(p + "EtcdAlarmList", self.alarm_list, unary)
        d.add(p + "EtcdAlarmDisarm", self.alarm_disarm, unary)
        d.add(p + "EtcdDefragment", self.defragment, unary)

    async def alarm_list(self, call: Call) -> None:
        parse(pb.EtcdAlarmListRequest, await call.request())
        await self._answer_alarms(call, "list")

    async def alarm_disarm(self, call: Call) -> None:
        parse(pb.EtcdAlarmDisarmRequest, await call.request())
        await self._answer_alarms(call, "disarm")

    async def _answer_alarms(self, call: Call, verb: str) -> None:
        """The member alarms (``list``) or the alarms just disarmed (``disarm``)."""
        spec = await self._spec()
        async with self._client(spec) as c:
            try:
                alarms = await (c.alarms() if verb == "list" else c.disarm_alarms())
            except EtcdError as exc:
                raise GRPCError(etcd_status(exc), f"etcd alarm {verb}: {exc}") from None
        resp = pb.EtcdAlarmListResponse(alarms=[pb.EtcdMemberAlarm(member_id=m, alarm=a) for m, a in alarms])
        await call.send(bytes(resp))

    async def defragment(self, call: Call) -> None:
        parse(pb.EtcdDefragmentRequest, await call.request())
        spec = await self._spec()
        async with self._lock, self._client(spec) as c:
            try:
                before = (await c.status()).db_size
                await c.defragment()
                after = (await c.status()).db_size
            except EtcdError as exc:
                raise GRPCError(etcd_status(exc), f"etcd defragment: {exc}") from None
        await call.send(bytes(pb.EtcdDefragmentResponse(db_size_before=before, db_size_after=after)))
