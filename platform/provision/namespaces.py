"""The namespace provisioner: a local cluster whose nodes are Linux namespaces.

Each node is a process tree rooted at its own PID 1 in new PID, mount, UTS and IPC
namespaces, inside its own network namespace attached to the cluster bridge (see
``network``). The node's PID 1 is started through ``nsenter --net`` + ``unshare --fork`` and
``nodeinit`` (which builds a shell-free root and execs the given command). A forwarder
daemon makes each node's API reachable from the host on a loopback port.

Cluster state lives in ``<state_root>/<name>/`` (default ``~/.kos/clusters``): ``cluster.json``
(nodes, addresses, PIDs, forwarded ports) and a directory per node holding its STATE and
EPHEMERAL directories and its console log. ``destroy`` stops every process (SIGTERM, then
SIGKILL after a timeout), deletes the namespaces and removes the directory; nodes' mounts
live only in their mount namespaces and disappear with them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kos.platform.provision import cgroups
from kos.platform.provision.network import NETNS_DIR, ClusterNetwork, NetworkError, netns_exists
from kos.platform.provision.sweep import cluster_pids, kill_all, namespace_inits

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$")
DEFAULT_STATE_ROOT = Path.home() / ".kos" / "clusters"


KUBE_API_PORT = 6443
KUBE_PREFIX = "k8s-"  # forwarder map names of the control planes' Kubernetes API


class ProvisionError(RuntimeError):
    pass


@dataclass
class NodeRequest:
    name: str
    role: str  # "controlplane" | "worker"
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    api_port: int = 50000
    configure_address: bool = True  # False: the node configures eth0 itself (KOS_ADDRESS, KOS_GATEWAY)
    binds: list[str] = field(default_factory=list)  # nodeinit --bind SRC[:DST[:ro|rw]]


@dataclass
class NodeState:
    name: str
    role: str
    address: str  # with prefix, e.g. 10.5.0.2/24
    netns: str
    dir: str
    pid: int = 0  # the unshare process (parent of the node's PID 1)
    api_port: int = 50000
    host_port: int = 0  # forwarded loopback port
    kube_port: int = 0  # control planes: forwarded loopback port of the Kubernetes API (6443)
    binds: list[str] = field(default_factory=list)  # nodeinit --bind arguments, kept for restarts
    cgroups: list[str] = field(default_factory=list)  # the node's cgroup directories, as created

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]

    @property
    def console(self) -> Path:
        return Path(self.dir) / "console.log"

    @property
    def cgroup(self) -> str:
        """The node's cgroup directory name in every hierarchy: ``kos-<cluster>-<node>``."""
        return f"kos-{Path(self.dir).parent.name}-{self.name}"


@dataclass
class ClusterState:
    name: str
    cidr: str
    dir: str
    gateway: str
    nodes: list[NodeState] = field(default_factory=list)
    forwarder_pid: int = 0

    def save(self) -> None:
        path = Path(self.dir) / "cluster.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ClusterState:
        data = json.loads((path / "cluster.json").read_text())
        nodes = [NodeState(**n) for n in data.pop("nodes")]
        return cls(nodes=nodes, **data)

    def node(self, name: str) -> NodeState:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ProvisionError(f"cluster {self.name!r} has no node {name!r}")


def validate_name(kind: str, name: str) -> None:
    if not NAME_RE.match(name):
        raise ProvisionError(
            f"{kind} name {name!r}: expected 1-16 lower-case letters, digits or '-', not starting or ending with '-'"
        )


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except FileNotFoundError:
        return []


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(x) for x in text.split()]


def _is_keeper(pid: int) -> bool:
    return "kos.platform.provision.keeper" in _cmdline(pid)


def _unshare_of(node: NodeState) -> int | None:
    """The node's ``unshare`` process: the keeper's child, or ``node.pid`` itself."""
    if not pid_alive(node.pid):
        return None
    if _is_keeper(node.pid):
        kids = [k for k in _children(node.pid) if "unshare" in " ".join(_cmdline(k))]
        return kids[0] if kids else None
    return node.pid if "unshare" in " ".join(_cmdline(node.pid)) else None


def node_pid1(node: NodeState) -> int | None:
    """Host PID of the node's PID 1 (the child of its unshare process), if running."""
    unshare = _unshare_of(node)
    if unshare is None:
        return None
    kids = _children(unshare)
    return kids[0] if kids else None


