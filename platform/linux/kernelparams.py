"""Kernel parameters as files: sysctls below ``/proc/sys`` and sysfs attributes below ``/sys``.

``param_path(key, sysfs=False)`` turns a config key into a path relative to the root
(``net.ipv4.ip_forward`` -> ``proc/sys/net/ipv4/ip_forward``; a key containing ``/`` is taken
as a path, so an interface name with dots can be written ``net/ipv4/conf/eth0.100/rp_filter``);
it refuses keys that could leave the tree. ``read_param``/``write_param`` are blocking (call
them from a worker thread); ``/proc/sys/net`` is the network namespace of the calling thread.
"""

from __future__ import annotations

import os
import re

_KEY = re.compile(r"^[A-Za-z0-9_.:/@+-]+$")
MAX_VALUE = 4096


class KernelParamError(ValueError):
    """A key or value that is not a kernel parameter."""


def param_path(key: str, *, sysfs: bool = False) -> str:
    """The parameter's path relative to the root (``proc/sys/...`` or ``sys/...``)."""
    if not key or len(key) > 256 or not _KEY.match(key):
        raise KernelParamError(f"{key!r} is not a kernel parameter name (letters, digits, . _ - / :)")
    parts = key.strip("/").split("/") if "/" in key else key.split(".")
    if any(p in ("", ".", "..") for p in parts):
        raise KernelParamError(f"{key!r}: empty, '.' or '..' path components are not allowed")
    return "/".join(["sys" if sysfs else "proc/sys", *parts])


def _full(root: str, rel: str) -> str:
    return os.path.join(root, rel)


def exists(root: str, rel: str) -> bool:
    return os.path.isfile(_full(root, rel))


def read_param(root: str, rel: str) -> str:
    """The current value, whitespace-normalised (``32768\\t60999`` -> ``32768 60999``)."""
    with open(_full(root, rel), "rb") as f:
        data = f.read(MAX_VALUE)
    return " ".join(data.decode(errors="replace").split())


def write_param(root: str, rel: str, value: str) -> None:
    """Write ``value`` with one write(2), as sysctl(8) does; OSError from the kernel propagates."""
    if len(value) > MAX_VALUE or "\n" in value.strip():
        raise KernelParamError(f"value {value[:40]!r}: expected one line of at most {MAX_VALUE} bytes")
    fd = os.open(_full(root, rel), os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.strip().encode())
    finally:
        os.close(fd)


_SELECTED = re.compile(r"\[([^\]]*)\]")


def selected(value: str) -> str:
    """A sysfs choice attribute reads ``always madvise [never]``: the bracketed one is in effect."""
    m = _SELECTED.search(value)
    return m.group(1) if m else value


def same_value(current: str, wanted: str) -> bool:
    return selected(current).split() == wanted.split()
