"""Talos configs load unmodified and mean the same (issue 16 part 3): the gen-config output
of six Talos releases (v1.3 .. v1.14, control plane and worker; v1.12+ multi-document) loads
strictly and validates in metal mode, and the documents Talos users add land in typed kos
documents with Talos's field names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kos.resources import machineconfig as mc
from kos.resources.machineconfig import views

from .talos_fixtures import DIR, fill, talos_configs

CONFIGS = talos_configs()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_talos_config_loads_unmodified_and_validates(name: str) -> None:
    c = mc.ConfigContainer.load(CONFIGS[name])
    c.validate("metal")  # raises ConfigErrors on any error
    assert c.machine_type in ("controlplane", "worker")
    again = mc.ConfigContainer.load(c.to_yaml())
    assert again == c  # stable round trip


def test_share_of_talos_configs_loading_is_all() -> None:
    loaded = 0
    for text in CONFIGS.values():
        try:
            mc.ConfigContainer.load(text).validate("metal")
            loaded += 1
        except mc.ConfigErrors:
            pass
    assert loaded == len(CONFIGS) == 13


def test_workers_without_cluster_name() -> None:
    c = mc.ConfigContainer.load(CONFIGS["v1.3 worker"])
    assert c.config.cluster.cluster_name == ""
    c.validate("metal")
    cp = mc.ConfigContainer.load(CONFIGS["v1.3 controlplane"])
    cp.config.cluster.cluster_name = ""
    with pytest.raises(mc.ConfigErrors, match=r"cluster\.clusterName"):
        cp.validate("metal")


def test_v112_plus_output_is_multi_document() -> None:
    c = mc.ConfigContainer.load(CONFIGS["v1.14 controlplane"])
    assert c.config.machine.install.grub_use_uki_cmdline is True
    assert views.hostname(c).stable
    resolver = c.document(mc.ResolverConfig)
    assert resolver is not None and resolver.host_dns.enabled and resolver.host_dns.forward_kube_dns_to_host
    mirror = c.document(mc.RegistryMirrorConfig, "docker.io")
    assert mirror is not None and mirror.endpoints[0].url == "https://mirror.gcr.io"


def test_user_documents_are_typed_with_talos_names() -> None:
    c = mc.ConfigContainer.load(CONFIGS["v1.14 controlplane + user documents"])
    cfg = c.config
    assert cfg.machine.network.interfaces[0].bridge_port.master == "br0"
    assert cfg.machine.network.interfaces[1].bridge.vlan.vlan_filtering is True
    assert cfg.machine.features.image_cache.local_enabled is True
    assert cfg.cluster.api_server.authorization_config[0].type == "Webhook"
    assert sorted(d.KIND for d in c.documents) == sorted([
        "HostnameConfig", "ResolverConfig", "RegistryMirrorConfig", "VolumeConfig", "UserVolumeConfig",
        "SysctlConfig", "KernelModuleConfig", "RegistryAuthConfig", "TimeSyncConfig", "KmsgLogConfig",
        "NetworkDefaultActionConfig", "NetworkRuleConfig", "VLANConfig", "BondConfig", "BridgeConfig",
        "DHCPv4Config", "Layer2VIPConfig", "LinkConfig", "ExtensionServiceConfig", "TrustedRootsConfig"])
    resolver = c.document(mc.ResolverConfig)
    assert resolver is not None and resolver.host_dns.enabled  # the patch merged into the generated document
    assert [(n.address, n.protocol, n.tls_server_name) for n in resolver.nameservers] == [
        ("9.9.9.9", "DoT", "dns.quad9.net"), ("1.1.1.1", "", "")]
    vol = c.document(mc.UserVolumeConfig, "local-data")
    assert vol is not None and vol.encryption.keys[1].static is not None
    assert "topsecret" not in c.redacted().to_yaml() and "my-password" not in c.redacted().to_yaml()
    assert views.time_servers(c) == ["pool.ntp.org"]
    link = next(v for v in views.links(c) if v.name == "enp0s2")
    assert link.dhcp and link.vip == "10.5.0.50" and link.mtu == 9000
    br0 = next(v for v in views.links(c) if v.name == "br0")
    assert set(br0.bridge_ports) == {"eth3", "eth2"}


@pytest.mark.parametrize(("doc", "path", "expected"), [
    ("kind: VLANConfig\nname: v\nvlanID: 5000\nparent: eth0\n", "VLANConfig[v].vlanID", "between 1 and 4094"),
    ("kind: BondConfig\nname: b\nlinks: [a]\nbondMode: nope\n", "BondConfig[b].bondMode", "802.3ad"),
    ("kind: NetworkRuleConfig\nname: r\nportSelector: {ports: [70000], protocol: tcp}\n",
     "NetworkRuleConfig[r].portSelector.ports[0]", "0-65535"),
    ("kind: NetworkDefaultActionConfig\ningress: maybe\n", "NetworkDefaultActionConfig.ingress", "accept, block"),
    ("kind: KmsgLogConfig\nname: k\nurl: http://x:1\n", "KmsgLogConfig[k].url", "tcp/udp URL"),
    ("kind: RegistryMirrorConfig\nname: docker.io\nendpoints: [{url: ftp://m}]\n",
     "RegistryMirrorConfig[docker.io].endpoints[0].url", "https/http URL"),
    ("kind: RegistryAuthConfig\nname: r\nusername: u\nidentityToken: t\n", "RegistryAuthConfig[r].identityToken",
     "not both"),
    ("kind: TimeSyncConfig\nbootTimeout: soon\n", "TimeSyncConfig.bootTimeout", "duration"),
    ("kind: UserVolumeConfig\nname: bad_name\n", "UserVolumeConfig[bad_name].name", "letters, digits"),
    ("kind: VolumeConfig\nname: DATA\n", "VolumeConfig[DATA].name", "EPHEMERAL"),
    ("kind: Layer2VIPConfig\nname: not-an-ip\nlink: eth0\n", "Layer2VIPConfig[not-an-ip].name", "IP address"),
    ("kind: ResolverConfig\nnameservers: [{address: 9.9.9.9, protocol: DoT}]\n",
     "ResolverConfig.nameservers[0].tlsServerName", "TLS server name"),
    ("kind: DHCPv4Config\nname: eth0\nclientIdentifier: duid\n", "DHCPv4Config[eth0].duidRaw", "raw DUID"),
    ("kind: ExtensionServiceConfig\nname: e\nenvironment: [novalue]\n", "ExtensionServiceConfig[e].environment[0]",
     "NAME=value"),
    ("kind: SysctlConfig\nparams: {'bad key!': '1'}\n", "SysctlConfig.params.bad key!", "sysctl name"),
])
def test_document_rules_name_the_path(doc: str, path: str, expected: str) -> None:
    with pytest.raises(mc.ConfigErrors) as ei:
        mc.ConfigContainer.load("apiVersion: v1alpha1\n" + doc).validate("metal")
    assert path in ei.value.paths, ei.value.paths
    assert expected in str(ei.value)


def test_kosctl_validate_and_patch_talos_files(tmp_path: Path) -> None:
    cp = tmp_path / "controlplane.yaml"
    cp.write_text(fill((DIR / "v1.14-controlplane.yaml").read_text()))
    out = tmp_path / "patched.yaml"
    for args in (["validate", "-c", str(cp), "-m", "metal"],
                 ["mc", "patch", str(cp), "-p", f"@{DIR / 'user-patch.yaml'}", "-o", str(out)]):
        r = subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", *args], capture_output=True, text=True,
                           timeout=60, check=False)
        assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", "validate", "-c", str(out), "-m", "metal"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
