"""The kos controller runtime (cosi-semantics.md 3): Controller and QController, the
Runtime that watches their inputs and triggers them, the per-controller adapters with
read/write restrictions, restart backoff, transform/qtransform/destroy helpers, the
dependency graph, and ``ServiceManager`` (what controllers ask of machined's supervisor).
``kos.controllers.runtime.testing`` has the test helpers.
"""

from typing import TYPE_CHECKING

from kos.resources.lazy import surface, table_of

if TYPE_CHECKING:
    from kos.controllers.runtime.access import Access
    from kos.controllers.runtime.adapter import ControllerRuntime
    from kos.controllers.runtime.backoff import Backoff
    from kos.controllers.runtime.controller import (
        Controller,
        Input,
        InputKind,
        Output,
        OutputKind,
        QController,
        QSettings,
        ReducedMetadata,
    )
    from kos.controllers.runtime.dependency import Edge, EdgeType
    from kos.controllers.runtime.destroy import DestroyController, destroy
    from kos.controllers.runtime.errors import (
        AccessDeniedError,
        DestroyOutput,
        RegistrationError,
        RequeueError,
        RuntimeWatchError,
        SkipReconcile,
    )
    from kos.controllers.runtime.fanout import SpecsTransformController, spec_transform_many
    from kos.controllers.runtime.qruntime import Job, QRuntime
    from kos.controllers.runtime.qtransform import QTransformController, qtransform
    from kos.controllers.runtime.queue import WorkQueue
    from kos.controllers.runtime.runtime import Runtime
    from kos.controllers.runtime.services import ServiceDefiner, ServiceManager
    from kos.controllers.runtime.transform import (
        TransformController,
        TransformErrors,
        kind_of,
        set_spec,
        spec_transform,
        transform,
    )

__getattr__ = surface(
    __name__,
    globals(),
    table_of(
        {
            "access": ("Access",),
            "adapter": ("ControllerRuntime",),
            "backoff": ("Backoff",),
            "controller": (
                "Controller",
                "Input",
                "InputKind",
                "Output",
                "OutputKind",
                "QController",
                "QSettings",
                "ReducedMetadata",
            ),
            "dependency": (
                "Edge",
                "EdgeType",
            ),
            "destroy": (
                "DestroyController",
                "destroy",
            ),
            "errors": (
                "AccessDeniedError",
                "DestroyOutput",
                "RegistrationError",
                "RequeueError",
                "RuntimeWatchError",
                "SkipReconcile",
            ),
            "fanout": (
                "SpecsTransformController",
                "spec_transform_many",
            ),
            "qruntime": (
                "Job",
                "QRuntime",
            ),
            "qtransform": (
                "QTransformController",
                "qtransform",
            ),
            "queue": ("WorkQueue",),
            "runtime": ("Runtime",),
            "services": (
                "ServiceDefiner",
                "ServiceManager",
            ),
            "transform": (
                "TransformController",
                "TransformErrors",
                "kind_of",
                "set_spec",
                "spec_transform",
                "transform",
            ),
        }
    ),
)

__all__ = [
    "Access",
    "AccessDeniedError",
    "Backoff",
    "Controller",
    "ControllerRuntime",
    "DestroyController",
    "DestroyOutput",
    "Edge",
    "EdgeType",
    "Input",
    "InputKind",
    "Job",
    "Output",
    "OutputKind",
    "QController",
    "QRuntime",
    "QSettings",
    "QTransformController",
    "ReducedMetadata",
    "RegistrationError",
    "RequeueError",
    "Runtime",
    "RuntimeWatchError",
    "ServiceDefiner",
    "ServiceManager",
    "SkipReconcile",
    "SpecsTransformController",
    "TransformController",
    "TransformErrors",
    "WorkQueue",
    "destroy",
    "kind_of",
    "qtransform",
    "set_spec",
    "spec_transform",
    "spec_transform_many",
    "transform",
]