def node_boot_state(node: NodeState) -> dict[str, object]:
    """What the keeper recorded: boots, last (running/rebooting/poweroff/exit N)."""
    try:
        data: dict[str, object] = json.loads((Path(node.dir) / "keeper.json").read_text())
    except (OSError, ValueError):
        return {}
    return data


def forwarder_state(state: ClusterState) -> str:
    """``running (pid N[, restarted M times])``, ``restarting (...)`` or ``down (...)``."""
    try:
        rec: dict[str, object] = json.loads((Path(state.dir) / "forwarder.json").read_text())
    except (OSError, ValueError):
        rec = {}
    keeper_alive = pid_alive(state.forwarder_pid) and "kos.platform.provision.forward" in _cmdline(
        state.forwarder_pid)
    crashes = int(str(rec.get("crashes", 0)))
    restarted = f", restarted {crashes} times" if crashes else ""
    pid = int(str(rec.get("pid", 0)))
    if keeper_alive and pid and pid_alive(pid):
        return f"running (pid {pid}{restarted})"
    if keeper_alive:
        return f"restarting ({rec.get('last', 'starting')}{restarted})"
    return "down (its keeper is gone)"


class ClusterDirectory:
    """Where a provisioner keeps its clusters: ``<state_root>/<name>/cluster.json``."""

    state_root: Path

    def cluster_dir(self, name: str) -> Path:
        return self.state_root / name

    def exists(self, name: str) -> bool:
        return (self.cluster_dir(name) / "cluster.json").exists()

    def load(self, name: str) -> ClusterState:
        if not self.exists(name):
            raise ProvisionError(f"cluster {name!r} does not exist (no {self.cluster_dir(name) / 'cluster.json'})")
        return ClusterState.load(self.cluster_dir(name))

    def names(self) -> list[str]:
        if not self.state_root.is_dir():
            return []
        return sorted(p.name for p in self.state_root.iterdir() if (p / "cluster.json").exists())


