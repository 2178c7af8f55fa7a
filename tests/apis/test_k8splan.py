"""The plan of ``kosctl upgrade-k8s`` (kos.apis.kosctl.k8splan) and the version parsing it rests
on (kos.resources.k8sversion): versions round-trip and garbage is refused naming what is
expected; image tags are read and replaced without touching a registry port; the skew policy
allows exactly one minor release ahead of the oldest component and never a downgrade; control
planes come first; the plan's patches put every field at the target, and planning again after
them changes nothing (resume)."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kos.apis.kosctl import k8splan as kp
from kos.resources.k8sversion import (
    CONTROL_PLANE_FIELDS,
    DEFAULT_IMAGES,
    KUBELET_FIELD,
    PROXY_FIELD,
    VERSIONED_FIELDS,
    KubeVersion,
    configured_images,
    field_patch,
    image_tag,
    image_version,
    with_tag,
)
from kos.resources.machineconfig import ConfigContainer, apply_patches, parse_patch
from tests.config.helpers import configs

versions = st.builds(KubeVersion, st.integers(0, 9999), st.integers(0, 9999), st.integers(0, 9999))
repos = st.sampled_from(["registry.k8s.io/kube-apiserver", "ghcr.io/siderolabs/kubelet", "localhost:5000/kube-proxy",
                         "kube-scheduler", "10.5.0.1:5000/a/b/kube-controller-manager"])


@given(versions, st.booleans())
def test_versions_round_trip(v: KubeVersion, with_v: bool) -> None:
    text = str(v) if with_v else str(v)[1:]
    assert KubeVersion.parse(text) == v
    assert str(KubeVersion.parse(text)) == str(v)


@pytest.mark.parametrize("bad", ["", "1.33", "v1.33.x", "1.33.13-rc.0", "v1.33.13+k3s1", "latest", "vv1.2.3",
                                 "01.2.3", "1.2.3.4", " ", "1" * 200])
def test_garbage_is_not_a_version(bad: str) -> None:
    with pytest.raises(ValueError, match=r"expected vMAJOR\.MINOR\.PATCH"):
        KubeVersion.parse(bad)


@given(st.text(string.printable, max_size=300))
def test_parse_never_crashes(text: str) -> None:
    try:
        v = KubeVersion.parse(text)
    except ValueError:
        return
    assert KubeVersion.parse(str(v)) == v


@given(repos, versions, versions)
def test_tags_are_read_and_replaced(repo: str, old: KubeVersion, new: KubeVersion) -> None:
    ref = f"{repo}:{old}"
    assert image_tag(ref) == str(old) and image_version(ref) == old
    assert with_tag(ref, str(new)) == f"{repo}:{new}"
    assert image_tag(repo) is None and image_version(repo) is None  # a registry port is no tag
    assert with_tag(f"{ref}@sha256:{'a' * 64}", str(new)) == f"{repo}:{new}"  # the digest pinned the old one


def test_skew_one_minor_at_a_time() -> None:
    nodes = [node("10.5.0.2", True, "v1.32.13"), node("10.5.0.3", False, "v1.32.13")]
    low = kp.lowest_version(nodes)
    assert low == KubeVersion(1, 32, 13)
    for ok in ("v1.32.13", "v1.32.20", "v1.33.0", "v1.33.13", "v1.33.99"):
        kp.check_skew(low, KubeVersion.parse(ok), nodes)
    with pytest.raises(kp.PlanError, match=r"2 minor releases ahead of v1.32.13.*upgrade to v1.33.x first"):
        kp.check_skew(low, KubeVersion.parse("1.34.0"), nodes)
    with pytest.raises(kp.PlanError, match="downgrades are not supported"):
        kp.check_skew(low, KubeVersion.parse("1.32.1"), nodes)
    with pytest.raises(kp.PlanError, match="different major"):
        kp.check_skew(low, KubeVersion.parse("2.0.0"), nodes)


def test_from_cannot_hide_an_older_component() -> None:
    nodes = [node("10.5.0.2", True, "v1.33.13"), node("10.5.0.3", False, "v1.32.13")]
    kp.check_from(KubeVersion(1, 32, 13), nodes)
    kp.check_from(KubeVersion(1, 32, 0), nodes)
    with pytest.raises(kp.PlanError, match=r"--from v1.33.0: machine.kubelet.image on 10.5.0.3 runs v1.32.13"):
        kp.check_from(KubeVersion(1, 33, 0), nodes)
    kp.check_from(KubeVersion(1, 33, 0), nodes, kubelet=False)


def test_the_oldest_component_decides() -> None:
    """A cluster whose control plane already runs v1.33 but a worker's kubelet v1.32: the skew
    counts from the kubelet, and without the kubelets only the control plane counts."""
    cp = node("10.5.0.2", True, "v1.33.13")
    worker = node("10.5.0.3", False, "v1.32.13")
    assert kp.lowest_version([cp, worker]) == KubeVersion(1, 32, 13)
    with pytest.raises(kp.PlanError, match="2 minor releases ahead"):
        kp.check_skew(kp.lowest_version([cp, worker]), KubeVersion(1, 34, 0), [cp, worker])
    assert kp.lowest_version([cp, worker], kubelet=False) == KubeVersion(1, 33, 13)


@given(st.lists(st.tuples(st.integers(1, 254), st.booleans()), min_size=1, max_size=8, unique_by=lambda t: t[0]))
def test_control_planes_first_then_workers_by_address(spec: list[tuple[int, bool]]) -> None:
    nodes = [node(f"10.5.0.{i}", cp, "v1.32.13") for i, cp in spec]
    got = kp.ordered(nodes)
    roles = [n.control_plane for n in got]
    assert roles == sorted(roles, reverse=True)
    for group in (True, False):
        addrs = [int(n.address.rsplit(".", 1)[1]) for n in got if n.control_plane is group]
        assert addrs == sorted(addrs)
    steps = kp.plan(nodes, KubeVersion(1, 33, 13))
    phases = [s.phase for s in steps]
    assert phases == sorted(phases, key=kp.PHASES.index)  # control plane, kube-proxy, kubelets
    kubelets = [s.node for s in steps if s.phase == kp.KUBELET]
    assert kubelets == [n.address for n in got]


def test_plan_patches_reach_the_target_and_resume_is_a_no_op() -> None:
    cp_text, worker_text = configs()
    to = KubeVersion(1, 33, 13)
    texts = {"10.5.0.2": cp_text, "10.5.0.3": worker_text}
    nodes = [config_node(a, t) for a, t in texts.items()]
    steps = kp.plan(nodes, to)
    assert [(s.phase, s.node) for s in steps] == [(kp.CONTROL_PLANE, "10.5.0.2"), (kp.KUBE_PROXY, "10.5.0.2"),
                                                 (kp.KUBELET, "10.5.0.2"), (kp.KUBELET, "10.5.0.3")]
    assert set(steps[0].fields) == set(CONTROL_PLANE_FIELDS)
    assert kp.describe(steps[0])[0] == "update kube-apiserver: v1.32.13 -> v1.33.13"
    for s in steps:  # applied as kosctl does: a strategic-merge patch of the node's config
        texts[s.node] = ConfigContainer.from_data(apply_patches(
            ConfigContainer.load(texts[s.node]).to_data(), [parse_patch(json.dumps(s.patch()))])).to_yaml()
    cp_images = configured_images(ConfigContainer.load(texts["10.5.0.2"]).v1alpha1)
    assert all(image_version(i) == to for i in cp_images.values()), cp_images
    assert cp_images[KUBELET_FIELD] == f"ghcr.io/siderolabs/kubelet:{to}"
    assert configured_images(ConfigContainer.load(texts["10.5.0.3"]).v1alpha1)[KUBELET_FIELD].endswith(str(to))
    again = kp.plan([config_node(a, t) for a, t in texts.items()], to)
    assert len(again) == len(steps) and all(not s.fields for s in again)  # resume: nothing left, still waited for


def test_no_upgrade_kubelet_and_disabled_proxy_leave_their_steps_out() -> None:
    cp = kp.NodeConfig("10.5.0.2", True, images_at("v1.32.13"), proxy_disabled=True)
    steps = kp.plan([cp, node("10.5.0.3", False, "v1.32.13")], KubeVersion(1, 33, 13), kubelet=False)
    assert [s.phase for s in steps] == [kp.CONTROL_PLANE]


def test_field_patches_name_the_config_paths() -> None:
    assert field_patch(KUBELET_FIELD, "k:v1") == {"machine": {"kubelet": {"image": "k:v1"}}}
    assert field_patch(PROXY_FIELD, "p:v1") == {"cluster": {"proxy": {"image": "p:v1"}}}
    assert set(VERSIONED_FIELDS) == set(DEFAULT_IMAGES)
    with pytest.raises(KeyError):
        field_patch("machine.install.image", "x")


# -- helpers ---------------------------------------------------------------------------------
def images_at(version: str) -> dict[str, str]:
    return {p: with_tag(i, version) for p, i in DEFAULT_IMAGES.items()}


def node(address: str, control_plane: bool, version: str) -> kp.NodeConfig:
    return kp.NodeConfig(address, control_plane, images_at(version))


def config_node(address: str, text: str) -> kp.NodeConfig:
    cfg = ConfigContainer.load(text).v1alpha1
    assert cfg is not None
    return kp.NodeConfig(address, cfg.machine_type in ("controlplane", "init"), configured_images(cfg))
