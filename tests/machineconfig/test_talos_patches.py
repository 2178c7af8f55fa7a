"""Talos's strategic-merge patch semantics, pinned with the inputs and expected outputs of
Talos's own patch test cases (pkg/machinery/config/configpatcher/testdata: patchdelete,
auditpolicy, multidoc; facts restated as plain data, Go's zero-value fields left out) and the
``merge:"replace"`` / keyed-list rules of its v1alpha1 types."""

from __future__ import annotations

from typing import Any

import yaml

from kos.resources import machineconfig as mc


def patched(config: str, *patches: str) -> list[Any]:
    docs = list(yaml.safe_load_all(config))
    return mc.apply_patches(docs, [mc.parse_patch(p) for p in patches])


PATCHDELETE_CONFIG = """\
version: v1alpha1
machine:
  network:
    hostname: hostname1
    interfaces:
      - interface: eth0
        dhcp: true
      - interface: eth1
        addresses: [10.3.5.4/32]
---
apiVersion: v1alpha1
kind: SideroLinkConfig
apiUrl: https://siderolink.api/join?jointoken=secret&user=alice
---
apiVersion: v1alpha1
kind: ExtensionServiceConfig
name: foo
configFiles:
    - content: hello
      mountPath: /etc/foo
environment:
    - FOO=BAR
"""

PATCHDELETE_STRATEGIC1 = """\
apiVersion: v1alpha1
kind: SideroLinkConfig
$patch: delete
---
apiVersion: v1alpha1
kind: ExtensionServiceConfig
name: foo
configFiles:
  - content: hello
    $patch: delete
  - content: hello2
    mountPath: /etc/foo2
---
version: v1alpha1
machine:
  network:
    hostname:
      $patch: delete
    interfaces:
      - interface: eth0
        $patch: delete
      - interface: eth1
        addresses: [10.3.5.5/32]
      - interface: eth0
        dummy: true
"""


def test_patchdelete_documents_keys_and_list_items() -> None:
    assert patched(PATCHDELETE_CONFIG, PATCHDELETE_STRATEGIC1) == [
        {"version": "v1alpha1", "machine": {"network": {"interfaces": [
            {"interface": "eth1", "addresses": ["10.3.5.4/32", "10.3.5.5/32"]},
            {"interface": "eth0", "dummy": True},
        ]}}},
        {"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "foo",
         "configFiles": [{"content": "hello2", "mountPath": "/etc/foo2"}], "environment": ["FOO=BAR"]},
    ]


POD_SECURITY = {"apiVersion": "pod-security.admission.config.k8s.io/v1alpha1", "kind": "PodSecurityConfiguration",
                "defaults": {"enforce": "baseline", "enforce-version": "latest"},
                "exemptions": {"namespaces": ["kube-system"]}}
