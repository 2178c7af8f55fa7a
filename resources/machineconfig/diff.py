"""Config comparison for apply: a unified diff of the redacted YAML for dry runs (secrets
never appear in a diff), the list of changed YAML paths, and which of those changes need a
reboot to take effect (``apply --mode no-reboot`` must refuse those)."""

from __future__ import annotations

import difflib
from typing import Any

from kos.resources.machineconfig.container import ConfigContainer

# Changes under these v1alpha1 paths only take effect at boot (install/disk layout/kernel/
# role); everything else (network, time, kubelet, files, sysctls, cluster settings, typed
# documents) is applied live by the controllers.
REBOOT_PATHS = (
    "machine.type",
    "machine.install",
    "machine.disks",
    "machine.kernel",
    "machine.systemDiskEncryption",
    "machine.udev",
    "machine.features.diskQuotaSupport",
    "cluster.id",
    "cluster.secret",
    "debug",
)


MAX_DIFF_LINES = 20000


def config_diff(old: ConfigContainer | None, new: ConfigContainer, *, redact: bool = True) -> str:
    """Unified diff text; empty when the configs are equal (or differ only in secrets when
    ``redact``; use ``changed_paths`` to see those)."""

    def text(c: ConfigContainer | None) -> list[str]:
        if c is None:
            return []
        return (c.redacted() if redact else c).to_yaml().splitlines(keepends=True)

    a, b = text(old), text(new)
    if len(a) + len(b) > MAX_DIFF_LINES:
        # difflib is quadratic in the worst case: past this size say what changed instead
        if a == b:
            return ""
        paths = changed_paths(old, new) if old is not None else ["<all>"]
        shown = ", ".join(paths[:50]) + (f" and {len(paths) - 50} more" if len(paths) > 50 else "")
        return (f"--- current\n+++ new\n# {len(a)} -> {len(b)} lines: too large for a line diff "
                f"(limit {MAX_DIFF_LINES}); changed: {shown}\n")
    return "".join(difflib.unified_diff(a, b, fromfile="current", tofile="new"))


def _doc_label(d: dict[str, Any]) -> str:
    if "kind" not in d:
        return ""
    name = d.get("name")
    return f"{d['kind']}[{name}]" if name else str(d["kind"])


def _walk(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(dict.fromkeys([*a, *b])):
            p = f"{path}.{k}" if path else str(k)
            if k not in a or k not in b:
                out.append(p)
            else:
                _walk(a[k], b[k], p, out)
    elif a != b:
        out.append(path)


def changed_paths(old: ConfigContainer, new: ConfigContainer) -> list[str]:
    """YAML paths whose value differs (lists compare whole); typed documents appear as
    ``Kind[name].field`` or just ``Kind[name]`` when added/removed."""
    out: list[str] = []
    olds = {_doc_label(d): d for d in old.to_data()}
    news = {_doc_label(d): d for d in new.to_data()}
    for label in dict.fromkeys([*olds, *news]):
        if label not in olds or label not in news:
            out.append(label or "<v1alpha1>")
        else:
            _walk(olds[label], news[label], label, out)
    return out


def reboot_required(old: ConfigContainer, new: ConfigContainer) -> list[str]:
    """The changed paths that only take effect after a reboot (empty: apply live)."""
    return [p for p in changed_paths(old, new) if any(p == r or p.startswith(r + ".") for r in REBOOT_PATHS)]
