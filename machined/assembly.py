"""Assembly of a node's controllers and services from every domain.

Each domain exposes ``kos.controllers.<domain>.assembly.<domain>_controllers(...)`` taking
explicit keyword parameters. ``assemble_controllers(ctx)`` imports each one, passes the
parameters it declares from the ``AssemblyContext`` (by name: ``root``, ``container_mode``,
``supervisor``, ``state_dir``, ``extra_names``, ``remote``, ``node_names``, ...), and returns
the controllers plus, per domain that could not be assembled, the reason. A missing domain
module or a parameter machined cannot provide is not skipped silently: the node reports it
as an unmet condition ``controllers <domain>`` in its MachineStatus and logs an error.

``node_services(ctx)`` returns the service definitions a node always has: containerd (when
its binary exists) and, on control planes, the ``etcd`` service (started by the etcd
controllers or the Bootstrap RPC, never at boot by itself).
"""

from __future__ import annotations

import importlib
import inspect
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from kos.controllers.runtime import Controller

log = structlog.get_logger("kos.machined.assembly")

DOMAINS: tuple[str, ...] = ("config", "network", "secrets", "block", "etcd", "k8s", "cluster", "system")
"""Every domain of a node, in registration order."""


@dataclass
class AssemblyContext:
    """Everything machined can hand to a domain's assembly function, by parameter name."""

    root: str = "/"
    container_mode: bool = False
    control_plane: bool = False
    state_dir: Path = Path("/system/state")
    supervisor: Any = None
    extra_names: list[str] = field(default_factory=list)
    remote: Any = None  # secrets: the worker's RemoteSigner
    extras: dict[str, Any] = field(default_factory=dict)
    domain_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per domain, e.g. etcd paths

    def params(self) -> dict[str, Any]:
        out = {
            "root": self.root,
            "container_mode": self.container_mode,
            "control_plane": self.control_plane,
            "state_dir": self.state_dir,
            "supervisor": self.supervisor,
            "extra_names": list(self.extra_names),
            "node_names": list(self.extra_names),
            "remote": self.remote,
        }
        out.update(self.extras)
        return out


def call_with_params(fn: Callable[..., Any], params: dict[str, Any]) -> Any:
    """Call ``fn`` with the keyword parameters it declares that ``params`` has; a required
    parameter ``params`` lacks raises TypeError naming it."""
    sig = inspect.signature(fn)
    kwargs = {}
    for name, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in params and (params[name] is not None or p.default is inspect.Parameter.empty
                               or p.default is None):
            kwargs[name] = params[name]
        elif p.default is inspect.Parameter.empty:
            raise TypeError(f"{fn.__module__}.{fn.__qualname__}: machined has no value for parameter {name!r}")
    return fn(**kwargs)


def assemble_controllers(
    ctx: AssemblyContext, domains: tuple[str, ...] = DOMAINS
) -> tuple[list[Controller], dict[str, str]]:
    """The controllers of every domain that assembles, and the reasons of those that do not."""
    controllers: list[Controller] = []
    missing: dict[str, str] = {}
    for domain in domains:
        params = {**ctx.params(), **ctx.domain_params.get(domain, {})}
        module_name = f"kos.controllers.{domain}.assembly"
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing[domain] = f"{module_name} cannot be imported: {exc}"
            log.error("domain controllers missing", domain=domain, error=missing[domain])
            continue
        fn = getattr(module, f"{domain}_controllers", None)
        if fn is None:
            missing[domain] = f"{module_name} has no {domain}_controllers()"
            log.error("domain controllers missing", domain=domain, error=missing[domain])
            continue
        try:
            got = list(call_with_params(fn, params))
        except Exception as exc:
            missing[domain] = f"{module_name}.{domain}_controllers failed: {exc}"
            log.error("domain controllers failed", domain=domain, error=missing[domain])
            continue
        controllers.extend(got)
        log.info("domain controllers assembled", domain=domain, controllers=[c.name for c in got])
    return controllers, missing


def node_services(ctx: AssemblyContext, *, containerd_base: Path | None = None) -> list[Any]:
    """Service definitions of a node: containerd (when installed), etcd on control planes."""
    from kos.machined.services.containerd import ContainerdPaths, containerd_service

    out: list[Any] = []
    if shutil.which("containerd"):
        base = containerd_base or Path(ctx.root) / "var/lib/containerd"
        paths = ContainerdPaths(base / "root", Path(ctx.root) / "run/containerd", base / "config.toml")
        out.append(containerd_service(paths, cri=True))  # the kubelet's container runtime
    else:
        log.warning("containerd is not installed: no containerd service")
    return out
