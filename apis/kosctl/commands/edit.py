"""``kosctl edit machineconfig`` and ``kosctl patch machineconfig``: change the machine config
of running nodes.

Both read the node's current config (``MachineConfigs(config/v1alpha1)``, os:admin: it holds
secrets), build the new one (``edit``: in ``$VISUAL``/``$EDITOR``, default ``vi``; ``patch``:
strategic-merge or JSON 6902 patches as for ``kosctl machineconfig patch``), check it locally
and send it with ApplyConfiguration in the chosen ``--mode``; ``--dry-run`` prints the node's
diff (secrets redacted) and changes nothing. ``edit`` reopens the editor with the error on top
when the text does not load, and stops without a change when it is left as it was (or emptied).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError

if TYPE_CHECKING:
    from kos.resources.machineconfig import Patch

MODES = {"auto": 0, "no-reboot": 1, "reboot": 2, "staged": 3, "try": 4}
TARGETS = ("machineconfig", "machineconfigs", "mc")
MAX_ATTEMPTS = 10  # editor rounds for a config that does not load

EDIT_EXAMPLES = """examples:
  kosctl edit machineconfig -n 10.5.0.2
  EDITOR=nano kosctl edit mc --mode no-reboot
  kosctl edit mc --dry-run             show the diff, apply nothing
"""
PATCH_EXAMPLES = """examples:
  kosctl patch machineconfig -p @patch.yaml
  kosctl patch mc -p '{"machine": {"network": {"hostname": "w1"}}}' --mode no-reboot
  kosctl patch mc -p '[{"op": "add", "path": "/machine/sysctls", "value": {"vm.max_map_count": "262144"}}]'
  kosctl patch mc -p @patch.yaml --dry-run -n a,b
"""
HEADER = (
    "# Editing the machine config of node {node}. Lines starting with '#' are ignored;\n"
    "# an unchanged or empty file cancels the edit. The config is applied with mode {mode}.\n"
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("resource", metavar="machineconfig", choices=TARGETS, help="what to change (machineconfig)")
    p.add_argument("-m", "--mode", default="auto", help=f"how to apply: {', '.join(MODES)} (default auto)")
    p.add_argument("--timeout", help="with --mode try: how long before the change is rolled back (default 1m)")
    p.add_argument("--dry-run", action="store_true", help="print the diff on each node, apply nothing")
    common.add_target_args(p)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    e = sub.add_parser("edit", help="edit a node's machine config in $EDITOR and apply it", epilog=EDIT_EXAMPLES,
                       formatter_class=fmt)
    _common(e)
    e.set_defaults(func=run_edit)
    p = sub.add_parser("patch", help="patch the nodes' machine config and apply it", epilog=PATCH_EXAMPLES,
                       formatter_class=fmt)
    _common(p)
    p.add_argument("-p", "--patch", action="append", default=[], required=True,
                   help="patch: inline YAML/JSON or @file; strategic merge or a JSON 6902 list (repeatable)")
    p.set_defaults(func=run_patch)


def _mode(args: argparse.Namespace) -> tuple[int, float]:
    if args.mode not in MODES:
        raise CLIError(f"--mode {args.mode!r}: expected one of {', '.join(MODES)}")
    if args.timeout and args.mode != "try":
        raise CLIError("--timeout is only meaningful with --mode try")
    timeout = common.parse_duration(args.timeout, "--timeout") if args.timeout else 60.0
    return MODES[args.mode], timeout if args.mode == "try" else 0.0


async def current_config(conn: common.Connection, node: str | None) -> str:
    """The node's active machine config (YAML text)."""
    from kos.apis.client import GrpcState
    from kos.resources.config import ACTIVE_ID, NAMESPACE, MachineConfigSpec
    from kos.resources.core import NotFoundError, Pointer

    from .get import _api_error

    st = GrpcState(conn, node=node, registry=None)
    try:
        r = await st.get(Pointer(NAMESPACE, MachineConfigSpec.definition.type, ACTIVE_ID))
    except NotFoundError:
        raise CLIError(f"{node or conn.endpoint}: the node has no machine config yet: "
                       "use kosctl apply-config --insecure -f FILE") from None
    except Exception as exc:
        raise _api_error(exc, node or conn.endpoint) from None
    import yaml

    doc = yaml.safe_load(getattr(r.spec, "yaml", "") or "{}")
    text = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise CLIError(f"{node or conn.endpoint}: the node's MachineConfig carries no config text")
    return text


