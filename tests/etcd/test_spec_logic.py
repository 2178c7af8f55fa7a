"""Pure parts of the etcd wiring: machine config -> EtcdConfig, EtcdConfig + hostname + node
addresses -> EtcdSpec (hypothesis over address sets and subnet filters), the bootstrap marker
and certificate files, and the EtcdConfigController on an in-memory state."""

from __future__ import annotations

import dataclasses
import ipaddress
import stat
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.controllers.etcd.config import EtcdConfigController, etcd_config_from, join_endpoints
from kos.controllers.etcd.marker import EtcdPaths, MarkerError, read_marker, write_marker
from kos.controllers.etcd.render import render_args
from kos.controllers.etcd.spec import EtcdConfigError, build_spec, same_member, write_pki
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.core import InMemoryState, Resource
from kos.resources.etcd import ETCD_CONFIGS, EtcdBootstrapSpec, EtcdConfigSpec
from kos.resources.machineconfig import ConfigContainer
from kos.resources.machineconfig.generate import GenOptions, generate
from kos.resources.machineconfig.secrets import SecretsBundle
from kos.resources.secrets import EtcdCertsSpec

PATHS = EtcdPaths(Path("/n"))


def spec_for(addresses: list[str], **cfg: object) -> object:
    return build_spec(EtcdConfigSpec(**cfg), "cp-1", addresses, PATHS)  # type: ignore[arg-type]


def test_defaults_listen_everywhere_and_advertise_every_address() -> None:
    s = build_spec(EtcdConfigSpec(extra_args={"quota-backend-bytes": "1000"}), "cp-1",
                   ["10.5.0.2/24", "192.168.1.7/24"], PATHS)
    assert s.name == "cp-1" and s.data_dir == "/n/var/lib/etcd"
    assert s.listen_client_urls == ["https://0.0.0.0:2379"] and s.listen_peer_urls == ["https://0.0.0.0:2380"]
    assert s.advertise_client_urls == ["https://10.5.0.2:2379", "https://192.168.1.7:2379"]
    assert s.advertise_peer_urls == ["https://10.5.0.2:2380"]
    assert s.initial_cluster == {"cp-1": "https://10.5.0.2:2380"} and s.initial_cluster_state == "new"
    assert (s.cert_file, s.peer_key_file, s.ca_file) == (
        "/n/system/secrets/etcd/server.crt", "/n/system/secrets/etcd/peer.key", "/n/system/secrets/etcd/ca.crt")
    assert "--quota-backend-bytes=1000" in render_args(s)


def test_subnet_filters_pick_addresses() -> None:
    addrs = ["10.5.0.2/24", "172.20.0.5/16", "fd00::5/64"]
    s = build_spec(EtcdConfigSpec(advertised_subnets=["172.20.0.0/16", "fd00::/8"],
                                  listen_subnets=["!10.0.0.0/8"]), "cp", addrs, PATHS)
    assert s.advertise_client_urls == ["https://172.20.0.5:2379", "https://[fd00::5]:2379"]
    assert s.advertise_peer_urls == ["https://172.20.0.5:2380"]
    assert s.listen_client_urls == ["https://172.20.0.5:2379", "https://[fd00::5]:2379"]
    v6 = build_spec(EtcdConfigSpec(), "cp", ["fd00::5/64"], PATHS)
    assert v6.listen_peer_urls == ["https://[::]:2380"] and v6.advertise_peer_urls == ["https://[fd00::5]:2380"]


@pytest.mark.parametrize(
    ("cfg", "hostname", "match"),
    [
        (EtcdConfigSpec(advertised_subnets=["192.168.0.0/16"]), "cp",
         r"cluster.etcd.advertisedSubnets: \['192.168.0.0/16'\] match none of the node's addresses \['10.5.0.2/24'\]"),
        (EtcdConfigSpec(advertised_subnets=["10.5.0.0/33"]), "cp", "cluster.etcd.advertisedSubnets: subnet filter"),
        (EtcdConfigSpec(listen_subnets=["192.168.0.0/16"]), "cp", "cluster.etcd.listenSubnets: .* match none"),
        (EtcdConfigSpec(extra_args={"data-dir": "/x"}), "cp",
         "cluster.etcd.extraArgs: EtcdSpec.extra_args: 'data-dir' is managed by kos"),
        (EtcdConfigSpec(), "", "hostname: empty"),
        (EtcdConfigSpec(), "bad name!", "EtcdSpec.name"),
    ],
)
def test_bad_inputs_name_the_field(cfg: EtcdConfigSpec, hostname: str, match: str) -> None:
    with pytest.raises(EtcdConfigError, match=match):
        build_spec(cfg, hostname, ["10.5.0.2/24"], PATHS)


v4 = st.builds(lambda a, b, c: f"10.{a}.{b}.{c}/24", st.integers(0, 3), st.integers(0, 255), st.integers(1, 254))
v6 = st.builds(lambda a, b: f"fd00:{a:x}::{b:x}/64", st.integers(0, 3), st.integers(1, 0xFFFF))
subnets = st.lists(st.sampled_from(["10.0.0.0/8", "10.1.0.0/16", "!10.2.0.0/16", "fd00::/16", "fd00:1::/32",
                                    "!fd00:2::/32"]), max_size=3)


