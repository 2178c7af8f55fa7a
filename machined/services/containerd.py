"""The ``containerd`` service: Debian's containerd with its own config, root, state and socket.

``ContainerdPaths`` says where everything lives (a node uses /var/lib/containerd and
/run/containerd; tests use a temp dir); ``render_config`` writes containerd's TOML (config
version 2; the CRI plugin only when asked); ``containerd_service`` is the service definition
(healthy when grpc.health.v1 on its socket says SERVING); ``ensure_namespaces`` creates the
``system`` and ``k8s.io`` namespaces through ``ctr``. Containers need the host's cgroup v1
mounts (see shared/design/this-machine.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from kos.machined.services.conditions import Condition
from kos.machined.services.health import HealthCheck, grpc_probe
from kos.machined.services.runners import ProcessRunner
from kos.machined.services.supervisor import BackoffPolicy, RestartPolicy, ServiceDefinition

NAMESPACES = ("system", "k8s.io")
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"  # what kubelet 1.32 expects
CNI_BIN_DIR = "/opt/cni/bin"
CNI_CONF_DIR = "/etc/cni/net.d"
REGISTRY_CONFIG_DIR = "/etc/containerd/certs.d"


@dataclass(frozen=True)
class ContainerdPaths:
    root: Path
    state: Path
    config: Path

    @property
    def socket(self) -> Path:
        return self.state / "containerd.sock"

    @classmethod
    def under(cls, base: Path) -> ContainerdPaths:
        """Everything below one directory (tests, namespace nodes)."""
        return cls(base / "root", base / "state", base / "config.toml")

    @classmethod
    def node(cls) -> ContainerdPaths:
        return cls(Path("/var/lib/containerd"), Path("/run/containerd"), Path("/etc/containerd/config.toml"))


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(paths: ContainerdPaths, *, cri: bool = False, log_level: str = "info",
                  sandbox_image: str = SANDBOX_IMAGE) -> str:
    """containerd's config.toml (version 2) for ``paths``."""
    if log_level not in ("trace", "debug", "info", "warn", "error", "fatal", "panic"):
        raise ValueError(f"containerd log_level: {log_level!r}, expected trace/debug/info/warn/error/fatal/panic")
    disabled = [] if cri else ["io.containerd.grpc.v1.cri"]
    lines = [
        "version = 2",
        f"root = {_toml_str(str(paths.root))}",
        f"state = {_toml_str(str(paths.state))}",
        f"disabled_plugins = [{', '.join(_toml_str(d) for d in disabled)}]",
        "",
        "[grpc]",
        f"  address = {_toml_str(str(paths.socket))}",
        "",
        "[ttrpc]",
        f"  address = {_toml_str(str(paths.socket) + '.ttrpc')}",
        "",
        "[debug]",
        f"  level = {_toml_str(log_level)}",
        "",
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {_toml_str(str(paths.root / 'opt'))}",
        "",
    ]
    if cri:
        lines += _cri_config(sandbox_image)
    return "\n".join(lines)


CAP_SYS_RESOURCE = 24


def can_lower_oom_score_adj() -> bool:
    """Whether this process holds CAP_SYS_RESOURCE (needed to lower an oom_score_adj)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    except (OSError, ValueError):
        pass
    return False


def _cri_config(sandbox_image: str) -> list[str]:
    """The CRI plugin for the kubelet: runc with cgroupfs (cgroup v1 hosts), CNI from
    /opt/cni/bin and /etc/cni/net.d, the pause image the kubelet's release expects.

    Without CAP_SYS_RESOURCE (a machine whose capability bounding set lacks it) no process can
    lower its oom_score_adj, and runc fails to create a pod sandbox (the kubelet asks -998 for
    it); ``restrict_oom_score_adj`` then clamps the scores to containerd's own."""
    cri = '[plugins."io.containerd.grpc.v1.cri"'
    return [
        cri + "]",
        f"  sandbox_image = {_toml_str(sandbox_image)}",
        f"  restrict_oom_score_adj = {'false' if can_lower_oom_score_adj() else 'true'}",
        "  enable_cdi = false",
        cri + ".containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        cri + ".containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        cri + ".containerd.runtimes.runc.options]",
        "  SystemdCgroup = false",
        cri + ".cni]",
        f"  bin_dir = {_toml_str(CNI_BIN_DIR)}",
        f"  conf_dir = {_toml_str(CNI_CONF_DIR)}",
        cri + ".registry]",
        f"  config_path = {_toml_str(REGISTRY_CONFIG_DIR)}",
        "",
    ]


def containerd_service(
    paths: ContainerdPaths,
    *,
    binary: str = "containerd",
    cri: bool = False,
    depends_on: Sequence[Condition] = (),
    stop_timeout: float = 10.0,
) -> ServiceDefinition:
    config = render_config(paths, cri=cri)

    async def prepare() -> None:
        def write() -> None:
            for d in (paths.root, paths.state, paths.config.parent):
                d.mkdir(parents=True, exist_ok=True)
            os.chmod(paths.root, 0o711)
            paths.config.write_text(config)

        await anyio.to_thread.run_sync(write)

    runner = ProcessRunner([binary, "--config", str(paths.config)], stop_timeout=stop_timeout, prepare_fn=prepare)
    return ServiceDefinition(
        "containerd",
        runner,
        depends_on=depends_on,
        restart=RestartPolicy.FOREVER,
        backoff=BackoffPolicy(initial=0.2, maximum=10.0),
        # fast until healthy, then every 5 s: an idle node should not wake 4 times a second
        health=HealthCheck(grpc_probe(path=str(paths.socket)), interval=0.25, timeout=2.0, healthy_interval=15.0),
    )


async def ctr(socket: Path, *args: str, namespace: str | None = None, ctr_binary: str = "ctr") -> str:
    """Run ``ctr`` against ``socket``; returns stdout, raises RuntimeError with stderr on failure."""
    cmd = [ctr_binary, "--address", str(socket)]
    if namespace is not None:
        cmd += ["--namespace", namespace]
    cmd += list(args)
    result = await anyio.run_process(cmd, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.decode().strip()}")
    return result.stdout.decode()


async def ensure_namespaces(socket: Path, names: Sequence[str] = NAMESPACES) -> list[str]:
    """Create the missing namespaces; returns every namespace containerd knows."""
    existing = set((await ctr(socket, "namespaces", "list", "--quiet")).split())
    for n in names:
        if n not in existing:
            await ctr(socket, "namespaces", "create", n)
    return sorted((await ctr(socket, "namespaces", "list", "--quiet")).split())
