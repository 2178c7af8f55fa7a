"""Storing a machine config on disk so that power loss never leaves a half-written file:
write a temporary file in the same directory, fsync it, rename it over the target, fsync the
directory. Reads load strictly and report the file in errors. A write killed half-way leaves
its temporary file (``.<name>.<pid>.tmp``) behind; ``remove_leftovers`` clears those at boot."""

from __future__ import annotations

import os
import re
from pathlib import Path

from kos.resources.machineconfig.container import ConfigContainer
from kos.resources.machineconfig.errors import ConfigErrors


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically (all or nothing, durable once it returns)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


_LEFTOVER = re.compile(r"^\..+\.[0-9]+\.tmp$")


def remove_leftovers(directory: str | os.PathLike[str]) -> list[str]:
    """Delete the temporary files of interrupted ``atomic_write`` calls in ``directory``
    (``.<name>.<pid>.tmp``; run at boot, when no write is in flight); returns their names."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if _LEFTOVER.match(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed.append(entry.name)
    return sorted(removed)


def save_config(path: str | os.PathLike[str], container: ConfigContainer) -> None:
    """Write the config's stable YAML atomically (mode 0600: it holds secrets)."""
    atomic_write(path, container.to_yaml().encode())


def load_config(path: str | os.PathLike[str], *, strict: bool = True) -> ConfigContainer:
    """Read and parse a stored config; ``FileNotFoundError`` if absent, ``ConfigErrors``
    (naming the file) if it does not load."""
    text = Path(path).read_bytes()
    try:
        return ConfigContainer.load(text, strict=strict)
    except ConfigErrors as exc:
        raise ConfigErrors(exc.errors, what=str(path), dropped=exc.dropped) from exc
