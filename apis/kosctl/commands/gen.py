"""``kosctl gen``: ``config`` (secrets bundle, controlplane.yaml, worker.yaml, kosconfig),
``secrets`` (secrets.yaml), and the PKI helpers ``ca``, ``key``, ``csr``, ``crt``."""

from __future__ import annotations

import argparse
import datetime
import os
import typing
from pathlib import Path

from kos.apis.kosctl.errors import CLIError
from kos.resources.versions import KUBERNETES_VERSION

if typing.TYPE_CHECKING:
    from kos.resources.machineconfig import SecretsBundle


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("gen", help="generate configs, secrets, keys and certificates")
    gsub = p.add_subparsers(dest="gen_command", metavar="SUBCOMMAND")

    c = gsub.add_parser("config", help="generate controlplane.yaml, worker.yaml and kosconfig")
    c.add_argument("cluster_name", metavar="NAME", help="cluster name")
    c.add_argument("endpoint", metavar="ENDPOINT", help="Kubernetes API endpoint, e.g. https://10.5.0.2:6443")
    c.add_argument("--with-secrets", metavar="FILE", help="use this secrets bundle instead of generating one")
    c.add_argument("--config-patch", action="append", default=[], metavar="PATCH",
                   help="patch for all configs: inline YAML/JSON or @file (repeatable)")
    c.add_argument("--config-patch-control-plane", action="append", default=[], metavar="PATCH",
                   help="patch for controlplane.yaml only (repeatable)")
    c.add_argument("--config-patch-worker", action="append", default=[], metavar="PATCH",
                   help="patch for worker.yaml only (repeatable)")
    c.add_argument("--additional-sans", action="append", default=[], metavar="SANS",
                   help="extra certificate SANs, comma-separated (repeatable)")
    c.add_argument("--kubernetes-version", default=None,
                   help=f"Kubernetes version (default {KUBERNETES_VERSION.removeprefix('v')})")
    c.add_argument("--install-disk", default="/dev/sda", help="install disk (default /dev/sda)")
    c.add_argument("--install-image", default=None, help="installer image")
    c.add_argument("-o", "--output-dir", default=".", help="output directory (default .)")
    c.add_argument("--force", action="store_true", help="overwrite existing files")
    c.set_defaults(func=run_config)

    s = gsub.add_parser("secrets", help="generate a secrets bundle")
    s.add_argument("-o", "--output-file", default="secrets.yaml", help="output file (default secrets.yaml)")
    s.add_argument("--force", action="store_true", help="overwrite an existing file")
    s.set_defaults(func=run_secrets)

    ca = gsub.add_parser("ca", help="generate a self-signed CA: ORG.crt and ORG.key")
    ca.add_argument("--organization", required=True, help="CA organization (also the file name)")
    ca.add_argument("--hours", type=int, default=87600, help="validity in hours (default 87600)")
    ca.add_argument("--key-type", default="ecdsa", choices=["ecdsa", "ed25519", "rsa"], help="key type")
    ca.set_defaults(func=run_ca)

    k = gsub.add_parser("key", help="generate a private key: NAME.key")
    k.add_argument("--name", required=True, help="file name (without .key)")
    k.add_argument("--key-type", default="ecdsa", choices=["ecdsa", "ed25519", "rsa"], help="key type")
    k.set_defaults(func=run_key)

    r = gsub.add_parser("csr", help="generate a certificate signing request for a key: NAME.csr")
    r.add_argument("--key", required=True, help="private key file (NAME.key)")
    r.add_argument("--ip", action="append", default=[], help="IP SAN (repeatable)")
    r.add_argument("--dns", action="append", default=[], help="DNS SAN (repeatable)")
    r.add_argument("--roles", default="os:admin", help="roles, comma-separated (certificate O)")
    r.add_argument("--common-name", default=None, help="subject CN (default: the key's file name)")
    r.set_defaults(func=run_csr)

    t = gsub.add_parser("crt", help="sign a CSR with a CA: NAME.crt")
    t.add_argument("--ca", required=True, help="CA path without extension (reads CA.crt and CA.key)")
    t.add_argument("--csr", required=True, help="CSR file")
    t.add_argument("--name", required=True, help="file name (without .crt)")
    t.add_argument("--hours", type=int, default=24, help="validity in hours (default 24)")
    t.add_argument("--server", action="store_true", help="server certificate (default: client)")
    t.set_defaults(func=run_crt)

    p.set_defaults(func=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _write(path: Path, data: str | bytes, *, force: bool, secret: bool = True) -> None:
    """Write a file (0600 for secrets); refuses to overwrite unless ``force``."""
    if path.exists() and not force:
        raise CLIError(f"{path}: already exists (use --force to overwrite)")
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _hours(h: int) -> datetime.timedelta:
    if h <= 0:
        raise CLIError(f"--hours: {h} is invalid, expected a positive number of hours")
    return datetime.timedelta(hours=h)


def run_config(args: argparse.Namespace) -> int:
    from kos.apis.kosctl.commands.machineconfig import load_patches, read_text
    from kos.resources import machineconfig as mc

    bundle = _load_bundle(read_text(args.with_secrets, "secrets file")) if args.with_secrets else None
    sans = [s.strip() for arg in args.additional_sans for s in arg.split(",") if s.strip()]
    opts = mc.GenOptions(cluster_name=args.cluster_name, endpoint=args.endpoint, install_disk=args.install_disk,
                         additional_sans=sans)
    if args.kubernetes_version:
        opts.kubernetes_version = args.kubernetes_version
    if args.install_image:
        opts.install_image = args.install_image
    patches = load_patches(args.config_patch)
    cp_patches = load_patches(args.config_patch_control_plane)
    wk_patches = load_patches(args.config_patch_worker)
    out = Path(args.output_dir)
    names = ["controlplane.yaml", "worker.yaml", "kosconfig"] + ([] if bundle else ["secrets.yaml"])
    if not args.force:
        for n in names:
            if (out / n).exists():
                raise CLIError(f"{out / n}: already exists (use --force to overwrite)")
    if bundle is None:
        bundle = mc.SecretsBundle.generate()
    try:
        gen = mc.generate(opts, bundle, patches=patches, controlplane_patches=cp_patches, worker_patches=wk_patches)
        for name, cfg in (("controlplane.yaml", gen.controlplane), ("worker.yaml", gen.worker)):
            try:
                cfg.validate("cloud")
            except mc.ConfigErrors as exc:
                raise CLIError(f"generated {name} (after patches) is invalid: {exc}") from exc
    except (mc.GenerateError, mc.PatchError, mc.ConfigErrors) as exc:
        raise CLIError(str(exc)) from exc
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "controlplane.yaml", gen.controlplane.to_yaml(), force=True)
    _write(out / "worker.yaml", gen.worker.to_yaml(), force=True)
    _write(out / "kosconfig", gen.client.to_yaml(), force=True)
    if "secrets.yaml" in names:
        _write(out / "secrets.yaml", bundle.to_yaml(), force=True)
    for n in names:
        print(f"generated {out / n}")
    return 0


