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

Aliases are unique in a registry (one node's types). Fill() looks at one type at a time, so
its automatic aliases collide across types (``as``: AddressSpecs and AddressStatuses). The
registry settles every collision the same way, whatever the registration order: an alias
given explicitly (``aliases=``) wins over automatic ones; an automatic alias claimed by two or
more types (or equal to another type's RD id) is dropped from all of them, and resolving it
is an error naming the candidates. Two explicit claims of one alias, or an explicit alias
equal to another type's RD id, are refused at registration. ``definition()``, iteration (what
``publish_meta`` writes as ResourceDefinitions) and ``resolve()`` all see the settled aliases;
``ResourceDefinition.make`` alone stays exactly COSI's ``Fill()``.
"""

from __future__ import annotations

import dataclasses
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


def automatic_aliases(type: str) -> tuple[str, ...]:
    """The aliases and all-aliases ``Fill()`` adds to ``type`` by itself."""
    return ResourceDefinition.make(type, "-").all_aliases


class AmbiguousTypeError(LookupError):
    """A name that several resource types claim; ``candidates`` are their types."""

    def __init__(self, name: str, candidates: Iterable[str]) -> None:
        self.candidates = tuple(sorted(candidates))
        super().__init__(
            f"resource type {name!r} is ambiguous: it may mean {', '.join(self.candidates)} (name one of them)"
        )


@dataclass
class _Entry:
    definition: ResourceDefinition  # as registered (Fill())
    spec_class: type[Any]
    explicit: frozenset[str]  # aliases given by the declaration, not by Fill()


@dataclass
class Registry:
    """Known resource types: RD plus the spec class that decodes it."""

    _by_type: dict[str, _Entry] = field(default_factory=dict)
    _settled: dict[str, ResourceDefinition] | None = field(default=None, repr=False)
    _ambiguous: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    def register(self, definition: ResourceDefinition, spec_class: type[Any]) -> None:
        existing = self._by_type.get(definition.type)
        if existing is not None and existing.spec_class.__qualname__ != spec_class.__qualname__:
                raise ValueError(f"resource type {definition.type} is already registered")
        auto = () if definition.skip_automatic_aliases else automatic_aliases(definition.type)
        explicit = frozenset(a for a in definition.all_aliases if a not in auto)
        for other in self._by_type.values():
            if other.definition.type == definition.type:
                continue
            for a in sorted(explicit):
                if a in other.explicit or a == other.definition.id:
                    raise ValueError(
                        f"resource type {definition.type}: alias {a!r} is already {other.definition.type}'s "
                        f"{'alias' if a in other.explicit else 'id'}"
                    )
            for a in sorted(other.explicit):
                if a == definition.id:
                    raise ValueError(f"resource type {definition.type}: its id is already an alias of "
                                     f"{other.definition.type}")
        self._by_type[definition.type] = _Entry(definition, spec_class, explicit)
        self._settled = None

    def _settle(self) -> dict[str, ResourceDefinition]:
        if self._settled is not None:
            return self._settled
        ids = {e.definition.id for e in self._by_type.values()}
        explicit = {a for e in self._by_type.values() for a in e.explicit}
        claims: dict[str, list[str]] = {}
        for e in self._by_type.values():
            for a in e.definition.all_aliases:
                if a not in e.explicit:
                    claims.setdefault(a, []).append(e.definition.type)
        dropped: dict[str, set[str]] = {}
        self._ambiguous = {}
        for alias, types in claims.items():
            if len(types) == 1 and alias not in explicit and (alias not in ids or alias == types[0].lower()):
                continue
            for t in types:
                dropped.setdefault(t, set()).add(alias)
            if alias not in explicit and alias not in ids:  # nobody wins it
                self._ambiguous[alias] = tuple(sorted(types))
        settled = {}
        for t, e in self._by_type.items():
            d, drop = e.definition, dropped.get(t, set())
            if drop:
                d = dataclasses.replace(
                    d,
                    aliases=tuple(a for a in d.aliases if a not in drop),
                    all_aliases=tuple(a for a in d.all_aliases if a not in drop),
                )
            settled[t] = d
        self._settled = settled
        return settled

    def definition(self, type: str) -> ResourceDefinition | None:
        return self._settle().get(type)

    def spec_class(self, type: str) -> type[Any] | None:
        e = self._by_type.get(type)
        return e.spec_class if e else None

    def __iter__(self) -> Iterator[ResourceDefinition]:
        return iter(sorted(self._settle().values(), key=lambda d: d.type))

    def __len__(self) -> int:
        return len(self._by_type)

    def ambiguous(self) -> dict[str, tuple[str, ...]]:
        """Automatic aliases nobody may use (alias -> the types Fill() gave it to)."""
        self._settle()
        return dict(self._ambiguous)

    def resolve(self, name: str) -> ResourceDefinition:
        """Resolve user input (type, RD id, or alias) to a definition, case-insensitively;
        ``AmbiguousTypeError`` (a LookupError) names the candidates of a shared alias."""
        lower = name.lower()
        found = [d for d in self._settle().values() if lower == d.id or lower in d.all_aliases]
        if len(found) == 1:
            return found[0]
        if found:  # cannot happen once settled; kept so that a bug never picks one at random
            raise AmbiguousTypeError(name, (d.type for d in found))
        if lower in self._ambiguous:
            raise AmbiguousTypeError(name, self._ambiguous[lower])
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
