"""``kosctl image``: the boot image on this machine, no API involved.

* ``build [ARGS...]``: run ``rootfs-build/build`` of this kos checkout (arguments passed on);
* ``disk --rootfs FILE --out FILE [--size MiB]``: a raw system disk with the kos layout;
* ``install DISK --rootfs FILE``: write the rootfs into BOOT-A of a disk (device or image
  file) with the kos layout and reset META;
* ``upgrade DISK --rootfs FILE [--tries N]``: write the inactive slot and stage it;
* ``rollback DISK``: boot the other slot next;  ``status DISK``: the slots in META.

See docs/image.md.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kos.apis.kosctl.errors import CLIError

MiB = 1 << 20


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("image", help="build the boot image, write system disks, switch A/B slots (local)")
    isub = p.add_subparsers(dest="image_command", metavar="SUBCOMMAND")
    b = isub.add_parser("build", help="run rootfs-build/build of this checkout (arguments passed on)")
    b.add_argument("build_args", nargs=argparse.REMAINDER, help="arguments for rootfs-build/build")
    b.set_defaults(func=run_build)
    d = isub.add_parser("disk", help="write a raw system disk with the kos layout and the rootfs in BOOT-A")
    d.add_argument("--rootfs", type=Path, required=True, help="rootfs squashfs (rootfs.sqsh)")
    d.add_argument("--out", type=Path, required=True, help="disk image file to create")
    d.add_argument("--size", type=int, default=2048, help="disk size in MiB (default 2048)")
    d.set_defaults(func=run_disk)
    for name, text in (("install", "write the rootfs into BOOT-A of DISK and reset META"),
                       ("upgrade", "write the rootfs into the inactive slot of DISK and boot it next")):
        c = isub.add_parser(name, help=text)
        c.add_argument("disk", help="block device or disk image file with the kos layout")
        c.add_argument("--rootfs", type=Path, required=True, help="rootfs squashfs")
        if name == "upgrade":
            c.add_argument("--tries", type=int, default=1, help="boots the new slot gets to confirm (default 1)")
        c.set_defaults(func=run_install if name == "install" else run_upgrade)
    r = isub.add_parser("rollback", help="boot the other slot of DISK next")
    r.add_argument("disk")
    r.set_defaults(func=run_rollback)
    s = isub.add_parser("status", help="show the boot slots recorded in DISK's META")
    s.add_argument("disk")
    s.set_defaults(func=run_status)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _print_state(state: object) -> None:
    active = getattr(state, "active", "?")
    fallback = getattr(state, "fallback", "")
    tries = getattr(state, "tries", 0)
    print(f"active: {active}")
    print(f"fallback: {fallback or '-'}" + (f" (tries left: {tries})" if fallback else ""))


def run_build(args: argparse.Namespace) -> int:
    script = Path(__file__).resolve().parents[3] / "rootfs-build" / "build"
    if not script.is_file():
        raise CLIError(f"{script}: not found; 'kosctl image build' works from a kos source checkout")
    os.execv(str(script), [str(script), *args.build_args])
    return 1  # not reached


def run_disk(args: argparse.Namespace) -> int:
    from kos.platform.image import install, layout

    if args.size < 1:
        raise CLIError(f"--size {args.size}: expected a positive number of MiB")
    try:
        parts = layout.plan(args.size * MiB)
        install.check_rootfs(args.rootfs, layout.find(parts, "BOOT-A").size)
        layout.write_image(args.out, args.rootfs, args.size * MiB)
    except (ValueError, OSError) as exc:
        raise CLIError(f"disk {args.out}: {exc}") from None
    for p in parts:
        print(f"{p.number}  {p.label:<10} {p.start // MiB:>6} MiB  {p.size // MiB:>6} MiB")
    return 0


def _disk_op(fn_name: str, args: argparse.Namespace, *extra: object) -> object:
    from kos.platform.image import install, meta

    fn = getattr(install, fn_name)
    try:
        return fn(args.disk, *extra)
    except (install.InstallError, meta.MetaError) as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:
        raise CLIError(f"{args.disk}: {exc.strerror or exc}") from None


def run_install(args: argparse.Namespace) -> int:
    _print_state(_disk_op("install", args, args.rootfs))
    return 0


def run_upgrade(args: argparse.Namespace) -> int:
    if args.tries < 1:
        raise CLIError(f"--tries {args.tries}: expected at least 1")
    _print_state(_disk_op("upgrade", args, args.rootfs, args.tries))
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    _print_state(_disk_op("rollback", args))
    return 0


def run_status(args: argparse.Namespace) -> int:
    _print_state(_disk_op("status", args))
    return 0
