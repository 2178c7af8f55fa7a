"""The namespace provisioner on the real kernel: nodes are PID 1 in their own namespaces,
shell-free read-only roots, reachable from each other over the cluster bridge and from the
host through the forwarder, and destroy leaves nothing behind."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kos.platform.provision.namespaces import NamespaceProvisioner, NodeRequest, ProvisionError, node_pid1
from kos.platform.provision.network import NETNS_DIR

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

# The node's PID 1: report facts about itself to whoever connects on port 50000.
NODE_PROGRAM = r"""
import json, os, signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
peer = sys.argv[1]
SHELLS = ("/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/dash", "/bin/busybox")
def peer_ok():
    try:
        with socket.create_connection((peer, 50000), timeout=2) as s:
            s.sendall(b"-")
            return json.loads(s.makefile().readline())["hostname"]
    except OSError:
        return None
def writable(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return True
    except OSError:
        return False
srv = socket.create_server(("0.0.0.0", 50000))
while True:
    conn, _ = srv.accept()
    with conn:
        facts = {
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "shells": [p for p in SHELLS if os.path.exists(p)],
            "root_writable": writable("/probe"),
            "var_writable": writable("/var/probe"),
            "etcd": os.path.exists("/usr/bin/etcd"),
            "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "platform": os.environ.get("KOS_PLATFORM"),
        }
        if conn.recv(1) == b"p":
            facts["peer"] = peer_ok()
        conn.sendall((json.dumps(facts) + "\n").encode())
"""


def ask(port: int, peer: bool = False, timeout: float = 15.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"p" if peer else b"-")
                line = s.makefile().readline()
                if line:
                    return json.loads(line)  # type: ignore[no-any-return]
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"node on port {port} did not answer within {timeout} s")
        time.sleep(0.1)


@pytest.fixture
def provisioner(tmp_path: Path) -> Iterator[tuple[NamespaceProvisioner, str]]:
    prov = NamespaceProvisioner(tmp_path / "clusters")
    name = "t" + uuid.uuid4().hex[:6]
    yield prov, name
    if prov.exists(name):
        prov.destroy(name, timeout=2)


def test_nodes_are_isolated_pid1_with_shell_free_roots(provisioner: tuple[NamespaceProvisioner, str]) -> None:
    prov, name = provisioner
    nodes = [
        NodeRequest("cp-1", "controlplane", [sys.executable, "-c", NODE_PROGRAM, "10.7.0.3"]),
        NodeRequest("w-1", "worker", [sys.executable, "-c", NODE_PROGRAM, "10.7.0.2"]),
    ]
    state = prov.create(name, nodes, cidr="10.7.0.0/24")
    assert [n.address for n in state.nodes] == ["10.7.0.2/24", "10.7.0.3/24"]
    w = ask(state.node("w-1").host_port, peer=True)
    cp = ask(state.node("cp-1").host_port, peer=True)  # w-1 is up by now
    if w["peer"] is None:
        w = ask(state.node("w-1").host_port, peer=True)
    assert cp["pid"] == 1 and w["pid"] == 1
    assert cp["hostname"] == "cp-1" and w["hostname"] == "w-1"
    assert cp["peer"] == "w-1" and w["peer"] == "cp-1"  # across the cluster bridge
    assert cp["shells"] == [] and cp["root_writable"] is False and cp["var_writable"] is True
    assert cp["processes"] == [1]  # its own PID namespace
    assert cp["platform"] == "container"
    assert cp["etcd"] is Path("/usr/bin/etcd").exists()
    assert (Path(state.dir) / "cp-1" / "var" / "probe").read_text() == "x"
    # a second cluster of the same name is refused clearly
    with pytest.raises(ProvisionError, match="already exists"):
        prov.create(name, nodes)

    pids = [node_pid1(n) for n in state.nodes]
    prov.destroy(name, timeout=3)
    assert not Path(state.dir).exists()
    assert not any(p.name.startswith(f"kos-{name}") for p in NETNS_DIR.glob("*"))
    for pid in pids:
        assert pid is not None and _zombie_or_gone(pid)
    assert not _mounts_mentioning(state.dir)


def test_bad_requests_are_refused_before_anything_is_created(provisioner: tuple[NamespaceProvisioner, str]) -> None:
    prov, name = provisioner
    with pytest.raises(ProvisionError, match="node name 'Bad_Name'"):
        prov.create(name, [NodeRequest("Bad_Name", "worker", ["/bin/true"])])
    with pytest.raises(ProvisionError, match="used twice"):
        prov.create(name, [NodeRequest("a", "worker", ["x"]), NodeRequest("a", "worker", ["x"])])
    with pytest.raises(Exception, match="cidr"):
        prov.create(name, [NodeRequest("a", "worker", ["x"])], cidr="10.0.0.1/33")
    assert not prov.exists(name)
    assert not any(p.name.startswith(f"kos-{name}") for p in NETNS_DIR.glob("*"))


def _zombie_or_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _mounts_mentioning(path: str) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if path in line]


# First boot: mark /var and reboot through reboot(2); second boot: answer; SIGTERM: power off.
REBOOTING_NODE = r"""
import ctypes, os, signal, socket, sys
libc = ctypes.CDLL("libc.so.6", use_errno=True)
signal.signal(signal.SIGTERM, lambda *a: libc.reboot(0x4321FEDC))
boots = int(open("/var/boots").read()) + 1 if os.path.exists("/var/boots") else 1
open("/var/boots", "w").write(str(boots))
if boots == 1:
    libc.reboot(0x01234567)
srv = socket.create_server(("0.0.0.0", 50000))
while True:
    conn, _ = srv.accept()
    with conn:
        conn.recv(1)
        conn.sendall(("{\"pid\": %d, \"boots\": %d}\n" % (os.getpid(), boots)).encode())
"""


def test_a_node_that_reboots_is_started_again_and_power_off_ends_it(
    provisioner: tuple[NamespaceProvisioner, str],
) -> None:
    from kos.platform.provision.namespaces import node_boot_state

    prov, name = provisioner
    state = prov.create(name, [NodeRequest("n-1", "worker", [sys.executable, "-c", REBOOTING_NODE])],
                        cidr="10.7.1.0/24")
    node = state.node("n-1")
    facts = ask(node.host_port)
    assert facts == {"pid": 1, "boots": 2}  # same /var across the reboot, fresh PID namespace
    assert node_boot_state(node)["boots"] == 2
    prov.stop_node(node, timeout=10)  # SIGTERM -> the node powers off -> the keeper ends
    assert node_boot_state(node)["last"] == "poweroff"
    assert node_pid1(node) is None and _zombie_or_gone(node.pid)


# PID 1 answering with its boot count (kept in /var), a child in the node and a child that went
# into a network namespace of its own (like a pod): all must go when the node goes.
FAMILY_NODE = r"""
import ctypes, os, signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
boots = int(open("/var/boots").read()) + 1 if os.path.exists("/var/boots") else 1
open("/var/boots", "w").write(str(boots))
if os.fork() == 0:
    while True:
        time.sleep(60)
if os.fork() == 0:
    ctypes.CDLL("libc.so.6", use_errno=True).unshare(0x40000000)  # CLONE_NEWNET
    while True:
        time.sleep(60)
srv = socket.create_server(("0.0.0.0", 50000))
while True:
    conn, _ = srv.accept()
    with conn:
        conn.recv(1)
        conn.sendall(("{\"pid\": %d, \"boots\": %d}\n" % (os.getpid(), boots)).encode())
"""


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo += [int(x) for x in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return out


def _wait(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout} s")
        time.sleep(0.05)


def test_destroy_finds_every_process_of_a_node_whose_keeper_was_killed(
    provisioner: tuple[NamespaceProvisioner, str],
) -> None:
    import signal

    prov, name = provisioner
    state = prov.create(name, [NodeRequest("n-1", "worker", [sys.executable, "-c", FAMILY_NODE]),
                               NodeRequest("n-2", "worker", [sys.executable, "-c", FAMILY_NODE])],
                        cidr="10.7.2.0/24")
    processes = []
    for node in state.nodes:
        assert ask(node.host_port)["pid"] == 1
        pid1 = node_pid1(node)
        assert pid1 is not None
        _wait(lambda pid1=pid1: len(_tree(pid1)) == 3, 10, "the node's children")
        processes += _tree(pid1)
    recorded = prov.load(name)
    cgroup_dirs = [d for n in recorded.nodes for d in n.cgroups]
    assert cgroup_dirs and all(Path(d).is_dir() for d in cgroup_dirs)
    for node in state.nodes:  # the keepers die first: nothing records the nodes' PIDs any more
        os.kill(node.pid, signal.SIGKILL)
        _wait(lambda node=node: _zombie_or_gone(node.pid), 5, "the keeper's end")
        os.waitpid(node.pid, 0)
    assert all(not _zombie_or_gone(p) for p in processes)  # the nodes run on without their keepers
    prov.destroy(name, timeout=5)
    assert [p for p in processes if not _zombie_or_gone(p)] == []
    assert not any(p.name.startswith(f"kos-{name}") for p in NETNS_DIR.glob("*"))
    assert [d for d in cgroup_dirs if Path(d).exists()] == []
    assert not (prov.state_root / name).exists()
    assert _mounts_mentioning(str(prov.state_root / name)) == []


def test_a_node_whose_pid1_dies_is_started_again_with_its_state(provisioner: tuple[NamespaceProvisioner, str]) -> None:
    import signal

    from kos.platform.provision.namespaces import node_boot_state

    prov, name = provisioner
    state = prov.create(name, [NodeRequest("n-1", "worker", [sys.executable, "-c", FAMILY_NODE])],
                        cidr="10.7.3.0/24")
    node = state.node("n-1")
    assert ask(node.host_port) == {"pid": 1, "boots": 1}
    pid1 = node_pid1(node)
    assert pid1 is not None
    os.kill(pid1, signal.SIGKILL)  # as a crashed machined: the kernel ends the node's PID namespace
    facts = ask(node.host_port, timeout=20)
    assert facts == {"pid": 1, "boots": 2}  # started again, same /var
    boot = node_boot_state(node)
    assert (boot["boots"], boot["crashes"], boot["last"]) == (2, 1, "running")
    assert "node ended (exit 1); starting it again" in node.console.read_text()
    assert node_pid1(node) not in (None, pid1)
    prov.stop_node(node, timeout=10)  # a requested stop is not a crash: no new boot
    assert node_pid1(node) is None and _zombie_or_gone(node.pid)
    assert node_boot_state(node)["boots"] == 2


def test_the_port_forwarder_is_kept_running_on_its_ports(provisioner: tuple[NamespaceProvisioner, str]) -> None:
    import signal

    from kos.platform.provision.namespaces import forwarder_state

    prov, name = provisioner
    state = prov.create(name, [NodeRequest("n-1", "worker", [sys.executable, "-c", FAMILY_NODE])],
                        cidr="10.7.4.0/24")
    node = state.node("n-1")
    assert ask(node.host_port)["boots"] == 1
    assert forwarder_state(state).startswith("running (pid ")
    forwarder = json.loads((Path(state.dir) / "forwarder.json").read_text())["pid"]
    os.kill(forwarder, signal.SIGKILL)
    _wait(lambda: "restarted 1 times" in forwarder_state(state) and forwarder_state(state).startswith("running"),
          10, "the forwarder's restart")
    assert ask(node.host_port)["boots"] == 1  # the same port
    # even its keeper gone: reported, and started again on the same ports
    keeper = state.forwarder_pid
    forwarder = json.loads((Path(state.dir) / "forwarder.json").read_text())["pid"]
    os.kill(keeper, signal.SIGKILL)
    os.kill(forwarder, signal.SIGKILL)
    os.waitpid(keeper, 0)
    assert forwarder_state(state).startswith("down")
    assert prov.ensure_forwarder(state) is True
    assert forwarder_state(state).startswith("running")
    assert prov.load(name).forwarder_pid == state.forwarder_pid != keeper
    assert ask(node.host_port)["boots"] == 1
    assert prov.ensure_forwarder(state) is False
