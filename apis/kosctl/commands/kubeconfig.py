"""``kosctl kubeconfig [PATH]``: an admin kubeconfig for the cluster (``admin`` in
``system:masters``), for the cluster's control-plane endpoint, trusting the Kubernetes CA.

Sources, in order of the flags given:

* ``--from-config controlplane.yaml``: a fresh client certificate signed locally with the
  Kubernetes CA in the config (``cluster.ca``; worker configs carry no CA key);
* ``--secrets secrets.yaml --endpoint URL [--cluster NAME]``: the same from a secrets bundle;
* otherwise the node (``-e/-n``, the kosconfig context): the admin certificate the node issued
  (``KubernetesCerts`` ``k8s-certs`` in namespace ``secrets``) read over the State API, which
  only ``os:admin`` may read. The CA key never leaves the node.

PATH defaults to ``./kubeconfig``; ``-`` writes to stdout. An existing file is refused unless
``--force`` (overwrite) or ``--merge`` (replace same-named cluster/user/context entries, keep
the others, switch the current context). Files are written with mode 0600.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path
from typing import Any

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("kubeconfig", help="write an admin kubeconfig for the cluster",
                       description="Write an admin kubeconfig (signed by the Kubernetes CA) for the cluster endpoint.")
    p.add_argument("path", metavar="PATH", nargs="?", default="kubeconfig",
                   help="where to write it (default ./kubeconfig; '-' for stdout)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--merge", action="store_true", help="merge into an existing kubeconfig")
    p.add_argument("--from-config", metavar="FILE", help="sign locally with the CA of this control-plane config")
    p.add_argument("--secrets", metavar="FILE", help="sign locally with the CA of this secrets bundle")
    p.add_argument("--endpoint", help="cluster endpoint URL (required with --secrets; overrides the config's)")
    p.add_argument("--cluster", help="cluster name (default: from the config, or 'kos')")
    p.add_argument("--hours", type=int, default=8760, help="certificate validity for local signing (default 8760)")
    common.add_target_args(p)
    p.set_defaults(func=run)


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise CLIError(f"{what} {path!r}: {exc.strerror}") from None


def _local(args: argparse.Namespace) -> str:
    from kos.resources.machineconfig import ConfigContainer, ConfigErrors, SecretsBundle
    from kos.resources.pki import admin_kubeconfig

    ttl = datetime.timedelta(hours=args.hours)
    if args.hours <= 0:
        raise CLIError(f"--hours {args.hours}: must be positive")
    if args.from_config:
        try:
            c = ConfigContainer.load(_read(args.from_config, "--from-config"), strict=False).v1alpha1
        except ConfigErrors as exc:
            raise CLIError(f"--from-config {args.from_config!r}: {exc}") from None
        if c is None:
            raise CLIError(f"--from-config {args.from_config!r}: no v1alpha1 document")
        if not c.cluster.ca.key:
            raise CLIError(f"--from-config {args.from_config!r}: cluster.ca.key is empty "
                           "(a worker config?): expected a control-plane config holding the Kubernetes CA key")
        try:
            pair = c.cluster.ca.to_pair()
        except ValueError as exc:
            raise CLIError(f"--from-config {args.from_config!r}: cluster.ca.{exc}") from None
        endpoint = args.endpoint or c.cluster.control_plane.endpoint
        cluster = args.cluster or c.cluster.cluster_name or "kos"
    else:
        try:
            bundle = SecretsBundle.load(_read(args.secrets, "--secrets"))
        except ConfigErrors as exc:
            raise CLIError(f"--secrets {args.secrets!r}: {exc}") from None
        if not args.endpoint:
            raise CLIError("--secrets: --endpoint URL is required (the bundle does not hold the endpoint)")
        pair = bundle.certs.k8s.to_pair()
        endpoint, cluster = args.endpoint, args.cluster or "kos"
    try:
        return admin_kubeconfig(cluster=cluster, endpoint=endpoint, ca_cert_pem=pair.cert_pem.decode(),
                                ca_key_pem=pair.key_pem.decode(), ttl=ttl)
    except ValueError as exc:
        raise CLIError(f"--endpoint {endpoint!r}: {exc}") from None


def _remote(args: argparse.Namespace) -> str:
    from kos.apis.client import GrpcState
    from kos.resources.core import NotFoundError
    from kos.resources.pki import render_kubeconfig
    from kos.resources.secrets import K8S_CERTS, K8S_CERTS_ID

    t = common.target(args)
    node = t.labels()[0]

    async def main() -> Any:
        conn = t.connect()
        try:
            return (await GrpcState(conn, node=node).get(K8S_CERTS.pointer(K8S_CERTS_ID))).spec
        finally:
            conn.close()

    try:
        spec = common.run(main)
    except NotFoundError:
        raise CLIError(f"{t.label(node)}: no Kubernetes certificates (KubernetesCerts k8s-certs): "
                       "is it a control-plane node with a config applied?") from None
    if not getattr(spec, "admin_cert", ""):
        raise CLIError(f"{t.label(node)}: KubernetesCerts k8s-certs has no admin certificate yet")
    endpoint = args.endpoint or spec.endpoint
    try:
        return render_kubeconfig(cluster=args.cluster or spec.cluster_name or "kos", server=endpoint,
                                 ca_pem=spec.ca_cert, user="admin", client_cert_pem=spec.admin_cert,
                                 client_key_pem=spec.admin_key)
    except ValueError as exc:
        raise CLIError(f"endpoint {endpoint!r}: {exc}") from None


def merge(existing: str, new: str) -> str:
    """``new``'s cluster/user/context replace same-named entries of ``existing``; current
    context switches to ``new``'s."""
    import yaml

    old = yaml.safe_load(existing) or {}
    if not isinstance(old, dict):
        raise CLIError("--merge: the existing file is not a kubeconfig mapping")
    add = yaml.safe_load(new)
    for section in ("clusters", "users", "contexts"):
        entries = [e for e in old.get(section) or [] if e.get("name") not in {n["name"] for n in add[section]}]
        old[section] = entries + add[section]
    old.setdefault("apiVersion", "v1")
    old.setdefault("kind", "Config")
    old["current-context"] = add["current-context"]
    return str(yaml.safe_dump(old, sort_keys=False))


def run(args: argparse.Namespace) -> int:
    if args.force and args.merge:
        raise CLIError("--force and --merge: choose one")
    if args.from_config and args.secrets:
        raise CLIError("--from-config and --secrets: choose one")
    text = _local(args) if (args.from_config or args.secrets) else _remote(args)
    if args.path == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.path).expanduser()
    if path.exists():
        if args.merge:
            text = merge(_read(str(path), "PATH"), text)
        elif not args.force:
            raise CLIError(f"{path}: exists; use --force to overwrite or --merge to merge")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    print(f"wrote {path}", file=sys.stderr)
    return 0
