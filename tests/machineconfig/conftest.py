"""Shared fixtures: one generated secrets bundle and gen-config output per module (CA
generation is cheap but there is no reason to repeat it in every test)."""

from __future__ import annotations

import pytest

from kos.resources import machineconfig as mc


@pytest.fixture(scope="session")
def bundle() -> mc.SecretsBundle:
    return mc.SecretsBundle.generate()


@pytest.fixture(scope="session")
def generated(bundle: mc.SecretsBundle) -> mc.Generated:
    return mc.generate(mc.GenOptions("demo", "10.5.0.2", additional_sans=["api.example.org", "192.0.2.10"]), bundle)


TALOS_STYLE = """\
version: v1alpha1
debug: false
persist: true
machine:
  type: controlplane
  token: abcdef.0123456789abcdef
  ca:
    crt: {ca_crt}
    key: {ca_key}
  certSANs:
    - 10.5.0.100
  registries: {{}}
  kubelet:
    image: ghcr.io/siderolabs/kubelet:v1.30.0
    extraArgs:
      rotate-server-certificates: "true"
    extraMounts:
      - destination: /var/local
        type: bind
        source: /var/local
        options: [bind, rshared, rw]
    nodeIP:
      validSubnets: [10.5.0.0/24, "!10.5.0.99/32"]
    defaultRuntimeSeccompProfileEnabled: true
  network:
    hostname: cp-1
    interfaces:
      - interface: eth0
        addresses: [10.5.0.2/24]
        routes:
          - network: 0.0.0.0/0
            gateway: 10.5.0.1
            metric: 1024
        mtu: 1500
        vip:
          ip: 10.5.0.50
      - interface: br0
        dhcp: true
        bridge:
          interfaces: [eth1, eth2]
          stp:
            enabled: true
    nameservers: [1.1.1.1, 8.8.8.8]
    searchDomains: [example.org]
    extraHostEntries:
      - ip: 192.168.1.100
        aliases: [example, example.domain.tld]
  disks:
    - device: /dev/sdb
      partitions:
        - mountpoint: /var/mnt/extra
          size: 100 GB
  install:
    disk: /dev/sda
    image: ghcr.io/siderolabs/installer:v1.7.0
    wipe: false
    extraKernelArgs: [console=ttyS0]
  time:
    servers: [time.cloudflare.com]
  sysctls:
    net.ipv4.ip_forward: "1"
  files:
    - content: |
        [plugins]
      permissions: 0o644
      path: /var/cri/conf.d/x.toml
      op: create
  env:
    https_proxy: http://proxy:3128
  features:
    rbac: true
    stableHostname: true
    kubePrism:
      enabled: true
      port: 7445
    hostDNS:
      enabled: true
    kubernetesTalosAPIAccess:
      enabled: true
      allowedRoles: [os:reader]
      allowedKubernetesNamespaces: [kube-system]
  nodeLabels:
    rack: r1
cluster:
  id: aWQ=
  secret: c2VjcmV0
  controlPlane:
    endpoint: https://10.5.0.50:6443
  clusterName: talos-cluster
  network:
    dnsDomain: cluster.local
    podSubnets: [10.244.0.0/16]
    serviceSubnets: [10.96.0.0/12]
    cni:
      name: flannel
  token: abcdef.0123456789abcdef
  secretboxEncryptionSecret: {secretbox}
  ca:
    crt: {ca_crt}
    key: {ca_key}
  aggregatorCA:
    crt: {ca_crt}
    key: {ca_key}
  serviceAccount:
    key: {ca_key}
  apiServer:
    image: registry.k8s.io/kube-apiserver:v1.30.0
    certSANs: [10.5.0.50]
    disablePodSecurityPolicy: true
    auditPolicy:
      apiVersion: audit.k8s.io/v1
      kind: Policy
      rules:
        - level: Metadata
    admissionControl:
      - name: PodSecurity
        configuration:
          apiVersion: pod-security.admission.config.k8s.io/v1alpha1
  controllerManager:
    image: registry.k8s.io/kube-controller-manager:v1.30.0
  proxy:
    image: registry.k8s.io/kube-proxy:v1.30.0
  scheduler:
    image: registry.k8s.io/kube-scheduler:v1.30.0
  discovery:
    enabled: true
    registries:
      kubernetes:
        disabled: true
      service: {{}}
  etcd:
    ca:
      crt: {ca_crt}
      key: {ca_key}
    advertisedSubnets: [10.5.0.0/24]
  extraManifests: []
  inlineManifests: []
  allowSchedulingOnControlPlanes: true
"""


@pytest.fixture(scope="session")
def talos_style(bundle: mc.SecretsBundle) -> str:
    return TALOS_STYLE.format(ca_crt=bundle.certs.os.crt, ca_key=bundle.certs.os.key,
                              secretbox=bundle.secrets.secretbox_encryption_secret)
