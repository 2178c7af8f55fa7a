"""Structural validation of rendered Kubernetes objects (no Kubernetes binaries needed).

* ``check_object(obj)`` - deserialize with the official ``kubernetes`` client model for its
  apiVersion/kind (``V1Pod``, ``V1DaemonSet``...), which enforces required fields and enums,
  and walk the document against the models' attribute maps so an unknown or misspelt field
  is an error (the API server's strict field validation would reject it too).
* ``check_pod(pod, component, files, secrets_dir)`` - a static pod: flags against the known
  flag list of the component, volume/volumeMount pairing, ports, and that every file a flag
  names under the secrets dir is one kos writes.
* ``check_kubelet_configuration(doc)`` - KubeletConfiguration top-level fields.

The ``kubernetes`` package is a development dependency: imported lazily, only here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kos.controllers.k8s.flags import KUBELET_CONFIGURATION_FIELDS, unknown_flags


class ValidationError(ValueError):
    """A rendered object is not what Kubernetes accepts (the message names the path)."""


_PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object, "datetime": str,
               "date": str}


def _model_name(api_version: str, kind: str) -> str:
    _, _, version = api_version.rpartition("/")
    prefix = version[:1].upper() + version[1:]
    return f"{prefix}{kind}"


def _models() -> Any:
    import kubernetes.client.models as models  # type: ignore[import-untyped]

    return models


def _check_value(type_name: str, value: Any, path: str) -> None:
    if value is None:
        return
    m = re.match(r"list\[(.*)\]$", type_name)
    if m:
        if not isinstance(value, list):
            raise ValidationError(f"{path}: expected a list, got {type(value).__name__}")
        for i, v in enumerate(value):
            _check_value(m.group(1), v, f"{path}[{i}]")
        return
    m = re.match(r"dict\(([^,]*), (.*)\)$", type_name)
    if m:
        if not isinstance(value, dict):
            raise ValidationError(f"{path}: expected a mapping, got {type(value).__name__}")
        for k, v in value.items():
            _check_value(m.group(2), v, f"{path}.{k}")
        return
    if type_name in _PRIMITIVES:
        expected = _PRIMITIVES[type_name]
        if type_name == "int" and isinstance(value, bool):
            raise ValidationError(f"{path}: expected an integer, got {value!r}")
        if not isinstance(value, expected):  # type: ignore[arg-type]
            raise ValidationError(f"{path}: expected {type_name}, got {value!r}")
        return
    cls = getattr(_models(), type_name, None)
    if cls is None:
        raise ValidationError(f"{path}: unknown model {type_name}")
    if type_name == "IntOrString" or type_name.endswith("IntOrString"):
        return
    if not isinstance(value, dict):
        raise ValidationError(f"{path}: expected an object ({type_name}), got {value!r}")
    by_json = {j: a for a, j in cls.attribute_map.items()}
    for k, v in value.items():
        if k not in by_json:
            raise ValidationError(f"{path}.{k}: unknown field of {type_name}")
        _check_value(cls.openapi_types[by_json[k]], v, f"{path}.{k}")


def check_object(obj: Mapping[str, Any], where: str = "") -> Any:
    """Validate one object against the official client model; returns the model instance."""
    from kubernetes.client import ApiClient

    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    label = where or f"{kind}/{(obj.get('metadata') or {}).get('name', '?')}"
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise ValidationError(f"{label}: apiVersion and kind are required")
    name = _model_name(api_version, kind)
    if getattr(_models(), name, None) is None:
        raise ValidationError(f"{label}: {api_version} {kind} is not a known Kubernetes type (no model {name})")
    if not (obj.get("metadata") or {}).get("name"):
        raise ValidationError(f"{label}: metadata.name is required")
    _check_value(name, dict(obj), label)
    try:
        return ApiClient()._ApiClient__deserialize(dict(obj), name)
    except ValueError as exc:
        raise ValidationError(f"{label}: {exc}") from None


def _flag_value(args: list[str], name: str) -> str | None:
    for a in args:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def check_pod(pod: Mapping[str, Any], component: str, *, files: Mapping[str, str], secrets_dir: str) -> None:
    """A control-plane static pod: model, flags, volumes, ports, file references."""
    check_object(pod, f"static pod {component}")
    spec = pod["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    if len(volumes) != len(spec.get("volumes", [])):
        raise ValidationError(f"static pod {component}: duplicate volume names")
    used: set[str] = set()
    for c in spec["containers"]:
        args = list(c.get("command", [])[1:]) + list(c.get("args", []))
        bad = unknown_flags(component, args)
        if bad:
            raise ValidationError(f"static pod {component}: unknown flags for Kubernetes "
                                  f"{component}: {', '.join('--' + b for b in bad)}")
        names = [a.split("=", 1)[0] for a in args if a.startswith("--")]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            raise ValidationError(f"static pod {component}: flags given twice: {', '.join(dups)}")
        mounts = c.get("volumeMounts", [])
        for m in mounts:
            if m["name"] not in volumes:
                raise ValidationError(f"static pod {component}: volumeMount {m['name']!r} has no volume")
            used.add(m["name"])
        for p in c.get("ports", []):
            if not 1 <= int(p["containerPort"]) <= 65535:
                raise ValidationError(f"static pod {component}: port {p['containerPort']} out of range")
        for a in args:
            if "=" not in a:
                continue
            for value in a.split("=", 1)[1].split(","):
                if value.startswith(secrets_dir + "/"):
                    rel = value[len(secrets_dir) + 1:]
                    if rel not in files:
                        raise ValidationError(f"static pod {component}: {a.split('=')[0]} names {value}, "
                                              "which kos does not write")
                    if not any(value.startswith(m["mountPath"].rstrip("/") + "/") for m in mounts):
                        raise ValidationError(f"static pod {component}: {value} is not inside any volumeMount")
    unused = sorted(set(volumes) - used)
    if unused:
        raise ValidationError(f"static pod {component}: volumes without a mount: {', '.join(unused)}")


def check_args(component: str, args: list[str]) -> None:
    """Flags of a command line (kubelet, kube-proxy...) against the known list; no duplicates."""
    bad = unknown_flags(component, args)
    if bad:
        raise ValidationError(f"{component}: unknown flags for Kubernetes {component}: "
                              f"{', '.join('--' + b for b in bad)}")
    names = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ValidationError(f"{component}: flags given twice: {', '.join(dups)}")


def check_kubelet_configuration(doc: Mapping[str, Any]) -> None:
    if doc.get("apiVersion") != "kubelet.config.k8s.io/v1beta1" or doc.get("kind") != "KubeletConfiguration":
        raise ValidationError("KubeletConfiguration: expected apiVersion kubelet.config.k8s.io/v1beta1, "
                              "kind KubeletConfiguration")
    unknown = sorted(set(doc) - KUBELET_CONFIGURATION_FIELDS)
    if unknown:
        raise ValidationError(f"KubeletConfiguration: unknown fields: {', '.join(unknown)}")
    if doc.get("cgroupDriver") not in ("cgroupfs", "systemd"):
        raise ValidationError(f"KubeletConfiguration.cgroupDriver: {doc.get('cgroupDriver')!r}, "
                              "expected cgroupfs or systemd")
    for f in ("staticPodPath",):
        if f in doc and not str(doc[f]).startswith("/"):
            raise ValidationError(f"KubeletConfiguration.{f}: {doc[f]!r} is not an absolute path")