CONTROLPLANE = yaml.safe_dump({"version": "v1alpha1", "machine": {
    "type": "controlplane", "nodeLabels": {"node.kubernetes.io/exclude-from-external-load-balancers": ""}},
    "cluster": {"apiServer": {"admissionControl": [{"name": "PodSecurity", "configuration": POD_SECURITY}],
                              "auditPolicy": {"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                                              "rules": [{"level": "Metadata"}]}}}})


def test_patchdelete_admission_plugin_and_node_label() -> None:
    out = patched(CONTROLPLANE, """\
version: v1alpha1
cluster:
  apiServer:
    admissionControl:
    - name: PodSecurity
      $patch: delete
machine:
  nodeLabels:
    node.kubernetes.io/exclude-from-external-load-balancers:
      $patch: delete
""")
    assert out[0]["cluster"]["apiServer"]["admissionControl"] == []
    assert out[0]["machine"]["nodeLabels"] == {}


def test_patchdelete_add_plugin_delete_audit_policy_then_delete_plugin() -> None:
    strategic3 = """\
version: v1alpha1
cluster:
  apiServer:
    admissionControl:
    - name: PodSecurity2
      configuration:
        kind: PodSecurityConfiguration
        defaults:
          enforce: baseline
    auditPolicy:
      $patch: delete
"""
    strategic4 = "version: v1alpha1\ncluster:\n  apiServer:\n    admissionControl:\n    - name: PodSecurity2\n" \
                 "      $patch: delete\n"
    out = patched(CONTROLPLANE, strategic3)
    api = out[0]["cluster"]["apiServer"]
    assert [p["name"] for p in api["admissionControl"]] == ["PodSecurity", "PodSecurity2"]
    assert "auditPolicy" not in api
    out = patched(CONTROLPLANE, strategic3, strategic4)
    assert [p["name"] for p in out[0]["cluster"]["apiServer"]["admissionControl"]] == ["PodSecurity"]


def test_audit_policy_is_replaced_not_merged() -> None:
    config = """\
version: v1alpha1
machine:
  network:
    hostname: hostname-foo
cluster:
  apiServer:
    auditPolicy:
      apiVersion: audit.k8s.io/v1
      kind: Policy
      rules:
        - level: Metadata
  controlPlane:
    endpoint: https://localhost:6443
"""
    patch = "cluster:\n  apiServer:\n    auditPolicy:\n      apiVersion: audit.k8s.io/v1\n      kind: Policy\n" \
            "      rules:\n        - level: None\n"
    out = patched(config, patch)
    assert out[0]["cluster"]["apiServer"]["auditPolicy"] == {
        "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None"}]}
    assert out[0]["cluster"]["controlPlane"] == {"endpoint": "https://localhost:6443"}


def test_multidoc_json_patch_then_unnamed_document_merge() -> None:
    config = """\
version: v1alpha1
machine:
  network:
    hostname: hostname1
    interfaces:
      - interface: eth0
        dhcp: true
---
apiVersion: v1alpha1
kind: SideroLinkConfig
apiUrl: https://siderolink.api/join?jointoken=secret&user=alice
"""
    out = patched(config, '[{"op": "replace", "path": "/machine/network/interfaces/0/dhcp", "value": false}]',
                  "apiVersion: v1alpha1\nkind: SideroLinkConfig\n"
                  "apiUrl: https://siderolink.api/join?jointoken=secret&user=bob\n")
    assert out == [
        {"version": "v1alpha1", "machine": {"network": {"hostname": "hostname1",
                                                        "interfaces": [{"interface": "eth0", "dhcp": False}]}}},
        {"apiVersion": "v1alpha1", "kind": "SideroLinkConfig",
         "apiUrl": "https://siderolink.api/join?jointoken=secret&user=bob"},
    ]


def test_pod_and_service_subnets_are_replaced() -> None:
    config = "version: v1alpha1\ncluster:\n  network:\n    podSubnets: [10.244.0.0/16]\n" \
             "    serviceSubnets: [10.96.0.0/12]\n  apiServer:\n    certSANs: [a.example]\n"
    out = patched(config, "cluster:\n  network:\n    podSubnets: [10.10.0.0/16, fd00:10::/56]\n"
                          "    serviceSubnets: [10.20.0.0/16]\n  apiServer:\n    certSANs: [b.example]\n")
    assert out[0]["cluster"]["network"] == {"podSubnets": ["10.10.0.0/16", "fd00:10::/56"],
                                            "serviceSubnets": ["10.20.0.0/16"]}
    assert out[0]["cluster"]["apiServer"]["certSANs"] == ["a.example", "b.example"]  # other lists append


def test_admission_control_merges_by_name() -> None:
    out = patched(CONTROLPLANE, "cluster:\n  apiServer:\n    admissionControl:\n    - name: PodSecurity\n"
                                "      configuration:\n        defaults:\n          enforce: privileged\n"
                                "    - name: EventRateLimit\n      configuration: {kind: Configuration}\n")
    plugins = out[0]["cluster"]["apiServer"]["admissionControl"]
    assert [p["name"] for p in plugins] == ["PodSecurity", "EventRateLimit"]
    assert plugins[0]["configuration"]["defaults"] == {"enforce": "privileged", "enforce-version": "latest"}
    assert plugins[0]["configuration"]["exemptions"] == {"namespaces": ["kube-system"]}


def test_interfaces_merge_by_name_or_device_selector() -> None:
    config = """\
version: v1alpha1
machine:
  network:
    interfaces:
      - deviceSelector: {hardwareAddr: "00:11:*"}
        dhcp: true
      - interface: eth1
        addresses: [10.0.0.2/24]
        vlans:
          - vlanId: 10
            addresses: [10.10.0.2/24]
"""
    out = patched(config, """\
machine:
  network:
    interfaces:
      - deviceSelector: {hardwareAddr: "00:11:*"}
        mtu: 9000
      - interface: eth1
        vlans:
          - vlanId: 10
            mtu: 1400
          - vlanId: 20
            dhcp: true
      - deviceSelector: {driver: virtio_net}
        dhcp: true
""")
    ifaces = out[0]["machine"]["network"]["interfaces"]
    assert ifaces[0] == {"deviceSelector": {"hardwareAddr": "00:11:*"}, "dhcp": True, "mtu": 9000}
    assert ifaces[1]["vlans"] == [{"vlanId": 10, "addresses": ["10.10.0.2/24"], "mtu": 1400},
                                  {"vlanId": 20, "dhcp": True}]
    assert ifaces[2] == {"deviceSelector": {"driver": "virtio_net"}, "dhcp": True}


def test_list_item_delete_in_multidoc_documents_loads() -> None:
    """The same on typed kos documents: the deleted item stays deleted after loading."""
    config = """\
apiVersion: v1alpha1
kind: ExtensionServiceConfig
name: nut-client
configFiles:
  - content: MONITOR x
    mountPath: /usr/local/etc/nut/upsmon.conf
  - content: old
    mountPath: /usr/local/etc/nut/old.conf
environment: [NUT_UPS=upsname]
---
apiVersion: v1alpha1
kind: RegistryMirrorConfig
name: docker.io
endpoints:
  - url: https://mirror-a.local
  - url: https://mirror-b.local
"""
    out = patched(config, """\
apiVersion: v1alpha1
kind: ExtensionServiceConfig
name: nut-client
configFiles:
  - mountPath: /usr/local/etc/nut/old.conf
    $patch: delete
---
apiVersion: v1alpha1
kind: RegistryMirrorConfig
name: docker.io
endpoints:
  - url: https://mirror-a.local
    $patch: delete
""")
    c = mc.ConfigContainer.from_data(out)
    ext = c.document(mc.ExtensionServiceConfig, "nut-client")
    mirror = c.document(mc.RegistryMirrorConfig, "docker.io")
    assert ext is not None and [f.mount_path for f in ext.config_files] == ["/usr/local/etc/nut/upsmon.conf"]
    assert mirror is not None and [e.url for e in mirror.endpoints] == ["https://mirror-b.local"]


LINK_BASE = """\
apiVersion: v1alpha1
kind: LinkConfig
name: eth0
addresses:
  - address: 10.0.42.136/24
routes:
  - gateway: 10.0.42.1
"""


def test_patchlink_address_item_deleted_and_added() -> None:
    out = patched(LINK_BASE, "apiVersion: v1alpha1\nkind: LinkConfig\nname: eth0\naddresses:\n"
                             "  - address: 10.0.42.136/24\n    $patch: delete\n  - address: 10.0.42.137/24\n")
    assert out == [{"apiVersion": "v1alpha1", "kind": "LinkConfig", "name": "eth0",
                    "addresses": [{"address": "10.0.42.137/24"}], "routes": [{"gateway": "10.0.42.1"}]}]
    assert mc.ConfigContainer.from_data(out).document(mc.LinkConfig, "eth0") is not None


def test_patchmixed_documents_of_one_patch_apply_in_order() -> None:
    base = "apiVersion: v1alpha1\nkind: RegistryMirrorConfig\nname: registry.k8s.io\nendpoints:\n" \
           "  - url: http://172.20.0.1:5001\n---\n" + LINK_BASE
    patch = """\
apiVersion: v1alpha1
kind: RegistryMirrorConfig
name: registry.k8s.io
endpoints:
  $patch: delete
---
apiVersion: v1alpha1
kind: RegistryMirrorConfig
name: registry.k8s.io
endpoints:
  - url: http://172.20.0.251:50001
---
apiVersion: v1alpha1
kind: RegistryMirrorConfig
name: registry.k8s.io
skipFallback: true
"""
    out = patched(base, patch)
    assert out[0] == {"apiVersion": "v1alpha1", "kind": "RegistryMirrorConfig", "name": "registry.k8s.io",
                      "endpoints": [{"url": "http://172.20.0.251:50001"}], "skipFallback": True}
    assert out[1] == yaml.safe_load(LINK_BASE)
