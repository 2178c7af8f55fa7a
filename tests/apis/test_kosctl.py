"""kosctl as a subprocess against two real ``machined`` processes sharing one CA: get in every
output format, aliases, label selectors, watch streams, apply-config, version, errors; and
node forwarding (``-e node1 -n node2``) for unary calls, streams, machine-response tagging,
and the caller's roles."""

from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import AccessDeniedError, APIError, ClientConfig, Connection, GrpcState
from kos.apis.gen.kos import machine as pb
from kos.apis.server.nodepki import NodePKI
from kos.resources.core import EventType, Kind, NamespaceSpec, NotFoundError, Pointer, Resource

from .nodeproc import kosctl, machined

NS_TYPE = "Namespaces.meta.cosi.dev"
USER = Kind("user", NS_TYPE)


@dataclass
class Cluster:
    ep1: str
    ep2: str
    kosconfig: Path
    reader: Path
    sd1: Path

    def conn(self, endpoint: str | None = None) -> Connection:
        _, ctx = ClientConfig.load(self.kosconfig).current()
        return Connection.from_context(ctx, endpoint=endpoint or self.ep1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("cluster")
    sd1, sd2 = base / "n1", base / "n2"
    args = ("--no-controllers", "--writable-namespace", "user")
    with machined(sd1, *args) as ep1:
        (sd2 / "pki").mkdir(parents=True)
        for f in ("ca.crt", "ca.key"):  # one CA: the nodes trust each other
            shutil.copy(sd1 / "pki" / f, sd2 / "pki" / f)
        with machined(sd2, *args) as ep2:
            pki = NodePKI.load_or_create(sd1 / "pki", ["127.0.0.1"])
            reader = base / "reader.kosconfig"
            pki.client_config("reader", [ep1], [auth.READER], 3600).save(reader)
            yield Cluster(ep1, ep2, sd1 / "kosconfig", reader, sd1)


def k(c: Cluster, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    return kosctl(*args, kosconfig=config or c.kosconfig)


def _ns(id: str, labels: dict[str, str] | None = None) -> Resource[NamespaceSpec]:
    return Resource.new(NamespaceSpec(description=f"about {id}"), id, namespace="user", labels=labels or {})


# -- get ----------------------------------------------------------------------------------------


def test_get_table_with_print_columns_and_aliases(cluster: Cluster) -> None:
    r = k(cluster, "get", "rd")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION", "ALIASES"]
    row = next(line for line in lines if " namespaces.meta.cosi.dev " in line)
    assert row.split()[:5] == [cluster.ep1, "meta", "ResourceDefinition", "namespaces.meta.cosi.dev", "1"]
    assert '["ns","namespace"]' in row
    for alias in ("ns", "Namespaces", "namespace", "namespaces.meta.cosi.dev"):
        r = k(cluster, "get", alias, "meta")
        assert r.returncode == 0 and r.stdout.splitlines()[1].split()[:5] == [
            cluster.ep1, "meta", "Namespace", "meta", "1"], (alias, r.stdout, r.stderr)


def test_get_yaml_json_and_jsonpath(cluster: Cluster) -> None:
    r = k(cluster, "get", "ns", "meta", "-o", "yaml")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(
        f"node: {cluster.ep1}\nmetadata:\n    namespace: meta\n    type: Namespaces.meta.cosi.dev\n    id: meta\n"
        "    version: 1\n    owner: meta\n    phase: running\n"
    )
    assert "\nspec:\n    description: Metadata namespace" in r.stdout
    r = k(cluster, "get", "ns", "-o", "yaml")
    assert r.stdout.count("---\n") == r.stdout.count("node: ") - 1 >= 2
    doc = json.loads(k(cluster, "get", "ns", "meta", "-o", "json").stdout)
    assert doc["node"] == cluster.ep1 and doc["metadata"]["id"] == "meta" and doc["metadata"]["version"] == 1
    assert doc["metadata"]["created"].endswith("Z") and doc["spec"]["description"].startswith("Metadata")
    r = k(cluster, "get", "ns", "-o", "jsonpath={.metadata.id}")
    assert "meta" in r.stdout.split() and "secrets" in r.stdout.split()


def test_get_label_selectors(cluster: Cluster) -> None:
    import anyio

    async def setup() -> None:
        async with cluster.conn() as conn:
            st = GrpcState(conn)
            await st.create(_ns("sel-a", {"env": "prod", "size": "10"}))
            await st.create(_ns("sel-b", {"env": "dev", "size": "2Ki"}))
            await st.create(_ns("sel-c"))

    anyio.run(setup)

    def ids(*sel: str) -> list[str]:
        r = k(cluster, "get", "ns", "--namespace", "user", *[x for s in sel for x in ("-l", s)], "-o",
              "jsonpath={.metadata.id}")
        assert r.returncode == 0, r.stderr
        return sorted(x for x in r.stdout.split() if x.startswith("sel-"))

    assert ids("env=prod") == ["sel-a"]
    assert ids("env!=prod") == ["sel-b", "sel-c"]  # as in Kubernetes: no label is "not prod"
    assert ids("env") == ["sel-a", "sel-b"]
    assert ids("!env") == ["sel-c"]
    assert ids("env in (dev, qa)") == ["sel-b"]
    assert ids("env notin (dev)") == ["sel-a", "sel-c"]
    assert ids("size>100") == ["sel-b"]
    assert ids("env=prod,size<100") == ["sel-a"]
    bad = k(cluster, "get", "ns", "--namespace", "user", "-l", "size<lots")
    assert bad.returncode == 1 and "--selector 'size<lots'" in bad.stderr and "not a number" in bad.stderr


def test_get_errors_are_one_line(cluster: Cluster) -> None:
    r = k(cluster, "get", "bogus")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (f"error: {cluster.ep1}: NOT_FOUND: resource type 'bogus' not found "
                        "(list them with 'kosctl get rd')\n")
    r = k(cluster, "get", "ns", "missing")
    assert r.returncode == 1 and r.stderr.startswith(f"error: {cluster.ep1}: NOT_FOUND: ")
    r = k(cluster, "get", "osrootsecrets", config=cluster.reader)
    assert r.returncode == 1
    assert r.stderr.startswith(f"error: {cluster.ep1}: PERMISSION_DENIED: access denied: OSRootSecrets")
    assert "Traceback" not in r.stderr
    r = k(cluster, "get", "ns", "-o", "xml")
    assert r.returncode == 1 and "--output 'xml'" in r.stderr
    r = kosctl("get", "ns", kosconfig=cluster.sd1 / "nope")
    assert r.returncode == 1 and "no current context" in r.stderr
    r = k(cluster, "-e", "127.0.0.1:1", "get", "ns")
    assert r.returncode == 1 and "UNAVAILABLE" in r.stderr
    r = k(cluster, "-e", f"127.0.0.1:1,{cluster.ep1}", "get", "ns", "meta")  # failover to the next endpoint
    assert r.returncode == 0 and r.stdout.splitlines()[1].split()[0] == cluster.ep1, r.stderr


# -- watch --------------------------------------------------------------------------------------


class Lines:
    """Reads a subprocess's stdout lines on a thread so that the test can wait with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.q.put(line.rstrip("\n"))

    def until(self, pred: object, timeout: float = 20) -> str:
        seen = []
        while True:
            try:
                line = self.q.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no matching line; saw {seen}") from None
            seen.append(line)
            if pred(line):  # type: ignore[operator]
                return line


def _watch(c: Cluster, *args: str) -> subprocess.Popen[str]:
    import os

    env = dict(os.environ, KOSCONFIG=str(c.kosconfig))
    return subprocess.Popen([sys.executable, "-m", "kos.apis.kosctl.main", "get", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_watch_table_and_yaml_stream_changes(cluster: Cluster) -> None:
    import anyio

    async def seed() -> None:  # so that the YAML watch prints something once established
        async with cluster.conn() as conn:
            await GrpcState(conn).modify(_ns("seed"), lambda r: None)

    anyio.run(seed)
    table = _watch(cluster, "ns", "--namespace", "user", "-w")
    yml = _watch(cluster, "ns", "--namespace", "user", "-o", "yaml", "-w")
    try:
        t, y = Lines(table), Lines(yml)
        header = t.until(lambda s: s.startswith("*"))
        assert header.split() == ["*", "NODE", "NAMESPACE", "TYPE", "ID", "VERSION"]

        async def change(what: str) -> None:
            async with cluster.conn() as conn:
                st = GrpcState(conn)
                if what == "create":
                    await st.create(_ns("w1"))
                elif what == "update":
                    await st.update_with_conflicts(_ns("w1").pointer, lambda r: setattr(r.spec, "description", "2"))
                else:
                    await st.destroy(_ns("w1").pointer)

        y.until(lambda s: s.startswith("node: "))  # the bootstrap (seed) printed: the watch is established
        anyio.run(change, "create")
        line = t.until(lambda s: " w1 " in s)
        assert line.split()[0] == "+" and line.split()[1:] == [cluster.ep1, "user", "Namespace", "w1", "1"]
        anyio.run(change, "update")
        line = t.until(lambda s: " w1 " in s)
        assert line.startswith(" ") and line.split()[-1] == "2"
        anyio.run(change, "destroy")
        line = t.until(lambda s: " w1 " in s)
        assert line.startswith("-")
        y.until(lambda s: s == "event: created")
        y.until(lambda s: s == "event: updated")
        y.until(lambda s: s == "event: destroyed")
    finally:
        for p in (table, yml):
            p.terminate()
            p.wait(10)


# -- apply-config, version, services, config ----------------------------------------------------


def test_apply_config_dry_run_then_real(cluster: Cluster, tmp_path: Path) -> None:
    gen = kosctl("gen", "config", "demo", "https://127.0.0.1:6443", "-o", str(tmp_path))
    assert gen.returncode == 0, gen.stderr
    cfg = tmp_path / "controlplane.yaml"
    r = k(cluster, "apply-config", "-f", str(cfg), "--dry-run")
    assert r.returncode == 0, r.stderr
    # the answer and the diff on stdout; fields this node does not act on are counted there and
    # named one per warning line on stderr
    m = re.search(rf"^{re.escape(cluster.ep1)}: Dry run: nothing applied"
                  r"(?:; (\d+) field\(s\) set but not acted on here \(see warnings\))?\n--- current\n\+\+\+ new\n",
                  r.stdout, re.M)
    assert m, r.stdout
    assert "warning:" not in r.stdout
    assert r.stderr.count(f"{cluster.ep1}: warning: ") >= int(m.group(1) or 0)
    assert "+version: v1alpha1" in r.stdout and "key: '******'" in r.stdout  # secrets redacted in the diff
    assert not (cluster.sd1 / "config.yaml").exists()
    # --config-patch: patched here before sending (the diff shows the patched value); a patch that
    # does not apply is named and nothing is sent
    patch = tmp_path / "patch.yaml"
    patch.write_text("machine:\n  network:\n    hostname: patched-by-file\n")
    r = k(cluster, "apply-config", "-f", str(cfg), "--dry-run", "-p", f"@{patch}",
          "--config-patch", '{"machine": {"env": {"KOS_PATCHED": "inline"}}}')
    assert r.returncode == 0, r.stderr
    assert "+    hostname: patched-by-file" in r.stdout and "KOS_PATCHED: inline" in r.stdout, r.stdout
    r = k(cluster, "apply-config", "-f", str(cfg), "-p", '[{"op": "remove", "path": "/machine/nope"}]')
    assert r.returncode == 1 and "nope" in r.stderr and "error:" in r.stderr, r.stderr
    r = k(cluster, "apply-config", "-f", str(cfg), "-p", "@" + str(tmp_path / "absent.yaml"))
    assert r.returncode == 1 and "absent.yaml" in r.stderr, r.stderr
    assert not (cluster.sd1 / "config.yaml").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: v1alpha1\nmachine: [\n")
    r = k(cluster, "apply-config", "-f", str(bad))
    assert r.returncode == 1 and f"error: {cluster.ep1}: INVALID_ARGUMENT: " in r.stderr
    assert not (cluster.sd1 / "config.yaml").exists()
    r = k(cluster, "apply-config", "-f", str(cfg), "--mode", "no-reboot")
    assert r.returncode == 0, r.stderr
    assert f"{cluster.ep1}: Applied configuration" in r.stdout
    assert (cluster.sd1 / "config.yaml").read_bytes() == cfg.read_bytes()
    r = k(cluster, "apply-config", "-f", str(cfg), "--mode", "sideways")
    assert r.returncode == 1 and "--mode 'sideways'" in r.stderr
    r = k(cluster, "apply-config", "-f", str(cfg), "--timeout", "1m")
    assert r.returncode == 1 and "--timeout is only meaningful with --mode try" in r.stderr


def test_version_memory_processes_services_events(cluster: Cluster) -> None:
    r = k(cluster, "version")
    assert r.returncode == 0 and "Client:" in r.stdout and f"NODE:        {cluster.ep1}" in r.stdout
    r = k(cluster, "memory")
    assert r.returncode == 0 and r.stdout.split()[:7] == ["NODE", "TOTAL", "USED", "FREE", "BUFFERS", "CACHE",
                                                          "AVAILABLE"]
    assert int(r.stdout.splitlines()[1].split()[1]) > 0
    r = k(cluster, "processes", "--sort", "rss")
    assert r.returncode == 0 and "kos.machined.main" in r.stdout
    r = k(cluster, "services")
    assert r.returncode == 0 and r.stdout.split()[:3] == ["NODE", "SERVICE", "STATE"]
    r = k(cluster, "logs", "nope")
    assert r.returncode == 1 and r.stderr.startswith(f"error: {cluster.ep1}: NOT_FOUND: service 'nope'")
    r = k(cluster, "events", "--tail", "-1", "--duration", "1s")
    assert r.returncode == 0 and r.stdout.split()[:5] == ["NODE", "ID", "TYPE", "ACTOR", "PAYLOAD"]
    assert "machined" in r.stdout or "api" in r.stdout


def test_config_commands_and_get_client_config(cluster: Cluster, tmp_path: Path) -> None:
    cfg = tmp_path / "kosconfig"
    shutil.copy(cluster.kosconfig, cfg)
    r = kosctl("config", "info", kosconfig=cfg)
    assert r.returncode == 0 and "os:admin" in r.stdout and cluster.ep1 in r.stdout
    out = tmp_path / "reader"
    r = kosctl("get-client-config", str(out), "--roles", "os:reader", "--crt-ttl", "1h", kosconfig=cfg)
    assert r.returncode == 0, r.stderr
    r = kosctl("config", "merge", str(out), kosconfig=cfg)
    assert r.returncode == 0 and "kos-1" in r.stdout
    r = kosctl("config", "contexts", kosconfig=cfg)
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert ["kos", cluster.ep1] in [row[-2:] for row in rows] and ["*", "kos-1", cluster.ep1] in rows
    r = kosctl("config", "info", kosconfig=cfg)
    assert "os:reader" in r.stdout
    r = kosctl("get", "osrootsecrets", kosconfig=cfg)  # now a reader
    assert r.returncode == 1 and "PERMISSION_DENIED" in r.stderr
    assert kosctl("config", "context", "kos", kosconfig=cfg).returncode == 0
    assert kosctl("config", "node", cluster.ep2, kosconfig=cfg).returncode == 0
    r = kosctl("get", "ns", "meta", kosconfig=cfg)  # default node from the context: forwarded
    assert r.returncode == 0 and r.stdout.splitlines()[1].split()[0] == cluster.ep2
    r = kosctl("config", "context", "nope", kosconfig=cfg)
    assert r.returncode == 1 and "context 'nope' not found" in r.stderr
    r = kosctl("config", "endpoint", "host:99999", kosconfig=cfg)
    assert r.returncode == 1 and "port must be a number" in r.stderr


# -- forwarding ---------------------------------------------------------------------------------


def test_forwarding_through_one_endpoint(cluster: Cluster) -> None:
    import anyio

    async def main() -> None:
        async with cluster.conn(cluster.ep2) as c2, cluster.conn() as c1:
            await GrpcState(c2).create(_ns("only-on-2"))
            via = GrpcState(c1, node=cluster.ep2)
            assert (await via.get(Pointer("user", NS_TYPE, "only-on-2"))).spec.description == "about only-on-2"
            with pytest.raises(NotFoundError):
                await GrpcState(c1).get(Pointer("user", NS_TYPE, "only-on-2"))
            # streams are forwarded too: a watch through node 1 sees node 2's changes
            async with via.watch_kind_aggregated(USER, bootstrap_contents=True) as batches:
                it = aiter(batches)
                with anyio.fail_after(10):
                    first = await anext(it)
                    assert "only-on-2" in [e.resource.id for e in first if e.resource and e.type == EventType.CREATED]
                    await GrpcState(c2).destroy(Pointer("user", NS_TYPE, "only-on-2"))
                    batch = await anext(it)
                    assert batch[0].type == EventType.DESTROYED
            # machine responses come back tagged with the node that answered
            data = await c1.unary(auth.MACHINE + "Version", b"", node=cluster.ep2)
            assert pb.VersionResponse().parse(data).metadata.hostname == cluster.ep2
            with pytest.raises(APIError) as info:
                await c1.unary(auth.MACHINE + "Version", b"", node="127.0.0.1:1")
            assert info.value.status == Status.UNAVAILABLE and "node 127.0.0.1:1" in info.value.message
        # the caller's roles travel with the forwarded call
        _, ctx = ClientConfig.load(cluster.reader).current()
        async with Connection.from_context(ctx) as rc:
            with pytest.raises(AccessDeniedError):
                await GrpcState(rc, node=cluster.ep2).create(_ns("denied"))
            with pytest.raises(AccessDeniedError, match="sensitive"):
                await GrpcState(rc, node=cluster.ep2).list(Kind("secrets", "OSRootSecrets.secrets.kos.dev"))

    anyio.run(main)


def test_kosctl_fans_out_over_nodes(cluster: Cluster) -> None:
    r = k(cluster, "-n", f"{cluster.ep2},{cluster.ep1}", "get", "ns", "meta")
    assert r.returncode == 0, r.stderr
    nodes = [line.split()[0] for line in r.stdout.splitlines()[1:]]
    assert nodes == [cluster.ep2, cluster.ep1]  # in the order named, whichever answered first
    r = k(cluster, "-n", f"{cluster.ep1},{cluster.ep2}", "get", "ns", "-o", "yaml")
    docs = r.stdout.split("---\n")
    firsts = [d.splitlines()[0] for d in docs]
    assert firsts == [f"node: {cluster.ep1}"] * (len(docs) // 2) + [f"node: {cluster.ep2}"] * (len(docs) // 2)
    r = k(cluster, "version", "-n", f"{cluster.ep2},127.0.0.1:1")  # -n after the command works too
    assert r.returncode == 1
    assert f"NODE:        {cluster.ep2}" in r.stdout
    assert "error: 127.0.0.1:1: UNAVAILABLE: node 127.0.0.1:1" in r.stderr
