"""``kosctl validate --config FILE --mode metal|cloud|container``: load a machine config
strictly and validate it for a runtime mode, listing every error with its YAML path."""

from __future__ import annotations

import argparse
import sys

from kos.apis.kosctl.errors import CLIError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="validate a machine config file")
    p.add_argument("-c", "--config", required=True, help="machine config file")
    p.add_argument("-m", "--mode", required=True, choices=["metal", "cloud", "container"], help="runtime mode")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument("--no-strict-fields", action="store_true", help="unknown fields are warnings, not errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kos.apis.kosctl.commands.machineconfig import read_text
    from kos.resources.machineconfig import ConfigContainer, ConfigErrors

    text = read_text(args.config, "config file")
    try:
        container = ConfigContainer.load(text, strict=not args.no_strict_fields)
        warnings = container.validate(args.mode)
    except ConfigErrors as exc:
        raise CLIError(str(ConfigErrors(exc.errors, what=args.config, dropped=exc.dropped))) from exc
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if warnings and args.strict:
        raise CLIError(f"{args.config}: {len(warnings)} warning(s) in strict mode")
    print(f"{args.config} is valid for {args.mode} mode")
    return 0
