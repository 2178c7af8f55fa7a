"""The host DNS cache against the real kernel: a private network namespace, a real upstream
DNS server (Debian's dnsmasq) on 127.0.0.2, the cache on 127.0.0.53 (and 169.254.116.108)
forwarding to it, caching (the answer survives the upstream's death), timing out (SERVFAIL
within the timeout), answering member names itself, TCP, and the controllers converging
config -> HostDNSConfig -> listener -> HostDNSStatus -> resolv.conf."""

from __future__ import annotations

import random
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kos.controllers.network.etcfiles import EtcFilesController
from kos.controllers.network.hostdns import HostDNSConfigController, HostDNSController, host_dns_config
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_no_resource, assert_resources
from kos.platform.network import dnswire as w
from kos.platform.network.dnsserver import Cache, HostDNSServer
from kos.platform.network.netns import socket_in
from kos.resources.cluster import NAMESPACE as CLUSTER_NS
from kos.resources.cluster import MemberSpec
from kos.resources.core import InMemoryState, Resource
from kos.resources.machineconfig import ConfigContainer, ConfigErrors
from kos.resources.network import HOST_DNS_CONFIGS, HOST_DNS_STATUSES, NAMESPACE, ResolverSpecSpec
from tests.network.netns import addresses, eventually, needs_netns, netns, nsenter, put_config

pytestmark = pytest.mark.anyio

UPSTREAM = "127.0.0.2"


# -- the wire format (pure) ----------------------------------------------------------------------

@given(st.binary(max_size=600))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_parse_or_raise_format_errors(data: bytes) -> None:
    for parse in (w.parse_query, w.parse_reply, w.answer_addresses):
        try:
            parse(data)
        except w.DNSFormatError:
            pass


def test_a_compression_loop_is_refused() -> None:
    msg = struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    with pytest.raises(w.DNSFormatError, match="backwards"):
        w.parse_reply(msg)


@given(st.lists(st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True), min_size=1, max_size=5),
       st.sampled_from([w.TYPE_A, w.TYPE_AAAA, w.TYPE_SOA]), st.integers(0, 65535), st.sampled_from([0, 1232]))
def test_a_query_round_trips(labels: list[str], qtype: int, id_: int, udp: int) -> None:
    name = ".".join(labels)
    q = w.parse_query(w.make_query(name.upper(), qtype, id_=id_, udp_size=udp))
    assert (q.id, q.question, q.edns, q.udp_size) == (id_, w.Question(name, qtype, w.CLASS_IN), bool(udp),
                                                     udp or 512)


@given(st.integers(0, 100_000), st.integers(0, 100_000))
def test_cached_replies_age(ttl: int, age: int) -> None:
    query = w.make_query("a.test", w.TYPE_A, id_=1)
    reply = w.address_reply(query, w.parse_query(query), ["192.0.2.1"], ttl=ttl)
    cache = Cache(8, max_ttl=10**9)
    cache.put(("a.test", 1, 1, False), reply, w.parse_reply(reply), 1000.0)
    got = cache.get(("a.test", 1, 1, False), 1000.0 + age)
    if ttl == 0 or age >= ttl:
        assert got is None
    else:
        assert got is not None and w.parse_reply(got).min_ttl == ttl - age


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = Cache(3)
    for i in range(5):
        query = w.make_query(f"n{i}.test", w.TYPE_A, id_=i)
        reply = w.address_reply(query, w.parse_query(query), ["192.0.2.1"], ttl=60)
        cache.put((f"n{i}.test", 1, 1, False), reply, w.parse_reply(reply), 0.0)
    assert len(cache) == 3 and cache.get(("n0.test", 1, 1, False), 1.0) is None
    assert cache.get(("n4.test", 1, 1, False), 1.0) is not None


def test_a_large_reply_is_truncated_for_a_udp_client_without_edns() -> None:
    query = w.make_query("big.test", w.TYPE_A, id_=9)
    q = w.parse_query(query)
    reply = w.address_reply(query, q, [f"10.0.{i // 250}.{i % 250}" for i in range(60)], ttl=5)
    assert len(reply) > 512
    cut = HostDNSServer._fit(reply, q, tcp=False)
    assert len(cut) <= 512 and w.parse_reply(cut).truncated
    assert HostDNSServer._fit(reply, q, tcp=True) == reply


# -- config -> HostDNSConfig (pure) ----------------------------------------------------------------

def _container(features: str, extra: str = "") -> ConfigContainer:
    return ConfigContainer.load(f"version: v1alpha1\nmachine:\n  type: worker\n  features:\n{features}\ncluster: {{}}\n"
                                + extra, strict=False)