class NamespaceProvisioner(ClusterDirectory):
    def __init__(self, state_root: Path | None = None) -> None:
        self.state_root = state_root or DEFAULT_STATE_ROOT

    # -- create -----------------------------------------------------------------------------
    def create(self, name: str, nodes: list[NodeRequest], *, cidr: str = "10.5.0.0/24") -> ClusterState:
        validate_name("cluster", name)
        if not nodes:
            raise ProvisionError("a cluster needs at least one node")
        seen = set()
        for n in nodes:
            validate_name("node", n.name)
            if n.name in seen:
                raise ProvisionError(f"node name {n.name!r} is used twice")
            seen.add(n.name)
        if os.geteuid() != 0:
            raise ProvisionError("namespace clusters need root (network and mount namespaces)")
        if self.exists(name):
            raise ProvisionError(
                f"cluster {name!r} already exists; destroy it first (kosctl cluster destroy --name {name})"
            )
        network = ClusterNetwork(name, cidr)
        if netns_exists(network.netns):
            raise ProvisionError(f"network namespace {network.netns} already exists; run kosctl cluster destroy first")
        cdir = self.cluster_dir(name)
        cdir.mkdir(parents=True, exist_ok=True)
        state = ClusterState(name=name, cidr=cidr, dir=str(cdir), gateway=str(network.gateway))
        state.save()
        try:
            network.create()
            for i, req in enumerate(nodes):
                address = network.add_node(req.name, i, configure_address=req.configure_address)
                req.env = {"KOS_HOSTNAME": req.name, "KOS_ADDRESS": address, "KOS_GATEWAY": str(network.gateway),
                           "KOS_LINK": "eth0", **req.env}
                ndir = cdir / req.name
                ndir.mkdir(parents=True, exist_ok=True)
                node = NodeState(
                    name=req.name, role=req.role, address=address, netns=network.node_netns(req.name),
                    dir=str(ndir), api_port=req.api_port, binds=list(req.binds),
                )
                node.pid = self._start_node(node, req)
                state.nodes.append(node)
                state.save()
            self._start_forwarder(state)
            state.save()
        except BaseException:
            self.destroy(name)
            raise
        return state

    def _start_node(self, node: NodeState, req: NodeRequest) -> int:
        ndir = Path(node.dir)
        (ndir / "rootfs").mkdir(exist_ok=True)
        env_args = [f"--env={k}={v}" for k, v in sorted(req.env.items())]
        bind_args = [f"--bind={b}" for b in req.binds]
        cmd = [
            "nsenter", f"--net=/run/netns/{node.netns}",
            "unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--cgroup", "--propagation", "private",
            sys.executable, "-m", "kos.platform.provision.nodeinit",
            "--root", str(ndir / "rootfs"), "--hostname", node.name,
            "--state", str(ndir / "state"), "--var", str(ndir / "var"),
            *env_args, *bind_args, "--", *req.command,
        ]  # fmt: skip
        # the keeper (and so the node) runs in the node's own cgroups; unshare --cgroup makes
        # them the node's cgroup root (see cgroups)
        cgroup_dirs = cgroups.create(node.cgroup)
        node.cgroups = [str(d) for d in cgroup_dirs]  # destroy may run in another cgroup: keep them
        cmd = [sys.executable, "-m", "kos.platform.provision.keeper", "--state", str(ndir / "keeper.json"), "--", *cmd]
        console = open(ndir / "console.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=lambda: cgroups.enter(cgroup_dirs),
            )
        finally:
            console.close()
        return proc.pid

    def ensure_forwarder(self, state: ClusterState) -> bool:
        """Start the forwarder again, on its recorded ports, if even its keeper is gone;
        returns whether it had to."""
        if pid_alive(state.forwarder_pid) and "kos.platform.provision.forward" in _cmdline(state.forwarder_pid):
            return False
        self._start_forwarder(state, keep_ports=True)
        state.save()
        return True

    def _start_forwarder(self, state: ClusterState, *, keep_ports: bool = False) -> None:
        """The port forwarder, under a keeper that starts it again (on the same ports, which it
        reads back from the ports file) whenever it ends."""
        ports_file = Path(state.dir) / "ports.json"
        if keep_ports and not ports_file.exists():
            ports = {n.name: n.host_port for n in state.nodes if n.host_port}
            ports.update({KUBE_PREFIX + n.name: n.kube_port for n in state.nodes if n.kube_port})
            ports_file.write_text(json.dumps(ports))
        elif not keep_ports:
            ports_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "kos.platform.provision.forward", "--netns", f"kos-{state.name}",
               "--ports-file", str(ports_file)]
        cmd += [f"--map={n.name}={n.ip}:{n.api_port}" for n in state.nodes]
        # the Kubernetes API of each control plane (kubectl and kosctl health from the host)
        cmd += [f"--map={KUBE_PREFIX}{n.name}={n.ip}:{KUBE_API_PORT}" for n in state.nodes if n.role == "controlplane"]
        cmd = [sys.executable, "-m", "kos.platform.provision.keeper", "--service", "--max-delay", "2",
               "--state", str(Path(state.dir) / "forwarder.json"), "--", *cmd]

        def written() -> int:  # the forwarder replaces the file (a new inode) once listening
            try:
                return ports_file.stat().st_ino
            except FileNotFoundError:
                return 0

        before = written()
        log = open(Path(state.dir) / "forwarder.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        finally:
            log.close()
        state.forwarder_pid = proc.pid
        deadline = time.monotonic() + 10
        while written() in (0, before):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ProvisionError(f"the port forwarder did not start: see {Path(state.dir) / 'forwarder.log'}")
            time.sleep(0.02)
        ports = json.loads(ports_file.read_text())
        for n in state.nodes:
            n.host_port = ports[n.name]
            n.kube_port = ports.get(KUBE_PREFIX + n.name, 0)

    # -- lifecycle ----------------------------------------------------------------------------
    def stop_node(self, node: NodeState, *, timeout: float = 15.0) -> None:
        """SIGTERM the node (its keeper passes it to PID 1), SIGKILL after ``timeout``."""
        pid1 = node_pid1(node)
        keeper = node.pid if pid_alive(node.pid) and _is_keeper(node.pid) else None
        unshare = _unshare_of(node)
        if keeper is not None:
            with _suppress_missing():
                os.kill(keeper, signal.SIGTERM)
        elif pid1 is not None:
            with _suppress_missing():
                os.kill(pid1, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            p is not None and pid_alive(p) for p in (pid1, keeper)
        ):
            time.sleep(0.05)
        for pid in (pid1, unshare, keeper):
            if pid is not None and pid_alive(pid):
                with _suppress_missing():
                    os.kill(pid, signal.SIGKILL)
        for pid in (unshare, keeper):
            if pid is not None:
                _wait_gone(pid, 5)
        _reap(node.pid)
        # whatever is left (the keeper was gone, processes that escaped PID 1): found from the
        # node's cgroups, network namespace and PID namespace, not from recorded PIDs
        def find() -> set[int]:
            return cluster_pids(node.dir, cgroups=self._cgroup_dirs(node), netns=[node.netns])

        left = find()
        inits = namespace_inits(left)
        if inits and keeper is None:  # an orphaned node: shut it down gracefully first
            for pid in inits:
                with _suppress_missing():
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(pid_alive(p) for p in inits):
                time.sleep(0.05)
        survivors = kill_all(find, timeout=10)
        if survivors:
            raise OSError(f"processes of node {node.name} survived SIGKILL: {sorted(survivors)}")

    @staticmethod
    def _cgroup_dirs(node: NodeState) -> list[Path]:
        return [Path(d) for d in node.cgroups] or cgroups.node_dirs(node.cgroup)

    def start_node(self, state: ClusterState, node: NodeState, command: list[str], env: dict[str, str]) -> None:
        """(Re)start a stopped node with the same identity and directories."""
        if node_pid1(node) is not None or (pid_alive(node.pid) and _is_keeper(node.pid)):
            raise ProvisionError(f"node {node.name} is already running")
        node.pid = self._start_node(node, NodeRequest(node.name, node.role, command, env, node.api_port,
                                                      binds=list(node.binds)))
        state.save()

    def destroy(self, name: str, *, timeout: float = 15.0) -> None:
        cdir = self.cluster_dir(name)
        state = ClusterState.load(cdir) if (cdir / "cluster.json").exists() else None
        errors: list[str] = []
        if state is not None:
            # every node at once: each one's graceful stop (services, etcd, containerd) is mostly
            # waiting, so one after another made destroy grow by ~0.3-0.5 s per node
            from concurrent.futures import ThreadPoolExecutor

            def stop(node: NodeState) -> str | None:
                try:
                    self.stop_node(node, timeout=timeout)
                except OSError as exc:
                    return f"stopping {node.name}: {exc}"
                return None

            with ThreadPoolExecutor(max_workers=max(1, min(32, len(state.nodes)))) as pool:
                errors += [e for e in pool.map(stop, state.nodes) if e]
            if pid_alive(state.forwarder_pid) and "kos.platform.provision.forward" in _cmdline(state.forwarder_pid):
                with _suppress_missing():
                    os.kill(state.forwarder_pid, signal.SIGTERM)
                _wait_gone(state.forwarder_pid, 5)
                _reap(state.forwarder_pid)
        # everything else of the cluster, however its bookkeeping ended up (keepers killed,
        # cluster.json lost): by cgroup, network namespace, PID namespace and command line
        nodes = state.nodes if state is not None else []
        netns = [f"kos-{name}", *(p.name for p in NETNS_DIR.glob(f"kos-{name}-*"))] if NETNS_DIR.exists() else []
        survivors = kill_all(lambda: cluster_pids(
            cdir, cgroups=[d for n in nodes for d in self._cgroup_dirs(n)], netns=netns,
            markers=[f"kos-{name}", f"--net=/run/netns/kos-{name}"]), timeout=10)
        if survivors:
            errors.append(f"processes survived SIGKILL: {sorted(survivors)}")
        for node in nodes:
            errors += [f"cgroup {left}" for left in cgroups.remove(node.cgroup, dirs=self._cgroup_dirs(node))]
        try:
            ClusterNetwork(name, state.cidr if state else "10.5.0.0/24").destroy()
        except NetworkError as exc:
            errors.append(str(exc))
        if cdir.exists():
            shutil.rmtree(cdir, ignore_errors=True)
        if errors:
            raise ProvisionError("; ".join(errors))


class _suppress_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, et: object, ev: object, tb: object) -> bool:
        return isinstance(ev, ProcessLookupError)


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if pid_alive(pid):
        with _suppress_missing():
            os.kill(pid, signal.SIGKILL)


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our child (it is when created by this process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
