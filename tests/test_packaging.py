"""Every Python package folder in the kos tree is listed in pyproject.toml, so a non-editable
install (the image build) ships all of kos, not only what an editable install happens to find."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPS = {"machined": "kos.machined", "controllers": "kos.controllers", "resources": "kos.resources",
        "apis": "kos.apis", "platform": "kos.platform"}


def package_folders() -> set[str]:
    found: set[str] = set()
    for folder, name in TOPS.items():
        base = ROOT / folder
        found.add(name)
        for init in base.rglob("*.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(base)
            if rel.parts:
                found.add(".".join((name, *rel.parts)))
    return found


def test_every_package_folder_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    missing = package_folders() - listed
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    stale = listed - package_folders()
    assert not stale, f"listed in pyproject.toml but not in the tree: {sorted(stale)}"


def test_platform_is_a_namespace_package() -> None:
    assert not (ROOT / "platform" / "__init__.py").exists()