def test_config_to_host_dns_config() -> None:
    c = _container("    hostDNS: {enabled: true, forwardKubeDNSToHost: true, resolveMemberNames: true}")
    members = [MemberSpec(hostname="cp-1.lab.test", addresses=["10.5.0.2/24", "fe80::1/64", "10.244.0.1/24"]),
               MemberSpec(hostname="w-1", addresses=["10.5.0.3"])]
    spec = host_dns_config(c, ResolverSpecSpec(dns_servers=["1.1.1.1", "127.0.0.53", "bad"], search_domains=["x"]),
                           members)
    assert spec is not None
    assert spec.listen_addresses == ["127.0.0.53:53", "169.254.116.108:53"]
    assert spec.upstreams == ["1.1.1.1"]  # never itself, never garbage
    assert {n.name: n.addresses for n in spec.names} == {"cp-1.lab.test": ["10.5.0.2"], "cp-1": ["10.5.0.2"],
                                                         "w-1": ["10.5.0.3"]}
    off = _container("    hostDNS: {enabled: false}")
    assert host_dns_config(off, None) is None
    plain = host_dns_config(_container("    hostDNS: {enabled: true}"), None, members)
    assert plain is not None and plain.listen_addresses == ["127.0.0.53:53"] and plain.names == []


def test_the_resolver_config_document_switches_it_too() -> None:
    doc = "---\napiVersion: v1alpha1\nkind: ResolverConfig\nhostDNS: {enabled: true, forwardKubeDNSToHost: true}\n"
    spec = host_dns_config(_container("    rbac: true", doc), None)
    assert spec is not None and spec.forward_kube_dns_to_host


@pytest.mark.parametrize(("features", "path"), [
    ("    hostDNS: {enabled: yes-please}", "machine.features.hostDNS.enabled"),
    ("    hostDNS: {enabled: false, forwardKubeDNSToHost: true}", "machine.features.hostDNS.forwardKubeDNSToHost"),
    ("    hostDNS: {enabled: true, cache: 10}", "machine.features.hostDNS.cache"),
])
def test_bad_host_dns_values_are_refused_naming_the_field(features: str, path: str) -> None:
    with pytest.raises(ConfigErrors) as e:
        _container(features).validate("container")
    assert path in e.value.paths


# -- against the kernel ----------------------------------------------------------------------------

@contextmanager
def dnsmasq(path: str, *records: str) -> Iterator[subprocess.Popen[bytes]]:
    """dnsmasq on 127.0.0.2:53 inside ``path`` answering ``records`` (``name/ip``), TTL 300."""
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
    big = [f"--host-record=big.test,10.77.{i // 250}.{i % 250 + 1}" for i in range(60)]  # > 512 bytes
    args = ["nsenter", f"--net={path}", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
            "--no-hosts", "--bind-interfaces", f"--listen-address={UPSTREAM}", "--port=53", "--local-ttl=300",
            "--pid-file=", "--user=root", *big,
            *[f"--address=/{r.split('/')[0]}/{r.split('/')[1]}" for r in records]]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(5)


