"""Resource definitions (RDs) and the registry of known resource types.

A type name is ``Name.suffix`` (``LinkSpecs.net.kos.dev``): ``Name`` is plural and starts
with a capital, the suffix is a dotted lower-case domain. ``ResourceDefinition.make``
validates both and fills the display type and aliases exactly as COSI's ``Fill()`` does
(cosi-semantics.md 1.5): the display type is the singular of Name; aliases are the
lower-cased singular and, for names with two or more capitals, the lower-cased capitals
(+``s`` unless they already end in ``S``); all-aliases add the lower-cased plural and the
plural with each proper prefix of the suffix.

The ``resource_type`` decorator attaches an RD to a spec dataclass and registers it in the
process-wide ``REGISTRY``; the registry resolves what a user types (``kosctl get addr``)
to a type, case-insensitively, by RD id (lower-cased type) or any alias.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kos.resources.core.spec import Spec

_NAME_RE = re.compile(r"^[A-Z][A-Za-z0-9-]+$")
_SUFFIX_RE = re.compile(r"^[a-z][a-z0-9-]+(\.[a-z][a-z0-9-]+)*$")

_IRREGULAR_PLURALS = {"people": "person", "children": "child", "data": "data", "indices": "index"}
_ES_ENDINGS = ("sses", "shes", "ches", "xes", "zes", "uses")


class Sensitivity(enum.IntEnum):
    NON_SENSITIVE = 0
    SENSITIVE = 1


def singular(word: str) -> str:
    """English singular of a (CamelCase) plural word; the last word part decides."""
    lower = word.lower()
    for plural, single in _IRREGULAR_PLURALS.items():
        if lower.endswith(plural):
            return word[: len(word) - len(plural)] + _match_case(word[len(word) - len(plural) :], single)
    if lower.endswith("ies") and len(word) > 3:
        return word[:-3] + ("Y" if word[-3].isupper() else "y")
    if lower.endswith("statuses"):
        return word[:-2]
    for ending in _ES_ENDINGS:
        if lower.endswith(ending):
            return word[:-2]
    if lower.endswith("ss") or lower.endswith("us") or lower.endswith("is"):
        return word
    if lower.endswith("s"):
        return word[:-1]
    return word


def _match_case(original: str, replacement: str) -> str:
    return replacement[0].upper() + replacement[1:] if original[:1].isupper() else replacement


def is_plural(word: str) -> bool:
    return singular(word) != word or word.lower().endswith("data")


@dataclass(frozen=True)
class PrintColumn:
    name: str
    json_path: str


@dataclass(frozen=True)
class ResourceDefinition:
    type: str
    display_type: str
    default_namespace: str
    aliases: tuple[str, ...] = ()
    all_aliases: tuple[str, ...] = ()
    print_columns: tuple[PrintColumn, ...] = ()
    sensitivity: Sensitivity = Sensitivity.NON_SENSITIVE
    skip_automatic_aliases: bool = False

    @property
    def id(self) -> str:
        """The RD's resource id: the lower-cased type."""
        return self.type.lower()

    @property
    def sensitive(self) -> bool:
        return self.sensitivity == Sensitivity.SENSITIVE

    @classmethod
    def make(
        cls,
        type: str,
        default_namespace: str,
        *,
        aliases: Iterable[str] = (),
        print_columns: Iterable[PrintColumn | tuple[str, str]] = (),
        sensitive: bool = False,
        skip_automatic_aliases: bool = False,
    ) -> ResourceDefinition:
        name, dot, suffix = type.partition(".")
        if not dot:
            raise ValueError(f"resource type {type!r}: expected Name.suffix (e.g. LinkSpecs.net.kos.dev)")
        if not _NAME_RE.match(name) or name.lower() == name:
            raise ValueError(
                f"resource type {type!r}: name {name!r} must start with a capital and match {_NAME_RE.pattern}"
            )
        if not is_plural(name):
            raise ValueError(f"resource type {type!r}: name {name!r} must be plural")
        if not _SUFFIX_RE.match(suffix):
            raise ValueError(f"resource type {type!r}: suffix {suffix!r} must match {_SUFFIX_RE.pattern}")
        display = singular(name)
        al: list[str] = list(aliases)
        all_al: list[str] = []
        if not skip_automatic_aliases:
            al.append(display.lower())
            all_al.append(name.lower())
            parts = suffix.split(".")
            for i in range(1, len(parts)):
                all_al.append(name.lower() + "." + ".".join(parts[:i]))
            capitals = "".join(c for c in name if c.isupper())
            if len(capitals) >= 2:
                short = capitals.lower()
                al.append(short if short.endswith("s") else short + "s")
        all_al.extend(al)
        cols = tuple(c if isinstance(c, PrintColumn) else PrintColumn(*c) for c in print_columns)
        return cls(
            type=type,
            display_type=display,
            default_namespace=default_namespace,
            aliases=tuple(dict.fromkeys(al)),
            all_aliases=tuple(dict.fromkeys(all_al)),
            print_columns=cols,
            sensitivity=Sensitivity.SENSITIVE if sensitive else Sensitivity.NON_SENSITIVE,
            skip_automatic_aliases=skip_automatic_aliases,
        )


@dataclass
class _Entry:
    definition: ResourceDefinition
    spec_class: type[Any]


@dataclass
class Registry:
    """Known resource types: RD plus the spec class that decodes it."""

    _by_type: dict[str, _Entry] = field(default_factory=dict)

    def register(self, definition: ResourceDefinition, spec_class: type[Any]) -> None:
        existing = self._by_type.get(definition.type)
        if existing is not None and existing.spec_class.__qualname__ != spec_class.__qualname__:
                raise ValueError(f"resource type {definition.type} is already registered")
        self._by_type[definition.type] = _Entry(definition, spec_class)

    def definition(self, type: str) -> ResourceDefinition | None:
        e = self._by_type.get(type)
        return e.definition if e else None

    def spec_class(self, type: str) -> type[Any] | None:
        e = self._by_type.get(type)
        return e.spec_class if e else None

    def __iter__(self) -> Iterator[ResourceDefinition]:
        return iter(sorted((e.definition for e in self._by_type.values()), key=lambda d: d.type))

    def __len__(self) -> int:
        return len(self._by_type)

    def resolve(self, name: str) -> ResourceDefinition:
        """Resolve user input (type, RD id, or alias) to a definition, case-insensitively."""
        lower = name.lower()
        for e in self._by_type.values():
            d = e.definition
            if lower == d.id or lower in d.all_aliases:
                return d
        raise LookupError(f"resource type {name!r} is not registered (try 'kosctl get rd')")


REGISTRY = Registry()

S = TypeVar("S", bound=type[Spec])


def resource_type(
    type: str,
    *,
    namespace: str,
    print_columns: Iterable[tuple[str, str]] = (),
    aliases: Iterable[str] = (),
    sensitive: bool = False,
    registry: Registry | None = None,
) -> Callable[[S], S]:
    """Class decorator: declare the spec dataclass's resource type and register it."""
    definition = ResourceDefinition.make(
        type, namespace, aliases=aliases, print_columns=print_columns, sensitive=sensitive
    )

    def wrap(cls: S) -> S:
        cls.definition = definition
        (registry if registry is not None else REGISTRY).register(definition, cls)
        return cls

    return wrap
