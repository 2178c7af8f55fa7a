"""Node assembly: every domain's ``controllers/<domain>/assembly.py`` assembles with the
parameters machined gives it (a missing domain or parameter is reported, never skipped), and
the whole set registers in one Runtime without output conflicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from kos.controllers.runtime import Runtime
from kos.machined import assembly
from kos.machined.services import Supervisor
from kos.resources.core import InMemoryState

pytestmark = pytest.mark.anyio


def test_call_with_params_names_a_missing_parameter() -> None:
    def fn(*, a: int, b: int = 2, c: str | None = None) -> tuple[int, int, str | None]:
        return a, b, c

    assert assembly.call_with_params(fn, {"a": 1, "c": None, "zzz": 0}) == (1, 2, None)
    with pytest.raises(TypeError, match="machined has no value for parameter 'a'"):
        assembly.call_with_params(fn, {"b": 3})


def test_a_missing_domain_is_reported() -> None:
    controllers, missing = assembly.assemble_controllers(assembly.AssemblyContext(), ("nosuchdomain",))
    assert controllers == []
    assert "kos.controllers.nosuchdomain.assembly cannot be imported" in missing["nosuchdomain"]


async def test_every_domain_assembles_for_a_namespace_node(tmp_path: Path) -> None:
    from kos.controllers.etcd.marker import EtcdPaths

    async with Supervisor(None, cgroup_parent="kos-test-assembly") as sup:
        ctx = assembly.AssemblyContext(
            root=str(tmp_path), container_mode=True, control_plane=True, state_dir=tmp_path / "state",
            supervisor=sup, extra_names=["10.5.0.2", "cp-1"],
            domain_params={
                "etcd": {"paths": EtcdPaths(tmp_path)},
                "network": {"netns": None, "etc_dir": str(tmp_path / "etc"), "manage_hostname": False},
            },
        )
        controllers, missing = assembly.assemble_controllers(ctx)
    assert missing == {}
    names = [c.name for c in controllers]
    assert len(names) == len(set(names))
    runtime = Runtime(InMemoryState())
    for c in controllers:  # registration checks that no two controllers own the same output
        runtime.register(c)
    for expected in ("cluster.DiscoveryController", "etcd.EtcdServiceController", "secrets.APICertsController"):
        assert expected in names
