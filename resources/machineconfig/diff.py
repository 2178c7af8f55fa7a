"""Config diff for dry runs: a unified diff of the redacted, normalised YAML of two configs
(secrets never appear in a diff; a changed secret shows as a changed ``******`` line only
when its presence changes)."""

from __future__ import annotations

import difflib

from kos.resources.machineconfig.container import ConfigContainer


def config_diff(old: ConfigContainer | None, new: ConfigContainer, *, redact: bool = True) -> str:
    """Unified diff text; empty when the configs are equal."""
    def text(c: ConfigContainer | None) -> list[str]:
        if c is None:
            return []
        return (c.redacted() if redact else c).to_yaml().splitlines(keepends=True)

    return "".join(difflib.unified_diff(text(old), text(new), fromfile="current", tofile="new"))


def secrets_changed(old: ConfigContainer, new: ConfigContainer) -> bool:
    """True when the configs differ only in ways redaction hides (e.g. a rotated key)."""
    return old.to_yaml() != new.to_yaml() and old.redacted().to_yaml() == new.redacted().to_yaml()
