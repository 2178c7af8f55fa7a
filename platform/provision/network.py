"""The cluster network: a dedicated network namespace holding a bridge, and one network
namespace per node connected to the bridge by a veth pair.

Names: the cluster namespace is ``kos-<cluster>``, a node's is ``kos-<cluster>-<node>``;
inside a node the interface is ``eth0``. Everything is created with ``ip`` inside those
namespaces; the host's own interfaces are never touched. ``destroy`` removes every namespace
it created (deleting a namespace removes its veth ends and the bridge with it).
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NETNS_DIR = Path("/run/netns")
BRIDGE = "kos0"


class NetworkError(RuntimeError):
    pass


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


@dataclass
class ClusterNetwork:
    cluster: str
    cidr: str = "10.5.0.0/24"
    nodes: dict[str, str] = field(default_factory=dict)  # node name -> address/prefix

    def __post_init__(self) -> None:
        try:
            self.network = ipaddress.ip_network(self.cidr, strict=True)
        except ValueError as exc:
            raise NetworkError(f"--cidr {self.cidr!r}: {exc}; expected a network like 10.5.0.0/24") from None
        if self.network.version != 4 or self.network.prefixlen > 29:
            raise NetworkError(f"--cidr {self.cidr!r}: expected an IPv4 network with a prefix of /29 or shorter")

    @property
    def netns(self) -> str:
        return f"kos-{self.cluster}"

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.network.network_address + 1  # type: ignore[return-value]

    def node_netns(self, node: str) -> str:
        return f"kos-{self.cluster}-{node}"

    def address(self, index: int) -> ipaddress.IPv4Address:
        """The address of the ``index``-th node (0-based): gateway + 1 + index."""
        addr = self.network.network_address + 2 + index
        if addr not in self.network or addr == self.network.broadcast_address:
            raise NetworkError(f"--cidr {self.cidr}: too small for node #{index + 1}")
        return addr  # type: ignore[return-value]

    def create(self) -> None:
        if netns_exists(self.netns):
            raise NetworkError(f"network namespace {self.netns} already exists (is cluster {self.cluster!r} running?)")
        _ip("netns", "add", self.netns)
        try:
            _ip("-n", self.netns, "link", "set", "lo", "up")
            _ip("-n", self.netns, "link", "add", BRIDGE, "type", "bridge")
            _ip("-n", self.netns, "addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", BRIDGE)
            _ip("-n", self.netns, "link", "set", BRIDGE, "up")
        except NetworkError:
            self.destroy()
            raise

    def add_node(self, node: str, index: int, *, configure_address: bool = True) -> str:
        """Create the node's namespace and veth; returns the node's address with prefix."""
        ns = self.node_netns(node)
        addr = f"{self.address(index)}/{self.network.prefixlen}"
        _ip("netns", "add", ns)
        host_end = f"veth{index}"
        _ip("-n", self.netns, "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("-n", self.netns, "link", "set", host_end, "master", BRIDGE, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "set", "eth0", "up")
        if configure_address:
            _ip("-n", ns, "addr", "add", addr, "dev", "eth0")
            _ip("-n", ns, "route", "add", "default", "via", str(self.gateway))
        self.nodes[node] = addr
        return addr

    def destroy(self) -> None:
        errors = []
        for node in list(self.nodes):
            ns = self.node_netns(node)
            if netns_exists(ns):
                try:
                    _ip("netns", "del", ns)
                except NetworkError as exc:
                    errors.append(str(exc))
        # namespaces of nodes this object did not record (e.g. after a crash)
        for path in NETNS_DIR.glob(f"kos-{self.cluster}-*") if NETNS_DIR.exists() else []:
            try:
                _ip("netns", "del", path.name)
            except NetworkError as exc:
                errors.append(str(exc))
        if netns_exists(self.netns):
            try:
                _ip("netns", "del", self.netns)
            except NetworkError as exc:
                errors.append(str(exc))
        self.nodes.clear()
        if errors:
            raise NetworkError("; ".join(errors))
