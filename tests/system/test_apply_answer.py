"""ApplyConfiguration never answers a plain "Applied configuration" for a field the node does
not act on: the answer's warnings name each such field with the reason, and the node publishes
them as ConfigFieldStatuses (removed once the config no longer sets them)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.controllers.system import Host, not_acted_on
from kos.controllers.system.status import config_field_status_controller
from kos.resources.config import ConfigFieldStatusSpec
from kos.resources.core import Kind
from kos.resources.machineconfig import ConfigContainer
from tests.config.helpers import configs, node, patched

pytestmark = pytest.mark.anyio

FIELD_STATUSES = Kind("config", ConfigFieldStatusSpec.definition.type)
HOST = Host(shared_kernel=True)


def with_unsupported(text: str) -> str:
    def change(cfg: object) -> None:
        m = cfg.machine  # type: ignore[attr-defined]
        m.sysctls = {"net.ipv4.ip_forward": "1", "kernel.pid_max": "65536"}
        m.features.kubernetes_talos_api_access = {"enabled": True}
        m.features.host_dns = {"enabled": True, "forwardKubeDNSToHost": True}  # acted on: no warning

    return patched(text, change)


async def test_the_answer_and_the_statuses_name_what_is_not_acted_on(tmp_path: Path) -> None:
    cp, _ = configs()
    async with node(tmp_path, not_acted_on=lambda c: not_acted_on(c, HOST)) as (state, m):
        rt = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
        rt.register(config_field_status_controller(HOST))
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run)
            baseline = {path for path, _ in not_acted_on(ConfigContainer.load(cp), HOST)}
            out = await m.apply(with_unsupported(cp).encode(), "auto")
            assert "not acted on here" in out.details and "Applied configuration" in out.details
            notes = [w for w in out.warnings if "not acted on by this node" in w]
            by_field = {w.split(":", 1)[0]: w for w in notes}
            assert set(by_field) - baseline == {"machine.sysctls", "machine.features.kubernetesTalosAPIAccess"}
            assert "kernel.pid_max" in by_field["machine.sysctls"]
            assert "from Kubernetes pods" in by_field["machine.features.kubernetesTalosAPIAccess"]
            got = await assert_resources(state, FIELD_STATUSES,
                                         ["machine.features.kubernetesTalosAPIAccess", "machine.sysctls"])
            access = got["machine.features.kubernetesTalosAPIAccess"].spec
            assert access.state == "unsupported" and "from Kubernetes pods" in access.reason

            dry = await m.apply(with_unsupported(cp).encode(), "auto", dry_run=True)
            assert any("machine.features.kubernetesTalosAPIAccess" in w for w in dry.warnings)

            back = await m.apply(cp.encode(), "auto")
            assert {w.split(":", 1)[0] for w in back.warnings if "not acted on" in w} == baseline
            await assert_no_resource(state, FIELD_STATUSES.pointer("machine.features.kubernetesTalosAPIAccess"))
            tg.cancel_scope.cancel()