@settings(deadline=None)  # the machine is shared: no per-example time limit
@given(st.lists(st.one_of(v4, v6), min_size=1, max_size=5, unique=True), subnets)
def test_advertised_urls_are_exactly_the_filtered_addresses(addresses: list[str], adv: list[str]) -> None:
    addresses = sorted(addresses)
    inc = [ipaddress.ip_network(s) for s in adv if not s.startswith("!")]
    exc = [ipaddress.ip_network(s[1:]) for s in adv if s.startswith("!")]

    def keep(a: str) -> bool:
        ip = ipaddress.ip_interface(a).ip
        ok = not inc or any(ip.version == n.version and ip in n for n in inc)
        return ok and not any(ip.version == n.version and ip in n for n in exc)

    expected = [a for a in addresses if keep(a)]
    try:
        s = build_spec(EtcdConfigSpec(advertised_subnets=adv), "cp", addresses, PATHS)
    except EtcdConfigError as e:
        assert not expected and "match none" in str(e)
        return
    hosts = [u.removeprefix("https://").rsplit(":", 1)[0].strip("[]") for u in s.advertise_client_urls]
    assert hosts == [str(ipaddress.ip_interface(a).ip) for a in expected]
    assert s.advertise_peer_urls == [s.advertise_client_urls[0].replace(":2379", ":2380")]
    assert s.initial_cluster == {"cp": s.advertise_peer_urls[0]}
    render_args(s)  # always renderable


def test_same_member_ignores_only_the_initial_cluster() -> None:
    base = build_spec(EtcdConfigSpec(), "cp", ["10.5.0.2/24"], PATHS)
    joined = dataclasses.replace(base, initial_cluster={"cp": "x", "cp0": "y"}, initial_cluster_state="existing")
    assert same_member(base, joined)
    assert not same_member(base, dataclasses.replace(base, extra_args={"a": "b"}))
    assert not same_member(base, build_spec(EtcdConfigSpec(), "cp", ["10.5.0.3/24"], PATHS))


def test_join_endpoints() -> None:
    assert join_endpoints("https://10.5.0.2:6443") == ["https://10.5.0.2:2379"]
    assert join_endpoints("https://cp.example.org") == ["https://cp.example.org:2379"]
    assert join_endpoints("https://[fd00::1]:6443") == ["https://[fd00::1]:2379"]
    assert join_endpoints("") == [] and join_endpoints("https://:6443") == []


def _configs() -> tuple[ConfigContainer, ConfigContainer]:
    gen = generate(GenOptions(cluster_name="c", endpoint="https://10.5.0.2:6443"), SecretsBundle.generate())
    data = gen.controlplane.to_data()
    data[0]["cluster"]["etcd"].update(advertisedSubnets=["10.5.0.0/24"], extraArgs={"election-timeout": "5000"})
    return ConfigContainer.from_data(data), gen.worker


def test_etcd_config_from_machine_config() -> None:
    cp, worker = _configs()
    assert etcd_config_from(worker) is None
    got = etcd_config_from(cp)
    assert got == EtcdConfigSpec(extra_args={"election-timeout": "5000"}, advertised_subnets=["10.5.0.0/24"],
                                 join_endpoints=["https://10.5.0.2:2379"])


def test_marker_round_trip_and_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "etcd-bootstrap.json"
    assert read_marker(path) == EtcdBootstrapSpec()
    m = EtcdBootstrapSpec(bootstrapped=True, recover_from="/x/snapshot.db", skip_hash_check=True)
    write_marker(path, m)
    assert read_marker(path) == m and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("[1]")
    with pytest.raises(MarkerError, match=r"etcd bootstrap marker .*: expected a JSON object"):
        read_marker(path)


def test_certificates_written_0600_only_when_changed(tmp_path: Path) -> None:
    paths = EtcdPaths(tmp_path)
    certs = EtcdCertsSpec(*(f"PEM {i}" for i in range(7)))
    assert len(write_pki(paths, certs)) == 7
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in paths.pki_dir.iterdir())
    assert write_pki(paths, certs) == []
    assert write_pki(paths, dataclasses.replace(certs, server_key="new")) == ["server.key"]
    assert (paths.pki_dir / "server.key").read_text() == "new"
    with pytest.raises(EtcdConfigError, match="EtcdCerts: admin_key empty"):
        write_pki(paths, dataclasses.replace(certs, admin_key=""))


@pytest.mark.anyio
async def test_config_controller_follows_machine_type() -> None:
    cp, worker = _configs()
    state = InMemoryState()
    runtime = Runtime(state, backoff_initial=0.01, backoff_max=0.1)
    runtime.register(EtcdConfigController())
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        await state.create(Resource.new(MachineConfigSpec.from_container(cp), ACTIVE_ID))
        got = await assert_resources(state, ETCD_CONFIGS, ["etcd"],
                                     lambda r: None if r.spec.advertised_subnets == ["10.5.0.0/24"] else "subnets")
        assert got["etcd"].spec.join_endpoints == ["https://10.5.0.2:2379"]
        ptr = Resource.new(MachineConfigSpec(), ACTIVE_ID).pointer
        await state.update_with_conflicts(ptr, lambda r: setattr(r, "spec", MachineConfigSpec.from_container(worker)))
        await assert_no_resource(state, ETCD_CONFIGS.pointer("etcd"))
        tg.cancel_scope.cancel()
