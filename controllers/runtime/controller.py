"""What a controller declares: inputs, outputs, and the Controller / QController interfaces.

An ``Input`` names a kind (namespace, type), optionally one id, and how it triggers:

* ``WEAK``: any change triggers a reconcile;
* ``STRONG``: like WEAK, and the controller may put finalizers on these resources;
* ``DESTROY_READY``: triggers only when a resource is tearingDown with no finalizers left;
* ``Q_PRIMARY`` / ``Q_MAPPED`` / ``Q_MAPPED_DESTROY_READY``: QController inputs (reconcile
  the key itself / map it to primary keys / map only when destroy-ready).

An ``Output`` names a type in every namespace; ``EXCLUSIVE`` means only this controller
writes it, ``SHARED`` that several (never an exclusive one) may.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kos.controllers.runtime.errors import RegistrationError
from kos.resources.core import Kind, Phase, Pointer

if TYPE_CHECKING:
    from kos.controllers.runtime.adapter import ControllerRuntime
    from kos.controllers.runtime.qruntime import QRuntime


class InputKind(enum.IntEnum):
    WEAK = 0
    STRONG = 1
    DESTROY_READY = 2
    Q_PRIMARY = 3
    Q_MAPPED = 4
    Q_MAPPED_DESTROY_READY = 5

    def __str__(self) -> str:
        return self.name.lower()


CONTROLLER_INPUT_KINDS = frozenset({InputKind.WEAK, InputKind.STRONG, InputKind.DESTROY_READY})
Q_INPUT_KINDS = frozenset({InputKind.Q_PRIMARY, InputKind.Q_MAPPED, InputKind.Q_MAPPED_DESTROY_READY})
FINALIZER_INPUT_KINDS = frozenset({InputKind.STRONG, InputKind.Q_PRIMARY, InputKind.Q_MAPPED})


class OutputKind(enum.IntEnum):
    EXCLUSIVE = 0
    SHARED = 1

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Input:
    """A declared input: a kind, an optional single id (None = every id), and its trigger kind."""

    namespace: str
    type: str
    id: str | None = None
    kind: InputKind = InputKind.WEAK

    @property
    def resource_kind(self) -> Kind:
        return Kind(self.namespace, self.type)

    def matches(self, ptr: Pointer) -> bool:
        return ptr.namespace == self.namespace and ptr.type == self.type and (self.id is None or self.id == ptr.id)

    def sort_key(self) -> tuple[str, str, str, int]:
        return (self.namespace, self.type, self.id or "", int(self.kind))

    def __str__(self) -> str:
        target = f"{self.type}({self.namespace}/{self.id if self.id is not None else '*'})"
        return f"{self.kind} {target}"


@dataclass(frozen=True, slots=True)
class Output:
    """A declared output type (all namespaces)."""

    type: str
    kind: OutputKind = OutputKind.EXCLUSIVE


@dataclass(frozen=True, slots=True)
class ReducedMetadata:
    """What the runtime remembers of an input change: enough to decide who to trigger."""

    namespace: str
    type: str
    id: str
    phase: Phase
    labels: dict[str, str] = field(default_factory=dict, compare=False)
    finalizers_empty: bool = True

    @property
    def pointer(self) -> Pointer:
        return Pointer(self.namespace, self.type, self.id)

    @property
    def destroy_ready(self) -> bool:
        return self.phase == Phase.TEARING_DOWN and self.finalizers_empty


def normalize_inputs(owner: str, inputs: Iterable[Input], allowed: frozenset[InputKind]) -> tuple[Input, ...]:
    """Validate and sort inputs; RegistrationError naming the controller and the bad input."""
    out = sorted(inputs, key=Input.sort_key)
    seen: set[tuple[str, str, str | None]] = set()
    for inp in out:
        if not isinstance(inp, Input):
            raise RegistrationError(f"controller {owner!r}: input {inp!r} is not an Input")
        if not inp.namespace or not inp.type:
            raise RegistrationError(f"controller {owner!r}: input {inp}: namespace and type must not be empty")
        if inp.kind not in allowed:
            expected = ", ".join(str(k) for k in sorted(allowed))
            raise RegistrationError(
                f"controller {owner!r}: input {inp}: kind {inp.kind} not allowed, expected one of {expected}"
            )
        key = (inp.namespace, inp.type, inp.id)
        if key in seen:
            target = f"{inp.type}({inp.namespace}/{inp.id or '*'})"
            raise RegistrationError(f"controller {owner!r}: duplicate input {target}")
        seen.add(key)
    return tuple(out)


class Controller(abc.ABC):
    """A reconciling controller: ``run`` loops on ``await rt.wait()`` and converges outputs.

    ``name`` must be unique in a runtime; it is also the owner of everything the controller
    writes. ``run`` returning (or being cancelled) finishes the controller; raising is a
    crash and the runtime restarts it with exponential backoff.
    """

    name: str

    @abc.abstractmethod
    def inputs(self) -> Sequence[Input]: ...

    @abc.abstractmethod
    def outputs(self) -> Sequence[Output]: ...

    @abc.abstractmethod
    async def run(self, rt: ControllerRuntime) -> None: ...


@dataclass
class QSettings:
    """What a QController declares. ``run_hook``/``shutdown_hook`` run next to the workers."""

    inputs: Sequence[Input]
    outputs: Sequence[Output]
    concurrency: int = 1
    run_hook: Callable[[QRuntime], Awaitable[None]] | None = None
    shutdown_hook: Callable[[], Awaitable[None] | None] | None = None


class QController(abc.ABC):
    """A queue-driven controller: one ``reconcile(ptr)`` per changed primary resource.

    QPrimary inputs enqueue their own pointer; QMapped inputs go through ``map_input`` which
    returns the primary pointers to reconcile. A key is never reconciled concurrently with
    itself; errors requeue the key with a per-key exponential backoff.
    """

    name: str

    @abc.abstractmethod
    def settings(self) -> QSettings: ...

    @abc.abstractmethod
    async def reconcile(self, rt: QRuntime, ptr: Pointer) -> None: ...

    async def map_input(self, rt: QRuntime, reduced: ReducedMetadata) -> Sequence[Pointer]:
        """Primary pointers affected by a change of a mapped input (default: none)."""
        return ()


AnyController = Controller | QController


def controller_name(c: Any) -> str:
    name = getattr(c, "name", None)
    if not isinstance(name, str) or not name:
        raise RegistrationError(f"controller {c!r}: name must be a non-empty string")
    return name
