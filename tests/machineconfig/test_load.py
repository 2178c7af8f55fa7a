"""Loading: a Talos-style config loads strictly; strict vs non-strict unknown fields; wrong
types, bad YAML and bad documents give errors naming path, value and expectation, all at
once; multi-doc; stable round trip; redaction."""

from __future__ import annotations

import pytest

from kos.resources import machineconfig as mc
from kos.resources.machineconfig import REDACTED, ConfigContainer, ConfigErrors


def test_talos_style_config_loads_and_validates(talos_style: str) -> None:
    c = ConfigContainer.load(talos_style)
    cfg = c.config
    assert cfg.machine.type == "controlplane"
    iface = cfg.machine.network.interfaces[0]
    assert iface.interface == "eth0" and iface.addresses == ["10.5.0.2/24"] and iface.mtu == 1500
    assert iface.routes[0].gateway == "10.5.0.1" and iface.routes[0].metric == 1024
    assert iface.vip.ip == "10.5.0.50"
    assert cfg.machine.network.interfaces[1].bridge.interfaces == ["eth1", "eth2"]
    assert cfg.machine.kubelet.node_ip.valid_subnets == ["10.5.0.0/24", "!10.5.0.99/32"]
    assert cfg.cluster.control_plane.endpoint == "https://10.5.0.50:6443"
    assert cfg.cluster.network.pod_subnets == ["10.244.0.0/16"]
    assert cfg.cluster.allow_scheduling_on_control_planes is True
    assert cfg.machine.files[0].permissions == 0o644
    assert c.validate("metal") == []


def test_round_trip_is_stable(talos_style: str, generated: mc.Generated) -> None:
    for text in (talos_style, generated.controlplane.to_yaml(), generated.worker.to_yaml()):
        c1 = ConfigContainer.load(text)
        y1 = c1.to_yaml()
        c2 = ConfigContainer.load(y1)
        assert c2 == c1
        assert c2.to_yaml() == y1


def test_unknown_fields_strict_and_lenient() -> None:
    text = "version: v1alpha1\nmachine:\n  type: worker\n  nope: 1\n  network:\n    bogus: [x]\n"
    with pytest.raises(ConfigErrors) as ei:
        ConfigContainer.load(text)
    assert ei.value.paths == ["machine.nope", "machine.network.bogus"]
    assert "machine.nope: unknown field (value 1), expected one of: type, token" in str(ei.value)
    lenient = ConfigContainer.load(text, strict=False)
    assert [w.path for w in lenient.warnings] == ["machine.nope", "machine.network.bogus"]
    assert lenient.config.machine.type == "worker"
    assert "nope" not in lenient.to_yaml()


def test_wrong_types_all_reported() -> None:
    text = """\
version: v1alpha1
debug: "yes"
machine:
  type: worker
  certSANs: a.example
  network:
    interfaces:
      - interface: eth0
        mtu: big
        addresses: [10.0.0.1/24, 42]
  sysctls: [a, b]
cluster:
  network:
    podSubnets: {a: b}
"""
    with pytest.raises(ConfigErrors) as ei:
        ConfigContainer.load(text)
    got = {e.path: str(e) for e in ei.value.errors}
    assert got == {
        "debug": "debug: 'yes' is invalid, expected a boolean (true/false)",
        "machine.certSANs": "machine.certSANs: 'a.example' is invalid, expected a list of string",
        "machine.network.interfaces[0].mtu": "machine.network.interfaces[0].mtu: 'big' is invalid, expected an integer",
        "machine.network.interfaces[0].addresses[1]":
            "machine.network.interfaces[0].addresses[1]: 42 is invalid, expected a string",
        "machine.sysctls": "machine.sysctls: ['a', 'b'] is invalid, expected a mapping",
        "cluster.network.podSubnets": "cluster.network.podSubnets: {a: 'b'} is invalid, expected a list of string",
    }
    assert "6 errors" in str(ei.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("version: v1alpha1\nmachine: [\n", "<yaml line 3, column 1>"),
        ("version: v1alpha1\nmachine:\n\ttype: worker\n", "line 3"),
        ("- a\n- b\n", "<document 0>: ['a', 'b'] is invalid, expected a mapping"),
        ("", "expected at least one config document"),
        ("version: v1alpha2\n", "version: 'v1alpha2' is invalid, expected 'v1alpha1'"),
        ("apiVersion: v1alpha1\nkind: FooConfig\n", "<document 0>.kind: 'FooConfig' is invalid, expected one of"),
        ("apiVersion: v1\nkind: HostnameConfig\nhostname: x\n", "HostnameConfig.apiVersion: 'v1' is invalid"),
        ("apiVersion: v1alpha1\nkind: LinkConfig\nmtu: 1500\n", "LinkConfig.name: missing, expected a non-empty name"),
        ("version: v1alpha1\n---\nversion: v1alpha1\n", "at most one v1alpha1 document"),
        (b"\xff\xfe", "expected UTF-8 text"),
    ],
)
def test_bad_documents(text: str | bytes, needle: str) -> None:
    with pytest.raises(ConfigErrors) as ei:
        ConfigContainer.load(text)
    assert needle in str(ei.value)


