"""Validation per mode: every error names path, value and expectation; all at once;
conflicting settings; worker/control-plane requirements; warnings."""

from __future__ import annotations

import pytest

from kos.resources import machineconfig as mc
from kos.resources.machineconfig import ConfigContainer, ConfigErrors


def _patched(base: ConfigContainer, patch: str) -> ConfigContainer:
    return ConfigContainer.from_data(mc.apply_patches(base.to_data(), [mc.parse_patch(patch)]))


def test_generated_configs_valid_in_all_modes(generated: mc.Generated) -> None:
    for mode in mc.MODES:
        assert generated.controlplane.validate(mode) == [] or mode == "container"
        generated.worker.validate(mode)
    warnings = generated.worker.validate("container")
    assert [w.path for w in warnings] == ["machine.install"]


def test_all_errors_at_once(generated: mc.Generated) -> None:
    bad = _patched(generated.controlplane, """\
machine:
  type: master
  token: short
  network:
    hostname: "bad_host!"
    interfaces:
      - interface: eth0
        addresses: [10.0.0.300/24, 10.0.0.1]
        routes: [{network: 0.0.0.0/0, gateway: not-ip}]
        mtu: 20
    nameservers: [dns.example]
  files:
    - path: relative/file
      op: clobber
      content: x
cluster:
  controlPlane:
    endpoint: http://10.5.0.2:6443
  clusterName: Bad_Name
  network:
    podSubnets: [{$patch: replace}, 10.96.0.0/16]
    serviceSubnets: [10.96.0.0/12, {$patch: replace}]
""")
    with pytest.raises(ConfigErrors) as ei:
        bad.validate("metal")
    msgs = {e.path: str(e) for e in ei.value.errors}
    expected = {
        "machine.type": "machine.type: 'master' is invalid, expected one of controlplane, worker",
        "machine.token": "machine.token: 'short' is invalid, expected a token of the form [a-z0-9]{6}.[a-z0-9]{16}",
        "machine.network.hostname": "machine.network.hostname: 'bad_host!' is invalid, expected a hostname",
        "machine.network.interfaces[0].addresses[0]": "'10.0.0.300/24' is invalid, expected an address with prefix",
        "machine.network.interfaces[0].addresses[1]": "'10.0.0.1' is invalid, expected an address with prefix",
        "machine.network.interfaces[0].routes[0].gateway": "'not-ip' is invalid, expected an IP address",
        "machine.network.interfaces[0].mtu": "20 is invalid, expected an MTU between 68 and 65535",
        "machine.network.nameservers[0]": "'dns.example' is invalid, expected an IP address",
        "machine.files[0].path": "'relative/file' is invalid, expected an absolute path",
        "machine.files[0].op": "'clobber' is invalid, expected one of create, append, overwrite",
        "cluster.controlPlane.endpoint": "'http://10.5.0.2:6443' is invalid, expected an https URL",
        "cluster.clusterName": "'Bad_Name' is invalid, expected lower-case letters",
        "cluster.network.serviceSubnets[0]": "expected a subnet not overlapping podSubnets[0] (10.96.0.0/16)",
    }
    for path, needle in expected.items():
        assert path in msgs, (path, list(msgs))
        assert needle in msgs[path], msgs[path]
    assert len(ei.value.errors) == len(expected)


def test_conflicting_settings(generated: mc.Generated) -> None:
    bad = _patched(generated.controlplane, """\
machine:
  install:
    diskSelector: {size: '> 10GB'}
  network:
    hostname: cp-1
    interfaces:
      - interface: eth0
        deviceSelector: {hardwareAddr: '00:11:*'}
      - interface: eth1
        bond: {mode: 802.3ad, interfaces: [eth2]}
        bridge: {interfaces: [eth3]}
      - interface: eth1
        ignore: true
        dhcp: true
  time:
    disabled: true
    servers: [pool.ntp.org]
cluster:
  network:
    cni: {name: flannel, urls: ['https://example.org/cni.yaml']}
  allowSchedulingOnMasters: false
  allowSchedulingOnControlPlanes: true
---
apiVersion: v1alpha1
kind: HostnameConfig
hostname: other
auto: stable
""")
    with pytest.raises(ConfigErrors) as ei:
        bad.validate("metal")
    paths = ei.value.paths
    assert set(paths) == {
        "machine.install.diskSelector",
        "machine.network.interfaces[0].deviceSelector",
        "machine.network.interfaces[1].bridge",
        "machine.network.interfaces[2].interface",
        "machine.network.interfaces[2].ignore",
        "machine.time.servers",
        "cluster.network.cni.urls",
        "cluster.allowSchedulingOnMasters",
        "HostnameConfig.auto",
        "HostnameConfig.hostname",
    }, paths
    text = str(ei.value)
    assert "either interface or deviceSelector, not both" in text
    assert "machine.network.hostname is 'cp-1'" in text
    assert "no URLs when cni.name is flannel" in text


def test_mode_specific_rules(generated: mc.Generated) -> None:
    no_disk = _patched(generated.worker, "machine:\n  install:\n    disk: {$patch: delete}\n")
    with pytest.raises(ConfigErrors) as ei:
        no_disk.validate("metal")
    assert ei.value.paths == ["machine.install.disk"]
    assert "missing, expected an install disk" in str(ei.value)
    assert no_disk.validate("cloud") == []
    assert no_disk.validate("container") == []
    with pytest.raises(ConfigErrors, match="<mode>: 'vm' is invalid, expected one of metal, cloud, container"):
        no_disk.validate("vm")


def test_control_plane_needs_ca_keys_worker_gets_warnings(generated: mc.Generated) -> None:
    cp_no_keys = _patched(generated.controlplane, "machine:\n  ca:\n    key: ''\ncluster:\n  etcd: {$patch: delete}\n")
    with pytest.raises(ConfigErrors) as ei:
        cp_no_keys.validate("cloud")
    assert set(ei.value.paths) == {"machine.ca.key", "cluster.etcd.ca.crt", "cluster.etcd.ca.key"}
    key = generated.controlplane.config.cluster.ca.key
    worker_with_key = _patched(generated.worker, f"cluster:\n  ca:\n    key: {key}\n")
    warnings = worker_with_key.validate("cloud")
    assert [w.path for w in warnings] == ["cluster.ca.key"]
    assert generated.controlplane.config.cluster.ca.key not in str(warnings[0])


def test_documents_validation() -> None:
    text = """\
apiVersion: v1alpha1
kind: LinkConfig
name: eth0
mtu: 10
addresses: [{address: 10.0.0.1}]
routes: [{}]
---
apiVersion: v1alpha1
kind: ResolverConfig
nameservers: [{address: one.one}]
---
apiVersion: v1alpha1
kind: HostnameConfig
auto: sometimes
"""
    with pytest.raises(ConfigErrors) as ei:
        ConfigContainer.load(text).validate("metal")
    assert sorted(ei.value.paths) == [
        "HostnameConfig.auto",
        "LinkConfig[eth0].addresses[0].address",
        "LinkConfig[eth0].mtu",
        "LinkConfig[eth0].routes[0]",
        "ResolverConfig.nameservers[0].address",
    ]