def _load_bundle(text: str) -> SecretsBundle:
    from kos.resources.machineconfig import ConfigErrors
    from kos.resources.machineconfig import SecretsBundle as Bundle

    try:
        return Bundle.load(text)
    except ConfigErrors as exc:
        raise CLIError(str(exc)) from exc


def run_secrets(args: argparse.Namespace) -> int:
    from kos.resources.machineconfig import SecretsBundle

    path = Path(args.output_file)
    if path.exists() and not args.force:
        raise CLIError(f"{path}: already exists (use --force to overwrite)")
    _write(path, SecretsBundle.generate().to_yaml(), force=True)
    print(f"generated {path}")
    return 0


def run_ca(args: argparse.Namespace) -> int:
    from kos.resources.pki import generate_ca

    if not args.organization.strip() or "/" in args.organization:
        raise CLIError(f"--organization: {args.organization!r} is invalid, expected a name without '/'")
    ca = generate_ca(args.organization, organization=args.organization, ttl=_hours(args.hours), key_type=args.key_type)
    _write(Path(f"{args.organization}.crt"), ca.cert_pem, force=True, secret=False)
    _write(Path(f"{args.organization}.key"), ca.key_pem, force=True)
    print(f"generated {args.organization}.crt and {args.organization}.key")
    return 0


def run_key(args: argparse.Namespace) -> int:
    from kos.resources.pki import generate_private_key, private_key_pem

    _write(Path(f"{args.name}.key"), private_key_pem(generate_private_key(args.key_type)), force=True)
    print(f"generated {args.name}.key")
    return 0


def run_csr(args: argparse.Namespace) -> int:
    from kos.apis.kosctl.commands.machineconfig import read_text
    from kos.resources.pki import create_csr

    key_path = Path(args.key)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    try:
        csr = create_csr(read_text(args.key, "key file").encode(), common_name=args.common_name or key_path.stem,
                         organizations=roles, dns_names=args.dns, ip_addresses=args.ip)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    out = key_path.with_suffix(".csr")
    _write(out, csr, force=True, secret=False)
    print(f"generated {out}")
    return 0


def run_crt(args: argparse.Namespace) -> int:
    from kos.apis.kosctl.commands.machineconfig import read_text
    from kos.resources.pki import CertificateAndKey, PKIError, sign_csr

    ttl = _hours(args.hours)
    try:
        ca = CertificateAndKey.from_files(f"{args.ca}.crt", f"{args.ca}.key")
        crt = sign_csr(ca, read_text(args.csr, "CSR file").encode(), server=args.server, client=not args.server,
                       ttl=ttl)
    except OSError as exc:
        raise CLIError(f"--ca {args.ca!r}: {exc.strerror or exc} (expected {args.ca}.crt and {args.ca}.key)") from exc
    except (PKIError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    _write(Path(f"{args.name}.crt"), crt, force=True, secret=False)
    print(f"generated {args.name}.crt")
    return 0