def test_multi_document() -> None:
    text = """\
version: v1alpha1
machine:
  type: worker
---
apiVersion: v1alpha1
kind: HostnameConfig
hostname: node-7
---
apiVersion: v1alpha1
kind: LinkConfig
name: eth1
mtu: 9000
addresses:
  - address: 192.168.1.100/24
routes:
  - destination: 10.0.0.0/8
    gateway: 192.168.1.1
---
apiVersion: v1alpha1
kind: LinkConfig
name: eth2
up: false
---
apiVersion: v1alpha1
kind: StaticHostConfig
name: 10.5.0.2
hostnames: [my-server]
"""
    c = ConfigContainer.load(text)
    assert c.machine_type == "worker"
    host = c.document(mc.HostnameConfig)
    assert host is not None and host.hostname == "node-7"
    eth1 = c.document(mc.LinkConfig, "eth1")
    assert eth1 is not None and eth1.mtu == 9000 and eth1.addresses[0].address == "192.168.1.100/24"
    assert eth1.routes[0].gateway == "192.168.1.1"
    eth2 = c.document(mc.LinkConfig, "eth2")
    assert eth2 is not None and eth2.up is False
    assert [d.describe() for d in c.documents] == ["HostnameConfig", "LinkConfig 'eth1'", "LinkConfig 'eth2'",
                                                    "StaticHostConfig '10.5.0.2'"]
    again = ConfigContainer.load(c.to_yaml())
    assert again == c
    assert "up: false" in c.to_yaml()
    dup = text + "---\napiVersion: v1alpha1\nkind: LinkConfig\nname: eth1\n"
    with pytest.raises(ConfigErrors, match="one LinkConfig 'eth1' document"):
        ConfigContainer.load(dup)


def test_redaction_hides_every_secret(generated: mc.Generated, bundle: mc.SecretsBundle) -> None:
    text = generated.controlplane.redacted().to_yaml()
    secrets = [bundle.cluster.secret, bundle.secrets.bootstrap_token, bundle.secrets.secretbox_encryption_secret,
               bundle.trustd_info.token, bundle.certs.os.key, bundle.certs.k8s.key, bundle.certs.etcd.key,
               bundle.certs.k8s_aggregator.key, bundle.certs.k8s_service_account.key]
    for s in secrets:
        assert s and s not in text
    assert text.count(REDACTED) == len(secrets)
    # certificates and the cluster id are not secret
    assert bundle.certs.os.crt in text and bundle.cluster.id in text
    # redaction does not touch the original
    assert bundle.certs.os.key in generated.controlplane.to_yaml()


def test_diff(generated: mc.Generated) -> None:
    cp = generated.controlplane
    assert mc.config_diff(cp, cp) == ""
    patched = ConfigContainer.from_data(mc.apply_patches(cp.to_data(), [
        mc.parse_patch("machine:\n  network:\n    hostname: cp-9\n  token: zzzzzz.zzzzzzzzzzzzzzzz\n")
    ]))
    d = mc.config_diff(cp, patched)
    assert "+    hostname: cp-9" in d
    assert "zzzzzz" not in d  # secrets never appear in diffs
    assert d.startswith("--- current\n+++ new\n")


def test_changed_paths_and_reboot(generated: mc.Generated) -> None:
    cp = generated.controlplane
    assert mc.changed_paths(cp, cp) == [] and mc.reboot_required(cp, cp) == []
    live = ConfigContainer.from_data(mc.apply_patches(cp.to_data(), [mc.parse_patch(
        "machine:\n  time:\n    servers: [pool.ntp.org]\n  token: zzzzzz.zzzzzzzzzzzzzzzz\n"
        "---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: cp-2\n"
    )]))
    assert mc.changed_paths(cp, live) == ["machine.token", "machine.time", "HostnameConfig"]
    assert mc.reboot_required(cp, live) == []
    reboot = ConfigContainer.from_data(mc.apply_patches(cp.to_data(), [mc.parse_patch(
        '[{"op": "replace", "path": "/machine/install/disk", "value": "/dev/vdb"}]'
    )]))
    assert mc.reboot_required(cp, reboot) == ["machine.install.disk"]


def test_string_maps_accept_scalars() -> None:
    text = ("version: v1alpha1\nmachine:\n  type: worker\n  sysctls:\n    net.ipv4.ip_forward: 1\n"
            "  kubelet:\n    extraArgs:\n      rotate-server-certificates: true\n")
    c = ConfigContainer.load(text)
    assert c.config.machine.sysctls == {"net.ipv4.ip_forward": "1"}
    assert c.config.machine.kubelet.extra_args == {"rotate-server-certificates": "true"}
    with pytest.raises(ConfigErrors, match=r"machine\.env\.A: \[1\] is invalid, expected a string"):
        ConfigContainer.load("version: v1alpha1\nmachine:\n  env: {A: [1]}\n")


def test_redaction_inside_opaque_sections() -> None:
    text = """\
version: v1alpha1
machine:
  type: worker
  registries:
    config:
      registry.example:
        auth: {username: u, password: hunter2}
        tls:
          clientIdentity: {crt: Y3J0, key: a2V5}
  systemDiskEncryption:
    state:
      provider: luks2
      keys: [{static: {passphrase: sesame}, slot: 0}]
  network:
    interfaces:
      - interface: wg0
        wireguard: {privateKey: cHJpdg==, listenPort: 51820}
"""
    c = ConfigContainer.load(text)
    shown = c.redacted().to_yaml()
    for secret in ("hunter2", "a2V5", "sesame", "cHJpdg=="):
        assert secret not in shown
    assert "username: u" in shown and "crt: Y3J0" in shown and "listenPort: 51820" in shown
    assert ConfigContainer.load(c.to_yaml()) == c
