"""Lazy package surfaces: a package ``__init__`` names its public attributes and the submodule
each lives in, and the submodule is imported the first time the attribute is read (PEP 562).

``from kos.resources.core import Pointer`` then imports ``metadata`` only, not the in-memory
state, the SQLite store and every other part of the surface: that is what keeps ``kosctl`` and
machined's start-up short (docs/operations.md, Performance). Type checkers read the same names
from the ``if TYPE_CHECKING:`` imports that sit beside the table.

A name may equal a submodule's name (``machineconfig.generate`` the function, in module
``generate``): importing that submodule would bind the module over the name, so the package's
module object refuses that binding and keeps the surface's attribute.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any


class _Surface(types.ModuleType):
    """A package module whose surface names win over same-named submodules."""

    def __setattr__(self, name: str, value: Any) -> None:
        table: dict[str, str] = self.__dict__.get("_surface_table", {})
        module = table.get(name)
        if module and isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}":
            value = getattr(importlib.import_module(f"{self.__name__}.{module}"), name)
        super().__setattr__(name, value)


def surface(package: str, namespace: dict[str, Any], table: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``table`` maps attribute -> submodule (relative
    to ``package``; ``""`` for an attribute that is the submodule itself)."""

    module_object = sys.modules[package]
    module_object.__class__ = _Surface
    namespace["_surface_table"] = table

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if module == "":
            value = importlib.import_module(f"{package}.{name}")
        else:
            value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__


def table_of(groups: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """``{"metadata": ("Kind", "Pointer")}`` -> ``{"Kind": "metadata", "Pointer": "metadata"}``."""
    return {name: module for module, names in groups.items() for name in names}


class LazyLogger:
    """A structlog logger whose module imports structlog on its first log line, not when it is
    imported: ``log = logger("kos.apis")`` at module level costs nothing until ``log.info(...)``.

    What machined must answer its first API call with (the dispatcher, the server) logs only on
    errors and after start-up, so structlog (~80 ms, issue 17) is imported later, once
    machined has configured it. The logger is structlog's own lazy proxy: the configuration in
    force when a line is logged applies."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        got = self._logger
        if got is None:
            import structlog

            got = self._logger = structlog.get_logger(self._name)
        return getattr(got, attr)


def logger(name: str) -> Any:
    """``structlog.get_logger(name)``, importing structlog on the first log line (``LazyLogger``)."""
    return LazyLogger(name)
