"""``kosctl upgrade-k8s --to VERSION``: move a running cluster to another Kubernetes version
node by node, control plane first, as ``talosctl upgrade-k8s`` does (os:admin: it reads the
machine configs and applies them with mode no-reboot). The plan and its checks are
``kos.apis.kosctl.k8splan``, the runner ``kos.apis.kosctl.k8supgrade``; ``--dry-run`` checks and
prints what would change, changing nothing. Running it again resumes an interrupted upgrade.

The nodes come from ``--cluster NAME`` (a local cluster: its nodes and the forwarded port of its
Kubernetes API), from ``--control-plane-nodes``/``--worker-nodes``, or from cluster discovery
(``Members`` of the context's node).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from kos.apis.kosctl.errors import CLIError

if TYPE_CHECKING:
    from kos.apis.kosctl.k8supgrade import Options

EXAMPLES = """examples:
  kosctl upgrade-k8s --to 1.33.13 --dry-run          check and show the plan, change nothing
  kosctl upgrade-k8s --to 1.33.13                    control planes, kube-proxy, then every kubelet
  kosctl --context c1 upgrade-k8s --to 1.33.13 --cluster c1      a local cluster (kosctl cluster create)
  kosctl upgrade-k8s --to 1.33.13 --no-upgrade-kubelet           leave the kubelets as they are
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("upgrade-k8s", help="upgrade Kubernetes to another built version, node by node",
                       description="Upgrade the cluster's Kubernetes: the control-plane static pods node by node, "
                                   "then kube-proxy, then the kubelets (control planes first), waiting for each "
                                   "to run the new version. One minor release at a time.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--to", required=True, help="the Kubernetes version to move to (1.33.13 or v1.33.13)")
    p.add_argument("--from", dest="from_version", default="auto",
                   help="the version the cluster runs (default auto: the oldest component found in the configs)")
    p.add_argument("--dry-run", action="store_true", help="check and print what would change; change nothing")
    p.add_argument("--upgrade-kubelet", action=argparse.BooleanOptionalAction, default=True,
                   help="upgrade the kubelets too (default yes)")
    p.add_argument("--wait-timeout", type=float, default=300.0,
                   help="seconds to wait for each step to take effect (default 300)")
    p.add_argument("--cluster", help="a local cluster (kosctl cluster create): take its nodes and Kubernetes API")
    p.add_argument("--state-root", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--control-plane-nodes", default="", help="comma-separated control-plane node addresses")
    p.add_argument("--worker-nodes", default="", help="comma-separated worker node addresses")
    p.add_argument("--kube-endpoint", help="the Kubernetes API URL to use (default: the cluster endpoint)")
    p.add_argument("-e", "--endpoints", default=argparse.SUPPRESS, help="API endpoint to go through")
    p.set_defaults(func=run)


def _split(value: str) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()]


def options(args: argparse.Namespace) -> tuple[Options, list[str]]:
    """The runner's Options from the flags (CLIError for a bad value, before any connection),
    and the endpoints given."""
    from kos.apis.kosctl import k8splan as kp
    from kos.apis.kosctl.k8supgrade import Options
    from kos.resources.k8sversion import KubeVersion

    try:
        to = kp.parse_target(args.to)
        frm = None if args.from_version == "auto" else KubeVersion.parse(args.from_version)
    except kp.PlanError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise CLIError(f"--from: {exc} (or auto)") from None
    if not 0 < args.wait_timeout <= 86400:
        raise CLIError(f"--wait-timeout {args.wait_timeout}: expected seconds in (0, 86400]")
    opts = Options(to, frm, args.dry_run, args.upgrade_kubelet, args.wait_timeout,
                   _split(args.control_plane_nodes), _split(args.worker_nodes), args.kube_endpoint)
    if opts.workers and not opts.control_planes:
        raise CLIError("--worker-nodes given without --control-plane-nodes: give both, or neither to discover them")
    if args.cluster:
        from kos.platform.provision.namespaces import NamespaceProvisioner, ProvisionError

        try:
            state = NamespaceProvisioner(args.state_root).load(args.cluster)
        except ProvisionError as exc:
            raise CLIError(str(exc)) from None
        opts.control_planes = [n.ip for n in state.nodes if n.role == "controlplane"]
        opts.workers = [n.ip for n in state.nodes if n.role == "worker"]
        opts.kube_endpoint = opts.kube_endpoint or next(
            (f"https://127.0.0.1:{n.kube_port}" for n in state.nodes if getattr(n, "kube_port", 0)), None)
    endpoints = _split(getattr(args, "endpoints", None) or "")
    return opts, endpoints


def run(args: argparse.Namespace) -> int:
    import anyio

    from kos.apis.client import APIError, ClientConfig, ConfigError, Connection
    from kos.apis.kosctl.k8supgrade import UpgradeError, upgrade

    opts, endpoints = options(args)
    try:
        cfg = ClientConfig.load(getattr(args, "kosconfig", None), missing_ok=False)
        name, ctx = cfg.current(getattr(args, "context", None))
    except (ConfigError, KeyError) as exc:
        raise CLIError(f"client config: {exc}") from None

    def out(line: str) -> None:
        print(line, flush=True)

    async def go() -> float:
        async with Connection.from_context(ctx, endpoint=endpoints[0] if endpoints else None, timeout=30) as conn:
            return await upgrade(conn, opts, out)

    try:
        seconds = anyio.run(go)
    except UpgradeError as exc:
        raise CLIError(str(exc)) from None
    except APIError as exc:
        raise CLIError(f"{exc}; run kosctl upgrade-k8s --to {opts.to} again to resume") from None
    except ValueError as exc:
        raise CLIError(f"context {name!r}: {exc}") from None
    if seconds:
        load = os.getloadavg()[0]
        out(f"upgrade to {opts.to} done in {seconds:.1f} s (load average {load:.2f})")
    return 0
