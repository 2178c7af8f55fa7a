"""Kubernetes release numbers and the version tags of image references: the one parser the
node (which kubelet binary, which releases it can run) and ``kosctl upgrade-k8s`` (skew
policy, planning) share.

``KubeVersion.parse("1.33.13")`` / ``("v1.33.13")`` -> ``KubeVersion(1, 33, 13)`` (str:
``v1.33.13``); anything else is a ``ValueError`` saying what was expected. ``image_tag(ref)``
is the tag of ``registry/repo:tag[@digest]`` (None without one), ``with_tag(ref, tag)`` the
same reference with another tag (a digest is dropped: it pinned the old content).

The machine config fields that carry a Kubernetes version (``VERSIONED_FIELDS``: the kubelet's
image, whose tag picks the kubelet binary, and the images of the control-plane static pods and
of kube-proxy) with their defaults (``DEFAULT_IMAGES``, the cluster release), and
``configured_images(cfg)``: each field's effective value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from kos.resources.machineconfig.v1alpha1 import Config
from kos.resources.versions import KUBERNETES_VERSION

MAX_TEXT = 128
"""Longer input is refused before any parsing (a version or an image reference is short)."""

_VERSION = re.compile(r"v?(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})")


@dataclass(frozen=True, order=True)
class KubeVersion:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> KubeVersion:
        """``1.33.13`` or ``v1.33.13`` (a release; pre-releases and build suffixes are refused)."""
        if len(text) > MAX_TEXT:
            raise ValueError(f"{text[:32]!r}... ({len(text)} characters) is not a Kubernetes version, "
                             "expected vMAJOR.MINOR.PATCH such as v1.33.13")
        m = _VERSION.fullmatch(text.strip())
        if m is None:
            raise ValueError(f"{text!r} is not a Kubernetes version, expected vMAJOR.MINOR.PATCH such as v1.33.13")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    def minors_from(self, other: KubeVersion) -> int:
        """How many minor releases ``self`` is ahead of ``other`` (negative: behind; a
        different major counts as far away)."""
        if self.major != other.major:
            return 1000 * (self.major - other.major)
        return self.minor - other.minor


def image_tag(ref: str) -> str | None:
    """``registry.k8s.io/kube-apiserver:v1.33.13`` -> ``v1.33.13``; a registry port is not a tag."""
    name = ref[:MAX_TEXT * 4].split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def image_version(ref: str) -> KubeVersion | None:
    """The Kubernetes version an image's tag names, or None (no tag, or not a version)."""
    tag = image_tag(ref)
    if tag is None:
        return None
    try:
        return KubeVersion.parse(tag)
    except ValueError:
        return None


def with_tag(ref: str, tag: str) -> str:
    """``ref`` with ``tag`` as its tag (any digest dropped)."""
    name = ref.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}/{last}:{tag}" if head else f"{last}:{tag}"


KUBELET_FIELD = "machine.kubelet.image"
APISERVER_FIELD = "cluster.apiServer.image"
CONTROLLER_MANAGER_FIELD = "cluster.controllerManager.image"
SCHEDULER_FIELD = "cluster.scheduler.image"
PROXY_FIELD = "cluster.proxy.image"
CONTROL_PLANE_FIELDS = {APISERVER_FIELD: "kube-apiserver", CONTROLLER_MANAGER_FIELD: "kube-controller-manager",
                        SCHEDULER_FIELD: "kube-scheduler"}
"""The static pods' image fields -> the component (and static pod name prefix)."""

DEFAULT_IMAGES = {
    KUBELET_FIELD: f"ghcr.io/siderolabs/kubelet:{KUBERNETES_VERSION}",
    APISERVER_FIELD: f"registry.k8s.io/kube-apiserver:{KUBERNETES_VERSION}",
    CONTROLLER_MANAGER_FIELD: f"registry.k8s.io/kube-controller-manager:{KUBERNETES_VERSION}",
    SCHEDULER_FIELD: f"registry.k8s.io/kube-scheduler:{KUBERNETES_VERSION}",
    PROXY_FIELD: f"registry.k8s.io/kube-proxy:{KUBERNETES_VERSION}",
}
VERSIONED_FIELDS: dict[str, Callable[[Config], str]] = {
    KUBELET_FIELD: lambda c: c.machine.kubelet.image,
    APISERVER_FIELD: lambda c: c.cluster.api_server.image,
    CONTROLLER_MANAGER_FIELD: lambda c: c.cluster.controller_manager.image,
    SCHEDULER_FIELD: lambda c: c.cluster.scheduler.image,
    PROXY_FIELD: lambda c: c.cluster.proxy.image,
}


def configured_images(cfg: Config | None) -> dict[str, str]:
    """Field path -> effective image (the default where unset; all defaults for no config)."""
    if cfg is None:
        return dict(DEFAULT_IMAGES)
    return {path: get(cfg) or DEFAULT_IMAGES[path] for path, get in VERSIONED_FIELDS.items()}


def field_patch(path: str, image: str) -> dict[str, object]:
    """A strategic-merge patch setting one of ``VERSIONED_FIELDS`` (``machine.kubelet.image``
    -> ``{"machine": {"kubelet": {"image": image}}}``)."""
    if path not in VERSIONED_FIELDS:
        raise KeyError(path)
    out: dict[str, object] = {"image": image}
    for part in reversed(path.split(".")[:-1]):
        out = {part: out}
    return out
