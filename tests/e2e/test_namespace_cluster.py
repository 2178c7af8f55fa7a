"""A whole local cluster through kosctl, as a person uses it: ``kosctl cluster create`` (nodes
are machined as PID 1 in namespaces, configs applied over the maintenance API, etcd
bootstrapped, health waited for), resources read and watched through the forwarded
endpoint, a config change seen live, a bad config refused, a worker rebooted, and
``kosctl cluster destroy`` leaving nothing behind (namespaces, processes, mounts, files).

One test runs 1 control plane + 1 worker (watch, apply, reboot); the other 3 control planes +
1 worker (etcd of three, members, reset of a control plane)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from kos.platform.provision.namespaces import ClusterState, NodeState, node_pid1
from kos.platform.provision.network import NETNS_DIR
from tests.support.cluster import KosCluster

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


Cluster = KosCluster


def _create(tmp_path: Path, controlplanes: int, workers: int) -> Cluster:
    # no Kubernetes here (tests/e2e/test_kubernetes.py runs it): the kubelet waits for its binary
    env = dict(os.environ, KOSCONFIG=str(tmp_path / "kosconfig"), PYTHONPATH=os.pathsep.join(sys.path),
               KOS_K8S_DIR=str(tmp_path / "no-kubernetes"))
    c = Cluster("e" + uuid.uuid4().hex[:6], tmp_path / "clusters", env)
    proc = c.kosctl("cluster", "create", "--name", c.name, "--state-root", str(c.root),
                    "--controlplanes", str(controlplanes), "--workers", str(workers), "--wait-timeout", "150",
                    check=False, timeout=300)
    if proc.returncode != 0:
        text = c.consoles(40)
        c.kosctl("cluster", "destroy", "--name", c.name, "--state-root", str(c.root), check=False)
        raise AssertionError(f"cluster create failed:\n{proc.stdout}\n{proc.stderr}\n{text}")
    assert "waiting for etcd members to be the control-plane nodes: OK" in proc.stdout
    assert f"cluster {c.name!r} is up" in proc.stdout
    return c


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _destroy_leaves_nothing(c: Cluster, node_processes: Sequence[int] = ()) -> None:
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    cgroup_dirs = [d for n in ClusterState.load(c.dir).nodes for d in n.cgroups]
    assert cgroup_dirs
    c.kosctl("cluster", "destroy", "--name", c.name, "--state-root", str(c.root))
    assert [p for p in node_processes if _alive(p)] == []
    assert [d for d in cgroup_dirs if Path(d).exists()] == []
    assert not c.dir.exists()
    assert not [p.name for p in NETNS_DIR.glob(f"kos-{c.name}*")]
    assert str(c.dir) not in Path("/proc/self/mountinfo").read_text()
    leftovers = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (str(c.dir) in cmd or f"kos-{c.name}" in cmd) and state != "Z":
            leftovers.append(cmd.replace("\0", " "))
    assert not leftovers
    ctx = yaml.safe_load((Path(c.env["KOSCONFIG"])).read_text()) or {}
    assert c.name not in (ctx.get("contexts") or {})


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = _create(tmp_path, 1, 1)
    try:
        yield c
    finally:
        if c.dir.exists():
            c.kosctl("cluster", "destroy", "--name", c.name, "--state-root", str(c.root), check=False)


def _process_in_node(node: NodeState, comm: str) -> int:
    pid1 = node_pid1(node)
    assert pid1 is not None
    todo, seen = [pid1], []
    while todo:
        p = todo.pop()
        seen.append(p)
        try:
            todo += [int(x) for x in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    for p in seen:
        try:
            if Path(f"/proc/{p}/comm").read_text().strip() == comm:
                return p
        except OSError:
            continue
    raise AssertionError(f"no {comm} process in node {node.name}")


def _follow(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)


def _wait_line(lines: queue.Queue[str], needle: str, timeout: float) -> float:
    start = time.monotonic()
    while True:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            raise AssertionError(f"{needle!r} not seen within {timeout} s")
        try:
            if needle in lines.get(timeout=left):
                return time.monotonic() - start
        except queue.Empty:
            continue


def test_cluster_create_watch_apply_reboot_destroy(cluster: Cluster) -> None:
    c = cluster
    cp, w = "10.5.0.2", "10.5.0.3"
    # resources of both nodes through the control plane's forwarded endpoint
    out = c.ctl("-n", f"{cp},{w}", "get", "machinestatus").stdout
    rows = [ln.split() for ln in out.splitlines()[1:]]
    assert {r[0] for r in rows} == {cp, w} and all("running" in r for r in rows), out
    members = c.ctl("etcd", "members").stdout
    assert "cp-1" in members and "https://10.5.0.2:2380" in members, members
    # cluster membership (discovery through the control plane's registry), seen from both nodes
    for node in (cp, w):
        deadline = time.monotonic() + 30
        while True:
            out = c.ctl("-n", node, "get", "members").stdout
            rows = {ln.split()[3]: ln for ln in out.splitlines()[1:]}
            complete = set(rows) == {"cp-1", "w-1"} and "[]" not in out
            if complete or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert set(rows) == {"cp-1", "w-1"}, out
        # the node's address first (flannel's 10.244.x.0 may follow once Kubernetes runs)
        assert '["10.5.0.2"' in rows["cp-1"] and "controlplane" in rows["cp-1"]
        assert '["10.5.0.3"' in rows["w-1"] and "worker" in rows["w-1"]
    health = c.ctl("health", "--wait-timeout", "30")  # nodes discovered from Members
    assert f"discovered nodes: control planes {cp}; workers {w}" in health.stdout
    assert "all nodes to be ready: OK" in health.stdout

    # an idle node hardly wakes: machined of each node <= 1 % of a core (bench/idle_cpu.py)
    state = ClusterState.load(c.dir)
    pids = [node_pid1(n) for n in state.nodes]
    before = [_cpu_seconds(p) for p in pids if p]
    time.sleep(20)
    idle = [100 * (_cpu_seconds(p) - b) / 20 for p, b in zip([p for p in pids if p], before, strict=True)]
    assert len(idle) == 2 and max(idle) <= 1.0, idle

    # kill the control plane's etcd: the supervisor restarts it and the cluster is healthy again
    state = ClusterState.load(c.dir)
    etcd = _process_in_node(state.node("cp-1"), "etcd")
    os.kill(etcd, signal.SIGKILL)
    c.ctl("health", "--control-plane-nodes", cp, "--worker-nodes", w, "--wait-timeout", "60")
    assert _process_in_node(state.node("cp-1"), "etcd") != etcd

    # a live change: kosctl get -w sees the hostname applied by kosctl apply-config
    watch = subprocess.Popen(
        [sys.executable, "-m", "kos.apis.kosctl.main", "--context", c.name, "-n", w, "get", "hostnamestatus",
         "-w", "-o", "yaml"], env=c.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_follow, args=(watch, lines), daemon=True).start()
    try:
        _wait_line(lines, "hostname: w-1", 20)
        config = yaml.safe_load_all((c.dir / "w-1" / "config.yaml").read_text())
        docs = list(config)
        docs[0]["machine"]["network"]["hostname"] = "w-renamed"
        changed = c.dir / "w-renamed.yaml"
        changed.write_text(yaml.safe_dump_all(docs))
        c.ctl("-n", w, "apply-config", "-f", str(changed), "--mode", "no-reboot")
        seen_after = _wait_line(lines, "hostname: w-renamed", 10)
        assert seen_after < 10
    finally:
        watch.terminate()
        watch.wait(10)

    # bad input: refused with the field named, the node unchanged
    before = c.ctl("-n", w, "get", "machineconfig", "v1alpha1", "-o", "yaml").stdout
    bad = c.dir / "bad.yaml"
    docs[0]["machine"]["type"] = "dictator"
    bad.write_text(yaml.safe_dump_all(docs))
    refused = c.ctl("-n", w, "apply-config", "-f", str(bad), check=False)
    assert refused.returncode != 0 and "INVALID_ARGUMENT" in refused.stderr and "machine.type" in refused.stderr
    assert c.ctl("-n", w, "get", "machineconfig", "v1alpha1", "-o", "yaml").stdout == before

    # reboot the worker: it comes back with the same config and identity
    machine_id = (c.dir / "w-1" / "state" / "machine-id").read_text()
    c.ctl("-n", w, "reboot", "--wait", "--timeout", "90")
    assert "w-renamed" in c.ctl("-n", w, "get", "hostnamestatus").stdout
    assert (c.dir / "w-1" / "state" / "machine-id").read_text() == machine_id
    show = c.kosctl("cluster", "show", "--name", c.name, "--state-root", str(c.root)).stdout
    w_row = next(ln for ln in show.splitlines() if ln.startswith("w-1"))
    assert w_row.split()[4:6] == ["running", "2"], show

    # machined's own log through the API, like a service's
    own = c.ctl("-n", w, "logs", "machined", "--tail", "5").stdout.splitlines()
    assert len(own) == 5 and all(line.startswith("{") and line.endswith("}") for line in own), own
    everything = c.ctl("-n", w, "logs", "machined").stdout.splitlines()
    assert len(everything) > 5 and any('"controller": "network.HostnameController"' in line for line in everything)

    # the worker's machined dies (a crash): its keeper starts the node again, with its state
    pid1 = node_pid1(state.node("w-1"))
    assert pid1 is not None
    os.kill(pid1, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while True:
        seen = c.ctl("-n", w, "get", "hostnamestatus", check=False)
        if "w-renamed" in seen.stdout or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert "w-renamed" in seen.stdout, seen.stderr + c.consoles(40)
    assert node_pid1(state.node("w-1")) not in (None, pid1)
    show = c.kosctl("cluster", "show", "--name", c.name, "--state-root", str(c.root)).stdout
    w_row = next(ln for ln in show.splitlines() if ln.startswith("w-1"))
    assert w_row.split()[4:6] == ["running", "3"], show
    assert "port forwarder: running (pid " in show

    # the keepers die first: destroy still finds machined, etcd and containerd of every node
    node_processes = [_process_in_node(n, comm) for n in state.nodes for comm in ("containerd",)]
    node_processes += [_process_in_node(state.node("cp-1"), "etcd")]
    node_processes += [p for p in (node_pid1(n) for n in state.nodes) if p is not None]
    for n in state.nodes:
        os.kill(n.pid, signal.SIGKILL)
    _destroy_leaves_nothing(c, node_processes)


def test_three_control_planes_form_etcd_and_reset_leaves(tmp_path: Path) -> None:
    c = _create(tmp_path, 3, 1)
    try:
        members = c.ctl("etcd", "members").stdout
        assert all(f"cp-{i}" in members for i in (1, 2, 3)), members
        assert len(members.strip().splitlines()) == 1 + 3, members
        cps = "10.5.0.2,10.5.0.3,10.5.0.4"
        # every node is a cluster member with its address, seen from the host
        deadline = time.monotonic() + 30
        while True:
            out = c.ctl("get", "members").stdout
            rows = {ln.split()[3]: ln for ln in out.splitlines()[1:]}
            if set(rows) == {"cp-1", "cp-2", "cp-3", "w-1"} or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert set(rows) == {"cp-1", "cp-2", "cp-3", "w-1"}, out
        for name, addr in (("cp-1", "10.5.0.2"), ("cp-2", "10.5.0.3"), ("cp-3", "10.5.0.4"), ("w-1", "10.5.0.5")):
            assert f'["{addr}"]' in rows[name], rows[name]
        # addresses of all four nodes in one call
        out = c.ctl("-n", f"{cps},10.5.0.5", "get", "addresses").stdout
        for addr in ("10.5.0.2", "10.5.0.3", "10.5.0.4", "10.5.0.5"):
            assert f"{addr}/24" in out, out
        # reset a control plane: it leaves etcd, the cluster stays healthy with two
        c.ctl("-n", "10.5.0.4", "reset", "--wait", "--timeout", "90")
        members = c.ctl("etcd", "members").stdout
        assert "cp-3" not in members and "cp-1" in members and "cp-2" in members, members
        health = c.ctl("health", "--control-plane-nodes", "10.5.0.2,10.5.0.3", "--wait-timeout", "60",
                       check=False)
        assert health.returncode == 0, health.stdout + health.stderr + cps
        _destroy_leaves_nothing(c)
    finally:
        if c.dir.exists():
            c.kosctl("cluster", "destroy", "--name", c.name, "--state-root", str(c.root), check=False)
