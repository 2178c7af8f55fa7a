"""A node and the Kubernetes releases it holds: the kubelet binary follows the version tag of
``machine.kubelet.image`` among the node's kubelets (a version it lacks is an error naming the
field, the value and what it has); ApplyConfiguration refuses a config naming a version the node
holds no release of (FAILED_PRECONDITION, dry runs too) and leaves the machine as it was; fields
left as they were are never checked (a node without Kubernetes still takes its first config);
the versioned fields' defaults are the renderers' own."""

from __future__ import annotations

from pathlib import Path

import pytest

from kos.controllers.config.manager import ApplyError, ErrorCode
from kos.controllers.k8s.controlplane import DEFAULT_IMAGES as RENDERED_CONTROL_PLANE
from kos.controllers.k8s.kubelet import DEFAULT_KUBELET_IMAGE
from kos.controllers.k8s.manifests import ManifestInputs
from kos.controllers.k8s.releases import kubernetes_version_problems
from kos.controllers.k8s.service import KubeletVersionError, kubelet_binary
from kos.platform.provision.kubernetes import NODE_VERSIONS_DIR, node_kubelets
from kos.resources.k8s import APISERVER_ID, CONTROLLER_MANAGER_ID, SCHEDULER_ID
from kos.resources.k8sversion import (
    APISERVER_FIELD,
    CONTROLLER_MANAGER_FIELD,
    DEFAULT_IMAGES,
    KUBELET_FIELD,
    PROXY_FIELD,
    SCHEDULER_FIELD,
)
from kos.resources.machineconfig import ConfigContainer
from kos.resources.versions import KUBERNETES_UPGRADE_VERSION, KUBERNETES_VERSION
from tests.config.helpers import configs, node, patched

NEXT = KUBERNETES_UPGRADE_VERSION


def test_defaults_are_the_renderers() -> None:
    assert {
        KUBELET_FIELD: DEFAULT_KUBELET_IMAGE,
        APISERVER_FIELD: RENDERED_CONTROL_PLANE[APISERVER_ID],
        CONTROLLER_MANAGER_FIELD: RENDERED_CONTROL_PLANE[CONTROLLER_MANAGER_ID],
        SCHEDULER_FIELD: RENDERED_CONTROL_PLANE[SCHEDULER_ID],
        PROXY_FIELD: ManifestInputs.proxy_image,
    } == DEFAULT_IMAGES


def _kubelet(root: Path, rel: str) -> str:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("#!/bin/false\n")
    p.chmod(0o755)
    return str(p)


def test_node_kubelets_lists_the_releases_bound_in(tmp_path: Path) -> None:
    assert node_kubelets(tmp_path) == {}
    own = _kubelet(tmp_path, "/usr/local/bin/kubelet")
    assert node_kubelets(tmp_path) == {KUBERNETES_VERSION: own}  # an image's kubelet is the cluster release
    nxt = _kubelet(tmp_path, f"{NODE_VERSIONS_DIR}/{NEXT}/kubelet")
    cur = _kubelet(tmp_path, f"{NODE_VERSIONS_DIR}/{KUBERNETES_VERSION}/kubelet")
    (tmp_path / NODE_VERSIONS_DIR.lstrip("/") / "v9.9.9").mkdir()  # no kubelet inside: not a release
    assert node_kubelets(tmp_path) == {KUBERNETES_VERSION: cur, NEXT: nxt}


def test_the_kubelet_binary_follows_the_image_tag() -> None:
    have = {KUBERNETES_VERSION: "/a/kubelet", NEXT: "/b/kubelet"}
    assert kubelet_binary(f"ghcr.io/siderolabs/kubelet:{NEXT}", have, "/default") == "/b/kubelet"
    assert kubelet_binary(f"ghcr.io/siderolabs/kubelet:{KUBERNETES_VERSION}", have, "/default") == "/a/kubelet"
    assert kubelet_binary("ghcr.io/siderolabs/kubelet:latest", have, "/default") == "/default"
    # a node without any kubelet (an image built without Kubernetes): the service waits for the default one
    assert kubelet_binary(f"ghcr.io/siderolabs/kubelet:{NEXT}", {}, "/default") == "/default"
    with pytest.raises(KubeletVersionError, match=rf"machine.kubelet.image: .*kubelet:v1.34.0.*"
                                                  rf"available: {KUBERNETES_VERSION}, {NEXT}"):
        kubelet_binary("ghcr.io/siderolabs/kubelet:v1.34.0", have, "/default")


def _cfg(text: str) -> object:
    return ConfigContainer.load(text).v1alpha1


def test_changed_fields_are_checked_against_the_releases() -> None:
    cp, _ = configs()
    old = _cfg(cp)
    new = _cfg(patched(cp, lambda c: (setattr(c.machine.kubelet, "image", "ghcr.io/siderolabs/kubelet:v1.34.1"),
                                      setattr(c.cluster.api_server, "image",
                                              f"registry.k8s.io/kube-apiserver:{NEXT}"))))
    both = [KUBERNETES_VERSION, NEXT]
    problems = kubernetes_version_problems(old, new, both)  # type: ignore[arg-type]
    assert len(problems) == 1 and problems[0].startswith("machine.kubelet.image: 'ghcr.io/siderolabs/kubelet:v1.34.1'")
    assert f"available: {KUBERNETES_VERSION}, {NEXT}" in problems[0]
    only_old = kubernetes_version_problems(old, new, [KUBERNETES_VERSION])  # type: ignore[arg-type]
    assert [p.split(":")[0] for p in only_old] == ["machine.kubelet.image", "cluster.apiServer.image"]
    # unchanged fields are not checked: a node without any kubelet keeps (or first takes) its config
    assert kubernetes_version_problems(old, old, []) == []  # type: ignore[arg-type]
    assert kubernetes_version_problems(None, old, []) == []  # type: ignore[arg-type]




@pytest.mark.anyio
async def test_apply_refuses_an_unheld_version_and_changes_nothing(tmp_path: Path) -> None:
    cp, _ = configs()

    def check(cur: ConfigContainer | None, new: ConfigContainer) -> list[str]:
        assert new.v1alpha1 is not None
        return kubernetes_version_problems(cur.v1alpha1 if cur else None, new.v1alpha1, [KUBERNETES_VERSION])

    async with node(tmp_path, preconditions=check) as (_, m):
        await m.apply(cp.encode(), "auto")  # the first config: defaults, nothing to check
        before = (tmp_path / "config.yaml").read_bytes()
        up = patched(cp, lambda c: setattr(c.machine.kubelet, "image", f"ghcr.io/siderolabs/kubelet:{NEXT}"))
        for dry_run in (True, False):
            with pytest.raises(ApplyError) as err:
                await m.apply(up.encode(), "no-reboot", dry_run=dry_run)
            assert err.value.code is ErrorCode.FAILED_PRECONDITION
            assert f"machine.kubelet.image: 'ghcr.io/siderolabs/kubelet:{NEXT}'" in str(err.value)
            assert f"(available: {KUBERNETES_VERSION};" in str(err.value) and "nothing was applied" in str(err.value)
        assert (tmp_path / "config.yaml").read_bytes() == before
        assert m.active is not None and m.active.text == cp
        other = patched(cp, lambda c: setattr(c.machine.kubelet, "extra_args", {"v": "2"}))
        assert (await m.apply(other.encode(), "no-reboot")).changed  # other changes still go through
