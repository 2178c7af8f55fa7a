"""Lazy package surfaces (kos.resources.lazy): every public name of a lazy package resolves to
the object its submodule defines, also after every submodule has been imported (a submodule
named like a surface attribute - machineconfig.generate - must not replace it), and importing
the package alone loads none of the submodules behind its surface."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

LAZY = [
    "kos.resources.core", "kos.resources.machineconfig", "kos.resources.pki", "kos.apis.client",
    "kos.controllers.runtime", "kos.controllers.system", "kos.machined.services", "kos.machined.api",
]


@pytest.mark.parametrize("package", LAZY)
def test_every_surface_name_is_its_submodules_object(package: str) -> None:
    code = f"""
import importlib, json, pkgutil, types
pkg = importlib.import_module({package!r})
for info in pkgutil.iter_modules(pkg.__path__):
    importlib.import_module(pkg.__name__ + "." + info.name)
bad = []
for name in pkg.__all__:
    value = getattr(pkg, name)
    home = pkg._surface_table.get(name)
    if home == "":
        ok = isinstance(value, types.ModuleType)
    elif home is None:
        ok = not isinstance(value, types.ModuleType)
    else:
        ok = value is getattr(importlib.import_module(pkg.__name__ + "." + home), name)
    if not ok:
        bad.append(name)
print(json.dumps(bad))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


@pytest.mark.parametrize("package", LAZY)
def test_importing_the_package_loads_no_submodule_behind_its_surface(package: str) -> None:
    code = f"import sys, json, {package}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    pkg = importlib.import_module(package)
    behind = {f"{package}.{m}" for m in set(pkg._surface_table.values()) - {""}}
    assert behind & loaded <= {"kos.resources.core.echo"}  # echo: tiny, imported eagerly


def test_a_missing_name_is_an_attribute_error() -> None:
    import kos.resources.core as core

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = core.nope  # type: ignore[attr-defined]
