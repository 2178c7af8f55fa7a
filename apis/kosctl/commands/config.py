"""``kosctl config``: the client configuration (kosconfig) — ``info`` (current context),
``contexts`` (all), ``context NAME`` (switch), ``endpoint ADDR...`` / ``node ADDR...`` (set the
current context's endpoints / default nodes), ``merge FILE`` (add another kosconfig's
contexts), ``add NAME --ca --crt --key`` (a context from PEM files), ``remove NAME``."""

from __future__ import annotations

import argparse
from pathlib import Path

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="manage the client configuration (kosconfig)")
    csub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    i = csub.add_parser("info", help="show the current context")
    i.set_defaults(func=run_info)
    c = csub.add_parser("contexts", help="list the contexts")
    c.set_defaults(func=run_contexts)
    x = csub.add_parser("context", help="switch the current context")
    x.add_argument("name", metavar="NAME")
    x.set_defaults(func=run_context)
    e = csub.add_parser("endpoint", aliases=["endpoints"], help="set the current context's endpoints")
    e.add_argument("values", metavar="ADDR", nargs="+")
    e.set_defaults(func=lambda a: _set_list(a, "endpoints"))
    n = csub.add_parser("node", aliases=["nodes"], help="set the current context's default nodes")
    n.add_argument("values", metavar="ADDR", nargs="*")
    n.set_defaults(func=lambda a: _set_list(a, "nodes"))
    m = csub.add_parser("merge", help="merge the contexts of another kosconfig into this one")
    m.add_argument("file", metavar="FILE")
    m.set_defaults(func=run_merge)
    a = csub.add_parser("add", help="add a context from PEM files")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--ca", required=True, help="CA certificate (PEM file)")
    a.add_argument("--crt", required=True, help="client certificate (PEM file)")
    a.add_argument("--key", required=True, help="client key (PEM file)")
    a.add_argument("--endpoints", dest="ctx_endpoints", default="", help="comma-separated endpoints")
    a.set_defaults(func=run_add)
    r = csub.add_parser("remove", help="remove a context")
    r.add_argument("name", metavar="NAME")
    r.set_defaults(func=run_remove)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _cert_info(pem: bytes) -> tuple[str, str]:
    """(roles, expiry) of a client certificate, '' when absent or unreadable."""
    if not pem:
        return "", ""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        crt = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return "(unreadable)", ""
    roles = ", ".join(str(a.value) for a in crt.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return roles, crt.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def run_info(args: argparse.Namespace) -> int:
    cfg = common.load_config(args, missing_ok=False)
    from kos.apis.client import ConfigError

    try:
        name, ctx = cfg.current(getattr(args, "context", None))
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    roles, expires = _cert_info(ctx.crt)
    common.table([
        ["Current context:", name],
        ["Endpoints:", ", ".join(ctx.endpoints) or "not defined"],
        ["Nodes:", ", ".join(ctx.nodes) or "not defined"],
        ["Roles:", roles or "not defined"],
        ["Certificate expires:", expires or "not defined"],
    ])
    return 0


def run_contexts(args: argparse.Namespace) -> int:
    cfg = common.load_config(args)
    rows = [["CURRENT", "NAME", "ENDPOINTS", "NODES"]]
    for name in sorted(cfg.contexts):
        ctx = cfg.contexts[name]
        rows.append(["*" if name == cfg.context else "", name, ",".join(ctx.endpoints), ",".join(ctx.nodes)])
    common.table(rows)
    return 0


def run_context(args: argparse.Namespace) -> int:
    cfg = common.load_config(args, missing_ok=False)
    if args.name not in cfg.contexts:
        raise CLIError(f"context {args.name!r} not found (have: {', '.join(sorted(cfg.contexts)) or 'none'})")
    cfg.context = args.name
    cfg.save()
    print(f"switched to context {args.name!r}")
    return 0


def _set_list(args: argparse.Namespace, key: str) -> int:
    from kos.apis.endpoint import split_endpoint

    for v in args.values:
        try:
            split_endpoint(v, 50000)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    cfg = common.load_config(args, missing_ok=False)
    from kos.apis.client import ConfigError

    try:
        name, ctx = cfg.current(getattr(args, "context", None))
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    setattr(ctx, key, list(args.values))
    cfg.save()
    print(f"context {name!r}: {key} = {', '.join(args.values) or '(none)'}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from kos.apis.client import ClientConfig, ConfigError

    try:
        other = ClientConfig.load(args.file, missing_ok=False)
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    cfg = common.load_config(args)
    added = cfg.merge(other)
    path = cfg.save()
    print(f"merged {', '.join(added) or 'nothing'} into {path}; current context: {cfg.context or '(none)'}")
    return 0


def _read(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"--{what} {path!r}: {exc.strerror or exc}") from None
    if b"-----BEGIN" not in data:
        raise CLIError(f"--{what} {path!r}: not a PEM file")
    return data


def run_add(args: argparse.Namespace) -> int:
    from kos.apis.client import Context

    cfg = common.load_config(args)
    if args.name in cfg.contexts:
        raise CLIError(f"context {args.name!r} already exists (kosctl config remove {args.name} first)")
    cfg.contexts[args.name] = Context(
        endpoints=common.split_list(args.ctx_endpoints),
        ca=_read(args.ca, "ca"), crt=_read(args.crt, "crt"), key=_read(args.key, "key"),
    )
    if not cfg.context:
        cfg.context = args.name
    path = cfg.save()
    print(f"added context {args.name!r} to {path}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    cfg = common.load_config(args, missing_ok=False)
    if args.name not in cfg.contexts:
        raise CLIError(f"context {args.name!r} not found (have: {', '.join(sorted(cfg.contexts)) or 'none'})")
    del cfg.contexts[args.name]
    if cfg.context == args.name:
        cfg.context = ""
    cfg.save()
    print(f"removed context {args.name!r}")
    return 0
