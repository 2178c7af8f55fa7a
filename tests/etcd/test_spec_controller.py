"""EtcdSpecController's decisions on an in-memory state (no etcd process): no spec while it
waits (inputs missing, no cluster to join, bad config), a new-cluster spec once bootstrapped,
a spec for a member found on disk, config changes that keep the initial cluster, and no spec
after leaving."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from kos.controllers.etcd.marker import EtcdPaths, read_marker, write_marker
from kos.controllers.etcd.spec import EtcdSpecController
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.resources.core import InMemoryState, Resource
from kos.resources.etcd import ETCD_CONFIGS, ETCD_ERRORS, ETCD_SPECS, EtcdBootstrapSpec, EtcdConfigSpec
from kos.resources.network import HostnameStatusSpec, NodeAddressSpec
from kos.resources.secrets import ETCD_CERTS_ID, EtcdCertsSpec

pytestmark = pytest.mark.anyio

NOBODY = "https://127.0.0.1:1"  # nothing listens: no cluster to join


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[InMemoryState, EtcdPaths]]:
    state = InMemoryState()
    paths = EtcdPaths(tmp_path)
    runtime = Runtime(state, backoff_initial=0.01, backoff_max=0.1)
    runtime.register(EtcdSpecController(paths, join_retry=0.05, join_timeout=2.0))
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        yield state, paths
        tg.cancel_scope.cancel()


async def inputs(state: InMemoryState, cfg: EtcdConfigSpec | None = None) -> None:
    await state.create(Resource.new(cfg or EtcdConfigSpec(join_endpoints=[NOBODY]), "etcd"))
    await state.create(Resource.new(HostnameStatusSpec(hostname="cp-2"), "hostname"))
    await state.create(Resource.new(NodeAddressSpec(addresses=["10.5.0.3/24"]), "current"))
    await state.create(Resource.new(EtcdCertsSpec(*(f"PEM {i}" for i in range(7))), ETCD_CERTS_ID))


async def touch(state: InMemoryState, paths: EtcdPaths, marker: EtcdBootstrapSpec) -> None:
    write_marker(paths.marker, marker)

    def apply(r: Resource[Any]) -> None:
        r.spec = marker

    await state.modify(Resource.new(EtcdBootstrapSpec(), "bootstrap"), apply)


async def no_spec_for_a_while(state: InMemoryState) -> None:
    await anyio.sleep(0.5)  # several join retries
    assert await state.get_or_none(ETCD_SPECS.pointer("etcd")) is None


async def test_waits_then_bootstraps_then_keeps_the_cluster(node: tuple[InMemoryState, EtcdPaths]) -> None:
    state, paths = node
    await state.create(Resource.new(HostnameStatusSpec(hostname="cp-2"), "hostname"))
    await no_spec_for_a_while(state)  # the other inputs are missing
    await state.destroy(Resource.new(HostnameStatusSpec(), "hostname").pointer)
    await inputs(state)
    await no_spec_for_a_while(state)  # nobody to join, not bootstrapped
    assert (paths.pki_dir / "server.key").read_text() == "PEM 2"

    await touch(state, paths, EtcdBootstrapSpec(bootstrapped=True))
    got = await assert_resources(state, ETCD_SPECS, ["etcd"])
    spec = got["etcd"].spec
    assert spec.initial_cluster_state == "new" and spec.initial_cluster == {"cp-2": "https://10.5.0.3:2380"}
    assert spec.advertise_client_urls == ["https://10.5.0.3:2379"] and spec.data_dir == str(paths.data_dir)

    # a config change rewrites the spec but keeps how the member was created
    def more_args(r: Resource[Any]) -> None:
        r.spec = dataclasses.replace(r.spec, extra_args={"max-txn-ops": "256"})

    await state.update_with_conflicts(ETCD_CONFIGS.pointer("etcd"), more_args)
    await assert_resources(state, ETCD_SPECS, ["etcd"],
                           lambda r: None if r.spec.extra_args == {"max-txn-ops": "256"} else "extra args")

    # leaving the cluster removes the spec (the service controller then stops etcd)
    await touch(state, paths, EtcdBootstrapSpec(bootstrapped=True, left=True))
    await assert_no_resource(state, ETCD_SPECS.pointer("etcd"))


async def test_member_on_disk_runs_without_bootstrap(node: tuple[InMemoryState, EtcdPaths]) -> None:
    state, paths = node
    (paths.data_dir / "member").mkdir(parents=True)
    await inputs(state, EtcdConfigSpec())
    got = await assert_resources(state, ETCD_SPECS, ["etcd"])
    assert got["etcd"].spec.name == "cp-2"


async def test_bad_config_writes_no_spec(node: tuple[InMemoryState, EtcdPaths]) -> None:
    state, paths = node
    await inputs(state, EtcdConfigSpec(advertised_subnets=["192.168.0.0/16"]))
    await touch(state, paths, EtcdBootstrapSpec(bootstrapped=True))
    await no_spec_for_a_while(state)
    want = "cluster.etcd.advertisedSubnets: ['192.168.0.0/16'] match none of the node's addresses ['10.5.0.3/24']"
    await assert_resources(state, ETCD_ERRORS, ["etcd"], lambda r: None if r.spec.message == want else r.spec.message)

    def fix(r: Resource[Any]) -> None:
        r.spec = EtcdConfigSpec(advertised_subnets=["10.5.0.0/16"])

    await state.update_with_conflicts(ETCD_CONFIGS.pointer("etcd"), fix)
    await assert_resources(state, ETCD_SPECS, ["etcd"])
    await assert_no_resource(state, ETCD_ERRORS.pointer("etcd"))
    # the node stops being a control plane: no etcd
    await state.destroy(ETCD_CONFIGS.pointer("etcd"))
    await assert_no_resource(state, ETCD_SPECS.pointer("etcd"))


@pytest.mark.root
async def test_failed_recovery_leaves_no_half_member(node: tuple[InMemoryState, EtcdPaths], tmp_path: Path) -> None:
    state, paths = node
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a bolt database" * 100)
    await inputs(state)
    marker = EtcdBootstrapSpec(bootstrapped=True, recover_from=str(junk))
    await touch(state, paths, marker)
    await no_spec_for_a_while(state)
    assert not await anyio.Path(paths.data_dir, "member").exists()
    assert not await anyio.Path(f"{paths.data_dir}.restore").exists()
    assert read_marker(paths.marker) == marker  # the recovery is still pending, nothing was half done
    got = await assert_resources(state, ETCD_ERRORS, ["etcd"])
    assert got["etcd"].spec.message.startswith(f"etcd recovery failed: snapshot {junk} cannot be restored: ")