def _ask_blocking(path: str, server: str, name: str, qtype: int, tcp: bool, timeout: float) -> bytes:
    id_ = random.randrange(65536)
    query = w.make_query(name, qtype, id_=id_)
    if tcp:
        s = socket_in(path, socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        with s:
            s.connect((server, 53))
            s.sendall(struct.pack("!H", len(query)) + query)
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                chunk = s.recv(65535)
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
            return buf[2:]
    s = socket_in(path, socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    with s:
        s.sendto(query, (server, 53))
        data = s.recv(65535)
    assert struct.unpack("!H", data[:2])[0] == id_
    return data


async def ask(path: str, server: str, name: str, qtype: int = w.TYPE_A, *, tcp: bool = False,
              timeout: float = 5.0) -> bytes:
    return await anyio.to_thread.run_sync(_ask_blocking, path, server, name, qtype, tcp, timeout)


async def _upstream_ready(path: str) -> None:
    for _ in range(100):
        try:
            await ask(path, UPSTREAM, "ready.test", timeout=0.1)
            return
        except OSError:
            await anyio.sleep(0.05)
    raise AssertionError("dnsmasq did not answer")


@needs_netns
async def test_forwards_caches_and_times_out() -> None:
    with netns("dns") as path:
        nsenter(path, "ip", "link", "set", "lo", "up")
        server = HostDNSServer(listen=[("127.0.0.53", 53)], upstreams=[(UPSTREAM, 53)], netns=path, timeout=0.5,
                               names={"node-b": ["10.5.0.9", "fd00::9"]})
        with dnsmasq(path, "app.example.test/192.0.2.7", "ready.test/192.0.2.1") as upstream:
            await _upstream_ready(path)
            async with anyio.create_task_group() as tg:
                await tg.start(lambda task_status: server.serve(task_status=task_status))
                reply = await ask(path, "127.0.0.53", "app.example.test")
                assert w.answer_addresses(reply) == ["192.0.2.7"]
                assert w.parse_reply(reply).min_ttl == 300 and server.stats.forwarded == 1
                tcp = await ask(path, "127.0.0.53", "App.Example.Test", tcp=True)  # case-insensitive
                assert w.answer_addresses(tcp) == ["192.0.2.7"] and server.stats.cache_hits == 1
                # a large answer: truncated over UDP (TC), complete over TCP (the cache asks upstream over TCP)
                cut = w.parse_reply(await ask(path, "127.0.0.53", "big.test"))
                assert cut.truncated and cut.answers < 60
                full = await ask(path, "127.0.0.53", "big.test", tcp=True)
                assert len(w.answer_addresses(full)) == 60 and not w.parse_reply(full).truncated
                # members are answered by the cache itself
                assert w.answer_addresses(await ask(path, "127.0.0.53", "node-b")) == ["10.5.0.9"]
                assert w.answer_addresses(await ask(path, "127.0.0.53", "node-b", w.TYPE_AAAA)) == ["fd00::9"]
                # the upstream dies: cached names still resolve, others fail within the timeout
                upstream.terminate()
                upstream.wait(5)
                assert w.answer_addresses(await ask(path, "127.0.0.53", "app.example.test")) == ["192.0.2.7"]
                t0 = anyio.current_time()
                failed = w.parse_reply(await ask(path, "127.0.0.53", "other.example.test"))
                assert failed.rcode == w.RCODE_SERVFAIL and anyio.current_time() - t0 < 2.0
                assert server.stats.upstream_ok == {f"{UPSTREAM}:53": False}
                # a malformed query gets FORMERR; a response is not answered at all
                assert w.parse_reply(await server.answer(b"\x00\x07\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05",
                                                         tcp=False) or b"").rcode == w.RCODE_FORMERR
                assert await server.answer(reply, tcp=False) is None
                tg.cancel_scope.cancel()


@needs_netns
async def test_in_flight_queries_are_capped() -> None:
    with netns("dns") as path:
        nsenter(path, "ip", "link", "set", "lo", "up")
        # an upstream that never answers: a UDP socket bound but never read
        sink = socket_in(path, socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind((UPSTREAM, 53))
        server = HostDNSServer(listen=[("127.0.0.53", 53)], upstreams=[(UPSTREAM, 53)], netns=path, timeout=1.5,
                               max_inflight=2)
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(lambda task_status: server.serve(task_status=task_status))
                replies: list[int] = []

                async def one(i: int) -> None:
                    replies.append(w.parse_reply(await ask(path, "127.0.0.53", f"n{i}.test")).rcode)

                async with anyio.create_task_group() as inner:
                    for i in range(5):
                        inner.start_soon(one, i)
                assert replies.count(w.RCODE_SERVFAIL) == 5 and server.stats.refused_busy == 3
                tg.cancel_scope.cancel()
        finally:
            sink.close()


async def test_a_bug_while_answering_costs_one_servfail_not_the_server() -> None:
    server = HostDNSServer(listen=[("127.0.0.53", 53)], names={"bad": ["not-an-address"]})
    query = w.make_query("bad", w.TYPE_A, id_=5)
    reply = await server.answer(query, tcp=False)
    assert reply is not None and w.parse_reply(reply).rcode == w.RCODE_SERVFAIL
    assert server.stats.internal_errors == 1


@needs_netns
async def test_a_taken_port_is_reported_and_resolv_conf_keeps_the_upstreams(tmp_path: Path) -> None:
    with netns("dnsb") as path:
        nsenter(path, "ip", "link", "set", "lo", "up")
        squatter = socket_in(path, socket.AF_INET, socket.SOCK_DGRAM)
        squatter.bind(("127.0.0.53", 53))
        try:
            state = InMemoryState()
            await state.create(Resource.new(ResolverSpecSpec(dns_servers=[UPSTREAM]), "resolvers",
                                            namespace=NAMESPACE))
            await put_config(state, CONFIG % "false")
            runtime = Runtime(state, backoff_initial=0.01)
            for c in (HostDNSConfigController(), HostDNSController(path, retry_interval=0.2),
                      EtcFilesController(str(tmp_path))):
                runtime.register(c)
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run)
                got = await assert_resources(state, HOST_DNS_STATUSES, ["config"], lambda r: bool(r.spec.error))
                assert got["config"].spec.listening == [] and "listen 127.0.0.53:53" in got["config"].spec.error
                await eventually(lambda: (tmp_path / "resolv.conf").exists(), "resolv.conf written")
                assert f"nameserver {UPSTREAM}" in (tmp_path / "resolv.conf").read_text()
                squatter.close()  # the port is free again: the retry binds it
                await assert_resources(state, HOST_DNS_STATUSES, ["config"],
                                       lambda r: r.spec.listening == ["127.0.0.53:53"] and not r.spec.error)
                await eventually(lambda: "nameserver 127.0.0.53" in (tmp_path / "resolv.conf").read_text(),
                                 "resolv.conf names the cache once it listens")
                tg.cancel_scope.cancel()
        finally:
            squatter.close()


# -- the controllers -------------------------------------------------------------------------------

CONFIG = """\
version: v1alpha1
machine:
  type: worker
  features:
    hostDNS: {enabled: true, forwardKubeDNSToHost: %s, resolveMemberNames: true}
cluster: {}
"""


@needs_netns
async def test_the_controllers_converge_on_the_kernel(tmp_path: Path) -> None:
    with netns("dnsc") as path:
        nsenter(path, "ip", "link", "set", "lo", "up")
        with dnsmasq(path, "svc.example.test/192.0.2.44", "ready.test/192.0.2.1"):
            await _upstream_ready(path)
            await _converge(path, tmp_path)


async def _converge(path: str, tmp_path: Path) -> None:
    state = InMemoryState()
    await state.create(Resource.new(ResolverSpecSpec(dns_servers=[UPSTREAM], search_domains=["lab.test"]),
                                    "resolvers", namespace=NAMESPACE))
    await state.create(Resource.new(MemberSpec(hostname="worker-7", addresses=["10.5.0.7/24"]), "worker-7",
                                    namespace=CLUSTER_NS))
    await put_config(state, CONFIG % "true")
    runtime = Runtime(state, backoff_initial=0.01)
    for c in (HostDNSConfigController(), HostDNSController(path, status_interval=0.2),
              EtcFilesController(str(tmp_path))):
        runtime.register(c)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        got = await assert_resources(state, HOST_DNS_STATUSES, ["config"],
                                     lambda r: r.spec.listening == ["127.0.0.53:53", "169.254.116.108:53"])
        assert got["config"].spec.upstreams == [f"{UPSTREAM}:53"]
        assert ("lo", "169.254.116.108/32") in addresses(path)
        await eventually(lambda: (tmp_path / "resolv.conf").read_text().splitlines()[1:]
                         == ["nameserver 127.0.0.53", "search lab.test"], "resolv.conf names the cache")
        # the upstreams stay in resolv.conf.upstream (the kubelet's resolvConf for pods)
        assert f"nameserver {UPSTREAM}" in (tmp_path / "resolv.conf.upstream").read_text()
        # pods' CoreDNS asks 169.254.116.108: forwarded upstream
        r = await ask(path, "169.254.116.108", "svc.example.test")
        assert w.answer_addresses(r) == ["192.0.2.44"]
        assert w.answer_addresses(await ask(path, "127.0.0.53", "worker-7")) == ["10.5.0.7"]
        await assert_resources(state, HOST_DNS_STATUSES, ["config"],
                               lambda r: r.spec.queries >= 2 and r.spec.healthy_upstreams == [f"{UPSTREAM}:53"])
        # forwardKubeDNSToHost off: the kube-dns address goes away, 127.0.0.53 stays
        await put_config(state, CONFIG % "false")
        await assert_resources(state, HOST_DNS_STATUSES, ["config"],
                               lambda r: r.spec.listening == ["127.0.0.53:53"])
        await eventually(lambda: ("lo", "169.254.116.108/32") not in addresses(path), "kube-dns address removed")
        # host DNS off: no listener, resolv.conf back to the upstream resolvers
        await put_config(state, CONFIG.replace("{enabled: true, forwardKubeDNSToHost: %s, resolveMemberNames: true}",
                                               "{enabled: false}"))
        await assert_no_resource(state, HOST_DNS_CONFIGS.pointer("config"))
        await assert_no_resource(state, HOST_DNS_STATUSES.pointer("config"))
        await eventually(lambda: f"nameserver {UPSTREAM}" in (tmp_path / "resolv.conf").read_text(),
                         "resolv.conf names the upstream again")
        with pytest.raises(OSError):
            await ask(path, "127.0.0.53", "svc.example.test", timeout=0.3)
        tg.cancel_scope.cancel()
