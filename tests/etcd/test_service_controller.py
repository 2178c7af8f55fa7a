"""EtcdServiceController on a real single-member etcd: spec created -> etcd runs and the
EtcdMember appears; spec changed -> etcd restarted with it; spec destroyed -> etcd stopped."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio
import pytest

from kos.apis.etcd import format_member_id
from kos.controllers.etcd.join import AlreadyBootstrappedError
from kos.controllers.etcd.service import EtcdServiceController
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.machined.services import ServiceState, Supervisor
from kos.machined.services.etcd import etcd_service
from kos.resources.core import Resource
from kos.resources.etcd import ETCD_MEMBERS
from tests.support.localcluster import LocalCluster

pytestmark = [pytest.mark.anyio, pytest.mark.root]


async def test_spec_drives_the_etcd_service(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path, 1) as cl:
        m = cl.members[0]
        runtime = Runtime(m.state, backoff_initial=0.01, backoff_max=0.2)
        runtime.register(EtcdServiceController(m.supervisor, cl.member_tls(0), healthy_timeout=20))
        async with anyio.create_task_group() as tg:
            tg.start_soon(runtime.run)
            assert not m.supervisor.is_active("etcd")  # nothing to run without a spec
            await m.state.create(Resource.new(m.spec.copy(), "etcd"))
            got = await assert_resources(m.state, ETCD_MEMBERS, ["local"], timeout=20)
            async with cl.client(0) as c:
                st = await c.status()
            assert got["local"].spec.member_id == format_member_id(st.member_id)
            pid = m.supervisor.status("etcd").pid

            # a changed spec restarts etcd with the new command line
            changed = dataclasses.replace(m.spec, extra_args={"max-txn-ops": "256"})
            await m.state.update_with_conflicts(
                Resource.new(changed, "etcd").pointer, lambda r: setattr(r, "spec", changed)
            )
            await m.supervisor.wait_for(
                "etcd", lambda s: s.pid not in (0, pid) and s.healthy and s.state == ServiceState.RUNNING,
                timeout=20,
            )
            assert "--max-txn-ops=256" in m.runner.args

            # destroying the spec stops etcd and removes the member resource
            await m.state.destroy(Resource.new(changed, "etcd").pointer)
            await assert_no_resource(m.state, ETCD_MEMBERS.pointer("local"), timeout=20)
            st2 = await m.supervisor.wait_state("etcd", ServiceState.FINISHED, timeout=20)
            assert not m.supervisor.is_active("etcd") and st2.message == "service stopped"

            # the data dir now holds a cluster: a second bootstrap is refused
            with pytest.raises(AlreadyBootstrappedError, match="etcd is already bootstrapped: data dir"):
                await cl.bootstrap()
            tg.cancel_scope.cancel()


async def test_service_is_added_when_the_supervisor_has_none(tmp_path: Path) -> None:
    """A node that became a control plane after boot has no etcd service yet: the controller
    adds it from its definition factory and runs the spec."""
    async with LocalCluster(tmp_path, 1) as cl, Supervisor(None, cgroup_parent="kos-test-etcd-late") as sup:
        state = cl.members[0].state
        tls = cl.member_tls(0)
        runtime = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
        runtime.register(EtcdServiceController(sup, tls, healthy_timeout=20,
                                               define=lambda: sup.add(etcd_service(None, tls, stop_timeout=2.0))))
        async with anyio.create_task_group() as tg:
            tg.start_soon(runtime.run)
            assert "etcd" not in sup.ids()
            await state.create(Resource.new(cl.spec(0), "etcd"))
            await assert_resources(state, ETCD_MEMBERS, ["local"], timeout=20)
            assert sup.status("etcd").healthy
            tg.cancel_scope.cancel()
