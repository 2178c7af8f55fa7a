"""Roles and the authorization rules of the API.

A caller's roles are the Organization (O) values of its client certificate (as in Talos):
``os:admin``, ``os:operator``, ``os:reader``, ``os:etcd:backup``; nodes forwarding requests
for someone else present ``os:impersonator`` and pass the original caller's roles in the
``kos-roles`` request metadata. A maintenance-mode connection (no client certificate) has the
pseudo-role ``maintenance``.

``METHOD_RULES`` says which roles may call each RPC (a method missing from the table is
denied to everyone); ``ResourcePolicy`` refines the ``cosi.resource.State`` service: reads of
sensitive types need ``os:admin``, writes are allowed to ``os:admin`` only in the namespaces
the node declares writable, and maintenance mode reads only a few types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kos.resources.core import ECHO_CHARS, cap, echo

ADMIN = "os:admin"
OPERATOR = "os:operator"
READER = "os:reader"
ETCD_BACKUP = "os:etcd:backup"
IMPERSONATOR = "os:impersonator"
MAINTENANCE = "maintenance"

ROLES = frozenset({ADMIN, OPERATOR, READER, ETCD_BACKUP})
"""Roles a client certificate may carry (and ``kosctl``/GenerateClientConfiguration issue)."""

ROLES_METADATA = "kos-roles"
NODE_METADATA = "node"

_READ = frozenset({ADMIN, OPERATOR, READER})
_OPERATE = frozenset({ADMIN, OPERATOR})
_ADMIN = frozenset({ADMIN})

STATE = "/cosi.resource.State/"
MACHINE = "/kos.machine.MachineService/"
SECURITY = "/kos.security.SecurityService/"

METHOD_RULES: dict[str, frozenset[str]] = {
    STATE + "Get": _READ | {MAINTENANCE},
    STATE + "List": _READ | {MAINTENANCE},
    STATE + "Watch": _READ | {MAINTENANCE},
    STATE + "Create": _ADMIN,
    STATE + "Update": _ADMIN,
    STATE + "Destroy": _ADMIN,
    STATE + "Teardown": _ADMIN,
    STATE + "TeardownAndDestroy": _ADMIN,
    MACHINE + "Version": _READ | {MAINTENANCE},
    MACHINE + "ApplyConfiguration": _ADMIN | {MAINTENANCE},
    MACHINE + "Bootstrap": _ADMIN,
    MACHINE + "Reboot": _OPERATE,
    MACHINE + "Shutdown": _OPERATE,
    MACHINE + "Reset": _ADMIN,
    MACHINE + "Upgrade": _ADMIN,
    MACHINE + "Rollback": _ADMIN,
    MACHINE + "ServiceList": _READ,
    MACHINE + "ServiceStart": _OPERATE,
    MACHINE + "ServiceStop": _OPERATE,
    MACHINE + "ServiceRestart": _OPERATE,
    MACHINE + "Logs": _READ,
    MACHINE + "Dmesg": _READ,
    MACHINE + "Events": _READ,
    MACHINE + "EtcdMemberList": _READ,
    MACHINE + "EtcdRemoveMember": _ADMIN,
    MACHINE + "EtcdLeaveCluster": _ADMIN,
    MACHINE + "EtcdForfeitLeadership": _OPERATE,
    MACHINE + "EtcdSnapshot": _OPERATE | {ETCD_BACKUP},
    MACHINE + "EtcdRecover": _ADMIN,
    MACHINE + "EtcdStatus": _READ,
    MACHINE + "Stats": _READ,
    MACHINE + "Memory": _READ,
    MACHINE + "Processes": _READ,
    MACHINE + "Containers": _READ,
    MACHINE + "ClusterHealthCheck": _READ,  # its checks call only reader RPCs, with the caller's roles
    MACHINE + "GenerateClientConfiguration": _ADMIN,
    # files and diagnostics (as Talos: listing and sizes are reads; file contents are admin,
    # since the node's files may hold what a reader must not see)
    MACHINE + "List": _READ,
    MACHINE + "DiskUsage": _READ,
    MACHINE + "Read": _ADMIN,
    MACHINE + "Copy": _ADMIN,
    MACHINE + "Mounts": _READ,
    MACHINE + "Netstat": _READ,
    MACHINE + "Time": _READ,
    MACHINE + "BlockDeviceWipe": _ADMIN,
    MACHINE + "MetaList": _READ,
    MACHINE + "MetaWrite": _ADMIN,
    MACHINE + "MetaDelete": _ADMIN,
    MACHINE + "EtcdAlarmList": _READ | {ETCD_BACKUP},
    MACHINE + "EtcdAlarmDisarm": _ADMIN,
    MACHINE + "EtcdDefragment": _ADMIN,
    MACHINE + "ControllerRuntimeDependencies": _READ,
    MACHINE + "SystemStat": _READ,
    MACHINE + "ImageList": _READ,
    SECURITY + "Certificate": _ADMIN | {IMPERSONATOR},
}


ACCESS_DENIED_PREFIX = "access denied: "


class AccessDenied(Exception):
    """The caller may not do this (PERMISSION_DENIED; the message starts with ``access denied:``
    so that clients can tell it from COSI's owner conflicts, which share the code)."""

    def __init__(self, message: str) -> None:
        super().__init__(ACCESS_DENIED_PREFIX + message)


def method_allowed(method: str, roles: Iterable[str]) -> bool:
    allowed = METHOD_RULES.get(method)
    return allowed is not None and not allowed.isdisjoint(roles)


def check_method(method: str, roles: frozenset[str]) -> None:
    if not method_allowed(method, roles):
        allowed = METHOD_RULES.get(method)
        need = ", ".join(sorted(allowed)) if allowed else "nobody"
        have = ", ".join(sorted(roles)) or "none"
        raise AccessDenied(f"{method} is not allowed for roles [{have}]: requires one of [{need}]")


def roles_from_peercert(cert: dict[str, Any] | None) -> frozenset[str]:
    """The Organization values of a certificate as returned by ``SSLSocket.getpeercert()``."""
    if not cert:
        return frozenset()
    out = set()
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "organizationName":
                out.add(str(value))
    return frozenset(out)


def effective_roles(peer_roles: frozenset[str], metadata: dict[str, Any]) -> frozenset[str]:
    """The roles a request acts with: the peer's, or, for an impersonating node, those it
    forwards in ``kos-roles`` (limited to the known roles)."""
    if IMPERSONATOR in peer_roles:
        forwarded = metadata.get(ROLES_METADATA)
        if isinstance(forwarded, str) and forwarded:
            return frozenset(r for r in forwarded.split(",") if r in ROLES)
    return peer_roles


MAINTENANCE_READABLE = frozenset(
    {
        "Namespaces.meta.cosi.dev",
        "ResourceDefinitions.meta.cosi.dev",
        "Disks.block.kos.dev",
        "SystemDisks.block.kos.dev",
        "LinkStatuses.net.kos.dev",
        "AddressStatuses.net.kos.dev",
        "HostnameStatuses.net.kos.dev",
        "MachineStatuses.runtime.kos.dev",
        "Versions.runtime.kos.dev",
    }
)
"""Resource types a maintenance-mode (unauthenticated) client may read."""


@dataclass(frozen=True)
class ResourcePolicy:
    """Per-resource rules of the ``cosi.resource.State`` service."""

    writable_namespaces: frozenset[str] = field(default_factory=frozenset)
    maintenance_readable: frozenset[str] = MAINTENANCE_READABLE

    def check_read(self, roles: frozenset[str], namespace: str, type: str, sensitive: bool) -> None:
        if MAINTENANCE in roles:
            if type not in self.maintenance_readable:
                raise AccessDenied(f"{cap(type, ECHO_CHARS)}: not readable in maintenance mode")
            return
        if sensitive and ADMIN not in roles:
            raise AccessDenied(f"{cap(type, ECHO_CHARS)} is sensitive: reading it requires the {ADMIN} role")

    def check_write(self, roles: frozenset[str], namespace: str, type: str) -> None:
        if ADMIN not in roles:
            raise AccessDenied(f"writing {cap(type, ECHO_CHARS)} requires the {ADMIN} role")
        if namespace not in self.writable_namespaces:
            allowed = ", ".join(sorted(self.writable_namespaces)) or "none"
            raise AccessDenied(
                f"namespace {echo(namespace)} is read-only through the API (writable namespaces: {allowed})"
            )