async def send(conn: common.Connection, node: str | None, label: str, data: bytes, mode: int, try_timeout: float,
               dry_run: bool) -> None:
    from kos.apis import auth
    from kos.apis.gen.kos import machine as pb

    req = pb.ApplyConfigurationRequest(
        data=data, mode=pb.ApplyConfigurationRequestMode(mode), dry_run=dry_run, try_timeout=try_timeout,
    )
    resp = pb.ApplyConfigurationResponse().parse(
        await conn.unary(auth.MACHINE + "ApplyConfiguration", bytes(req), node=node)
    )
    for w in resp.warnings:
        print(f"{label}: warning: {w}", file=sys.stderr, flush=True)
    print(f"{label}: {resp.mode_details}" + (f"\n{resp.diff}" if dry_run else ""), flush=True)


def _load(text: str) -> None:
    from kos.resources.machineconfig import ConfigContainer, ConfigErrors

    try:
        ConfigContainer.load(text)
    except ConfigErrors as exc:
        raise ValueError(str(exc)) from None


def patch_text(text: str, patches: list[Patch]) -> str:
    from kos.resources.machineconfig import ConfigContainer, ConfigErrors, PatchError, apply_patches

    try:
        container = ConfigContainer.load(text)
        return ConfigContainer.from_data(apply_patches(container.to_data(), patches)).to_yaml()
    except (ConfigErrors, PatchError) as exc:
        raise CLIError(str(exc)) from None


def run_patch(args: argparse.Namespace) -> int:
    from .machineconfig import load_patches

    mode, try_timeout = _mode(args)
    patches = load_patches(args.patch)
    t = common.target(args)

    async def call(conn: common.Connection, node: str | None) -> None:
        label = t.label(node)
        new = patch_text(await current_config(conn, node), patches)
        await send(conn, node, label, new.encode(), mode, try_timeout, args.dry_run)

    return common.run(lambda: common.fan_out(t, call))


def _strip(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("#"))


def edit_text(original: str, label: str, mode: str) -> str | None:
    """Run the editor until the text loads; None when the edit is cancelled."""
    import os
    import shlex
    import subprocess
    import tempfile

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    body = original
    error = ""
    with tempfile.TemporaryDirectory(prefix="kosctl-edit-") as tmp:
        path = os.path.join(tmp, "machineconfig.yaml")
        for _attempt in range(MAX_ATTEMPTS):
            head = HEADER.format(node=label, mode=mode)
            if error:
                head += "#\n# The edited config does not load:\n" + "".join(
                    f"#   {line}\n" for line in error.splitlines()[:40]) + "#\n"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds secrets
            with os.fdopen(fd, "w") as f:
                f.write(head + body)
            try:
                rc = subprocess.call([*shlex.split(editor), path])
            except OSError as exc:
                raise CLIError(f"editor {editor!r}: {exc.strerror or exc}: set $EDITOR to an editor") from None
            if rc != 0:
                raise CLIError(f"editor {editor!r} exited with {rc}: nothing applied")
            with open(path) as f:
                edited = _strip(f.read())
            if not edited.strip() or edited == _strip(original):
                return None
            try:
                _load(edited)
            except ValueError as exc:
                if edited == body:  # saved again without fixing it
                    raise CLIError(f"the edited config does not load: {exc}") from None
                body, error = edited, str(exc)
                continue
            return edited
        raise CLIError(f"the edited config still does not load after {MAX_ATTEMPTS} attempts: {error}")


def run_edit(args: argparse.Namespace) -> int:
    mode, try_timeout = _mode(args)
    t = common.target(args)
    rc = 0
    for node in t.labels():  # one node after another: the editor is interactive

        async def one(node: str | None = node) -> int:
            label = t.label(node)
            async with t.connect() as conn:
                text = await current_config(conn, node)
                import anyio

                edited = await anyio.to_thread.run_sync(edit_text, text, label, args.mode)
                if edited is None:
                    print(f"{label}: edit cancelled, no changes made", file=sys.stderr, flush=True)
                    return 0
                await send(conn, node, label, edited.encode(), mode, try_timeout, args.dry_run)
                return 0

        rc |= common.run(one)
    return rc
