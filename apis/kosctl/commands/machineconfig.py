"""``kosctl machineconfig patch FILE --patch P``: apply strategic-merge or JSON 6902 patches to
a machine config file offline and print (or write) the result; ``kosctl machineconfig diff
OLD NEW``: the redacted diff and which changes need a reboot. Also the helpers other
commands use to read patch arguments (``@file`` or inline YAML/JSON)."""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from kos.apis.kosctl.errors import CLIError

if typing.TYPE_CHECKING:
    from kos.resources.machineconfig import Patch


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("machineconfig", aliases=["mc"], help="work with machine config files offline")
    msub = p.add_subparsers(dest="mc_command", metavar="SUBCOMMAND")
    pp = msub.add_parser("patch", help="patch a machine config file and print the result")
    pp.add_argument("file", help="machine config file")
    pp.add_argument("-p", "--patch", action="append", default=[], required=True,
                    help="patch: inline YAML/JSON or @file; strategic merge or a JSON 6902 list (repeatable)")
    pp.add_argument("-o", "--output", help="write the result to this file instead of stdout")
    pp.add_argument("--no-strict", action="store_true", help="tolerate unknown fields (warnings) in the result")
    pp.set_defaults(func=run_patch)
    dp = msub.add_parser("diff", help="show what changes between two machine config files (secrets redacted)")
    dp.add_argument("old", help="current machine config file")
    dp.add_argument("new", help="new machine config file")
    dp.set_defaults(func=run_diff)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def read_text(path: str, what: str) -> str:
    """The file as text: at most a config's worth of bytes (``MAX_CONFIG_BYTES``), UTF-8;
    anything else is a clean CLI error naming the file."""
    from kos.resources.machineconfig import MAX_CONFIG_BYTES, ConfigErrors, decode_text

    try:
        with Path(path).open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise CLIError(f"{what} {path!r}: {exc.strerror or exc}") from exc
    try:
        return decode_text(data, what=f"{what} {path}")
    except ConfigErrors as exc:
        raise CLIError(str(exc)) from exc


def load_patches(args: list[str]) -> list[Patch]:
    """Parse ``--config-patch``-style arguments: ``@file`` or inline YAML/JSON."""
    from kos.resources.machineconfig import PatchError, parse_patch

    out: list[Patch] = []
    for arg in args:
        source, text = (arg[1:], read_text(arg[1:], "patch file")) if arg.startswith("@") else ("inline patch", arg)
        try:
            out.append(parse_patch(text, source=source))
        except PatchError as exc:
            raise CLIError(str(exc)) from exc
    return out


def run_patch(args: argparse.Namespace) -> int:
    from kos.resources.machineconfig import ConfigContainer, ConfigErrors, PatchError, apply_patches

    text = read_text(args.file, "config file")
    patches = load_patches(args.patch)
    try:
        container = ConfigContainer.load(text, strict=not args.no_strict)
        patched = ConfigContainer.from_data(apply_patches(container.to_data(), patches), strict=not args.no_strict)
    except (ConfigErrors, PatchError) as exc:
        raise CLIError(str(exc)) from exc
    for w in patched.warnings:
        print(f"warning: {w}", file=sys.stderr)
    out = patched.to_yaml()
    if args.output:
        Path(args.output).write_text(out)
    else:
        sys.stdout.write(out)
    return 0


def run_diff(args: argparse.Namespace) -> int:
    from kos.resources.machineconfig import ConfigContainer, ConfigErrors, changed_paths, config_diff, reboot_required

    try:
        old = ConfigContainer.load(read_text(args.old, "config file"))
        new = ConfigContainer.load(read_text(args.new, "config file"))
    except ConfigErrors as exc:
        raise CLIError(str(exc)) from exc
    sys.stdout.write(config_diff(old, new))
    changed = changed_paths(old, new)
    reboot = reboot_required(old, new)
    print(f"changed: {', '.join(changed) or 'nothing'}")
    print(f"reboot required: {', '.join(reboot) if reboot else 'no'}")
    return 0
