"""``machine_file_apply_controller(root=)``: MachineFileSpecs (``machine.files``) -> files below the
node's root -> MachineFileStatuses (``sha256`` of the file as written).

Every write is atomic (a temporary file in the same directory, fsync, rename): a reader sees
the old or the new content, never half. ``create`` makes the file hold ``content`` (created or
replaced); ``overwrite`` replaces a file that must already exist; ``append`` adds ``content``
once (a file that already ends with it is left alone, so reconciling again does not append
twice). ``permissions`` are set on the result. Paths stay below ``<root>/var`` even through
symlinks. Files are left in place when the spec goes (as Talos: /var is the node's data).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import anyio

from kos.controllers.runtime import Access, TransformController, transform
from kos.resources.core import Resource
from kos.resources.machineconfig import atomic_write
from kos.resources.runtime import MachineFileSpecSpec, MachineFileStatusSpec

ALLOWED_ROOT = "var"


class FileOpError(Exception):
    pass


def write_machine_file(root: str, spec: MachineFileSpecSpec) -> str:
    """Apply ``spec`` below ``root``; returns the sha256 of the file afterwards (blocking)."""
    base = os.path.realpath(os.path.join(root, ALLOWED_ROOT))
    target = os.path.join(root, spec.path.lstrip("/"))
    parent = os.path.dirname(target)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    real_parent = os.path.realpath(parent)
    if real_parent != base and not real_parent.startswith(base + os.sep):
        raise FileOpError(f"{spec.path}: its directory resolves outside /{ALLOWED_ROOT} ({real_parent})")
    real = os.path.join(real_parent, os.path.basename(target))
    if os.path.islink(real) or os.path.isdir(real):
        raise FileOpError(f"{spec.path}: is a symlink or a directory")
    content = spec.content.encode()
    exists = os.path.isfile(real)
    if spec.op == "overwrite" and not exists:
        raise FileOpError(f"{spec.path}: op overwrite needs an existing file (use op create)")
    current = Path(real).read_bytes() if exists else b""
    if spec.op == "append":
        data = current if content and current.endswith(content) else current + content
    else:
        data = content
    if data != current or not exists:
        atomic_write(real, data, mode=spec.permissions)
    os.chmod(real, spec.permissions)
    return hashlib.sha256(data).hexdigest()


def machine_file_apply_controller(*, root: str = "/") -> TransformController[MachineFileSpecSpec,
                                                                               MachineFileStatusSpec]:
    """MachineFileSpecs -> the files -> MachineFileStatuses (a 1:1 transform; a status whose spec
    went is torn down and destroyed, the file stays)."""

    async def write(rt: Access, inp: Resource[MachineFileSpecSpec], out: Resource[MachineFileStatusSpec]) -> None:
        s = inp.spec
        try:
            digest = await anyio.to_thread.run_sync(write_machine_file, root, s)
        except (OSError, FileOpError) as exc:
            rt.logger.warning("machine file not written", path=s.path, error=str(exc))
            out.spec = MachineFileStatusSpec(state="failed", reason=f"{s.source}: {exc}", path=s.path)
            return
        out.spec = MachineFileStatusSpec(state="applied", sha256=digest, path=s.path)

    return transform("system.MachineFileApplyController", MachineFileSpecSpec, MachineFileStatusSpec, write)
