"""Bootstrap manifests: what a fresh cluster needs once its API server is up.

``render_manifests(inputs) -> dict[id, ManifestSpec]``, ids sort in apply order:

* ``00-bootstrap-token`` - the bootstrap token Secret kubelets authenticate with (sensitive)
* ``01-csr-rbac`` - RBAC letting bootstrappers create node CSRs, auto-approving node client
  CSRs and renewals
* ``10-kube-proxy`` - ServiceAccount, ClusterRoleBinding, DaemonSet
* ``11-coredns`` - ServiceAccount, ClusterRole(+Binding), ConfigMap (Corefile), Deployment,
  Service ``kube-dns`` at the 10th service IP; external names are forwarded to the node's
  resolv.conf, or to the host DNS cache at ``169.254.116.108`` with ``forwardKubeDNSToHost``
* ``12-flannel`` - the default CNI (``cluster.network.cni.name: flannel``); ``none`` renders no
  CNI; ``custom`` turns each of ``cni.urls`` into a URL manifest ``13-cni-custom-N``

kube-proxy and flannel run in the host network and reach the API server at
``cluster.controlPlane.endpoint``, or, with KubePrism on (``kube_prism_port``), at the node's
KubePrism load balancer ``127.0.0.1:<port>`` (``KUBERNETES_SERVICE_HOST``/``_PORT``), as Talos
does: they keep working while any one API server is up.
* ``60-inline-<name>`` - ``cluster.inlineManifests`` (parsed and checked here)
* ``70-extra-N`` - ``cluster.extraManifests`` URLs (fetched by the applier)

Pure: explicit inputs only; objects are dicts dumped as multi-document YAML.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from kos.controllers.k8s.kubelet import service_ip
from kos.resources.k8s import ManifestSpec
from kos.resources.machineconfig import ConfigErrors, load_manifests
from kos.resources.versions import COREDNS_VERSION, FLANNEL_CNI_TAG, FLANNEL_VERSION, KUBERNETES_VERSION

DEFAULT_VERSION = KUBERNETES_VERSION
COREDNS_IMAGE = f"registry.k8s.io/coredns/coredns:{COREDNS_VERSION}"
FLANNEL_IMAGE = f"ghcr.io/flannel-io/flannel:{FLANNEL_VERSION}"
FLANNEL_CNI_IMAGE = f"ghcr.io/flannel-io/flannel-cni-plugin:{FLANNEL_CNI_TAG}"
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
CNI_NAMES = ("flannel", "none", "custom")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ManifestRenderError(ValueError):
    """Config the bootstrap manifests cannot be rendered from (names the field and value)."""


@dataclass(frozen=True)
class InlineManifest:
    name: str
    contents: str


@dataclass(frozen=True)
class ManifestInputs:
    bootstrap_token: str
    endpoint: str
    service_subnets: list[str]
    pod_subnets: list[str]
    dns_domain: str = "cluster.local"
    cni: str = "flannel"
    cni_urls: list[str] = field(default_factory=list)
    proxy_image: str = f"registry.k8s.io/kube-proxy:{DEFAULT_VERSION}"
    proxy_disabled: bool = False
    proxy_extra_args: dict[str, str] = field(default_factory=dict)
    coredns_disabled: bool = False
    coredns_image: str = COREDNS_IMAGE
    forward_kube_dns_to_host: bool = False  # CoreDNS forwards to the host DNS cache (169.254.116.108)
    kube_prism_port: int = 0  # > 0: kube-proxy and flannel use KubePrism on 127.0.0.1:<port>
    extra_manifests: list[str] = field(default_factory=list)
    inline_manifests: list[InlineManifest] = field(default_factory=list)


def _docs(objs: list[dict[str, Any]]) -> str:
    return str(yaml.safe_dump_all(objs, sort_keys=False))


def _spec(objs: list[dict[str, Any]]) -> ManifestSpec:
    return ManifestSpec(objects=_docs(objs), count=len(objs))


def _meta(name: str, namespace: str | None = "kube-system", **labels: str) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name}
    if namespace:
        md["namespace"] = namespace
    if labels:
        md["labels"] = dict(labels)
    return md


def bootstrap_token_secret(token: str) -> dict[str, Any]:
    m = TOKEN_RE.match(token)
    if m is None:
        raise ManifestRenderError("cluster.token: invalid, expected a bootstrap token such as abcdef.0123456789abcdef")
    tid, secret = m.groups()
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": _meta(f"bootstrap-token-{tid}"),
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {
            "token-id": tid, "token-secret": secret,
            "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
            "auth-extra-groups": "system:bootstrappers:kos",
        },
    }


def _crb(name: str, role: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": _meta(name, None),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    }


def _group(name: str) -> dict[str, str]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name}


def _sa(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name)}


def csr_rbac() -> list[dict[str, Any]]:
    return [
        _crb("system-bootstrap-node-bootstrapper", "system:node-bootstrapper", [_group("system:bootstrappers")]),
        _crb("system-bootstrap-approve-node-client-csr",
             "system:certificates.k8s.io:certificatesigningrequests:nodeclient", [_group("system:bootstrappers")]),
        _crb("system-bootstrap-node-renewal",
             "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [_group("system:nodes")]),
        # a node leaving the cluster (graceful reset) deletes its own Node; NodeRestriction
        # limits a node to its own object
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta(NODE_SELF_DELETE, None),
         "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["delete"]}]},
        _crb(NODE_SELF_DELETE, NODE_SELF_DELETE, [_group("system:nodes")]),
    ]


NODE_SELF_DELETE = "kos:node-self-delete"


def _critical_tolerations() -> list[dict[str, Any]]:
    return [{"operator": "Exists"}]


def kube_proxy(inp: ManifestInputs) -> list[dict[str, Any]]:
    labels = {"k8s-app": "kube-proxy", "tier": "node"}
    # the API server as in-cluster config with the endpoint instead of the kubernetes Service
    # (kube-proxy is what makes that Service work): service account token and cluster CA
    flags = {"cluster-cidr": ",".join(inp.pod_subnets), "hostname-override": "$(NODE_NAME)",
             "proxy-mode": "iptables", "conntrack-max-per-core": "0"}
    for k, v in sorted(inp.proxy_extra_args.items()):
        flags[k.removeprefix("--")] = v
    ds = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": _meta("kube-proxy", **labels),
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": "kube-proxy",
                    "tolerations": _critical_tolerations(),
                    "containers": [{
                        "name": "kube-proxy",
                        "image": inp.proxy_image,
                        "command": ["/usr/local/bin/kube-proxy", *[f"--{k}={v}" for k, v in flags.items()]],
                        "env": [{"name": "NODE_NAME",
                                 "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
                                *api_server_env(inp)],
                        "securityContext": {"privileged": True},
                        # no /lib/modules: iptables mode loads nothing itself (the kernel
                        # autoloads netfilter modules), and kos nodes may have no module tree
                        "volumeMounts": [
                            {"name": "ssl-certs-host", "mountPath": "/etc/ssl/certs", "readOnly": True},
                            {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
                        ],
                    }],
                    "volumes": [
                        {"name": "ssl-certs-host", "hostPath": {"path": "/etc/ssl/certs"}},
                        {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                    ],
                },
            },
        },
    }
    return [_sa("kube-proxy"), _crb("kube-proxy", "system:node-proxier",
                                    [{"kind": "ServiceAccount", "name": "kube-proxy", "namespace": "kube-system"}]), ds]


KUBE_DNS_HOST_ADDRESS = "169.254.116.108"  # the host DNS cache, as pods reach it (resources.network)


def api_server_env(inp: ManifestInputs) -> list[dict[str, str]]:
    """How a host-network component reaches the API server (client-go's in-cluster config)."""
    if inp.kube_prism_port:
        host, port = "127.0.0.1", inp.kube_prism_port
    else:
        host, port = _endpoint_host(inp.endpoint), _endpoint_port(inp.endpoint)
    return [{"name": "KUBERNETES_SERVICE_HOST", "value": host}, {"name": "KUBERNETES_SERVICE_PORT", "value": str(port)}]


def corefile(domain: str, *, forward_to_host: bool = False) -> str:
    upstream = KUBE_DNS_HOST_ADDRESS if forward_to_host else "/etc/resolv.conf"
    return (
        ".:53 {\n"
        "    errors\n"
        "    health {\n        lameduck 5s\n    }\n"
        "    ready\n"
        f"    kubernetes {domain} in-addr.arpa ip6.arpa {{\n"
        "        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n        ttl 30\n    }\n"
        "    prometheus :9153\n"
        f"    forward . {upstream} {{\n        max_concurrent 1000\n    }}\n"
        "    cache 30\n    loop\n    reload\n    loadbalance\n"
        "}\n"
    )


def coredns(inp: ManifestInputs) -> list[dict[str, Any]]:
    dns_ips = [service_ip(s, 10) for s in inp.service_subnets]
    labels = {"k8s-app": "kube-dns"}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": _meta("system:coredns", None),
        "rules": [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    }
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("coredns"),
          "data": {"Corefile": corefile(inp.dns_domain, forward_to_host=inp.forward_kube_dns_to_host)}}
    deploy = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta("coredns", **labels),
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",
                    "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                                     "effect": "NoSchedule"},
                                    {"key": "node.cloudprovider.kubernetes.io/uninitialized", "operator": "Exists",
                                     "effect": "NoSchedule"}],
                    "dnsPolicy": "Default",
                    "containers": [{
                        "name": "coredns",
                        "image": inp.coredns_image,
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
                        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                  {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                  {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}],
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}},
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                                          "initialDelaySeconds": 60, "timeoutSeconds": 5, "failureThreshold": 5},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"}},
                        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
                    }],
                    "volumes": [{"name": "config-volume", "configMap": {
                        "name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                },
            },
        },
    }
    families = ["IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4" for ip in dns_ips]
    svc = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {**_meta("kube-dns", **labels, **{"kubernetes.io/name": "CoreDNS"}),
                     "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
        "spec": {
            "selector": labels,
            "clusterIP": dns_ips[0],
            "clusterIPs": dns_ips,
            "ipFamilies": families,
            "ipFamilyPolicy": "RequireDualStack" if len(dns_ips) > 1 else "SingleStack",
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                      {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                      {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}],
        },
    }
    return [_sa("coredns"), role,
            _crb("system:coredns", "system:coredns",
                 [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]), cm, deploy, svc]


def flannel(inp: ManifestInputs) -> list[dict[str, Any]]:
    v4 = [s for s in inp.pod_subnets if ipaddress.ip_network(s).version == 4]
    v6 = [s for s in inp.pod_subnets if ipaddress.ip_network(s).version == 6]
    net_conf: dict[str, Any] = {"Backend": {"Type": "vxlan", "Port": 4789}}
    if v4:
        net_conf["Network"] = v4[0]
    if v6:
        net_conf["EnableIPv6"] = True
        net_conf["IPv6Network"] = v6[0]
    if not v4:
        net_conf["EnableIPv4"] = False
    # 0.3.1: the flannel plugin (containernetworking/plugins 0.9.1) speaks CNI up to 0.4.0
    cni_conf = {"name": "cbr0", "cniVersion": "0.3.1", "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ]}
    labels = {"app": "flannel", "k8s-app": "flannel", "tier": "node"}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta("flannel", None),
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
        ],
    }
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("kube-flannel-cfg", **labels),
          "data": {"cni-conf.json": json.dumps(cni_conf, indent=2), "net-conf.json": json.dumps(net_conf, indent=2)}}
    ds = {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta("kube-flannel", **labels),
        "spec": {
            "selector": {"matchLabels": {"app": "flannel"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": "flannel",
                    "tolerations": _critical_tolerations(),
                    "initContainers": [
                        {"name": "install-cni-plugin", "image": FLANNEL_CNI_IMAGE,
                         "command": ["cp"], "args": ["-f", "/flannel", "/opt/cni/bin/flannel"],
                         "volumeMounts": [{"name": "cni-plugin", "mountPath": "/opt/cni/bin"}]},
                        {"name": "install-config", "image": FLANNEL_IMAGE,
                         "command": ["cp"], "args": ["-f", "/etc/kube-flannel/cni-conf.json",
                                                     "/etc/cni/net.d/10-flannel.conflist"],
                         "volumeMounts": [{"name": "cni", "mountPath": "/etc/cni/net.d"},
                                          {"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"}]},
                    ],
                    "containers": [{
                        "name": "kube-flannel", "image": FLANNEL_IMAGE,
                        "command": ["/opt/bin/flanneld"], "args": ["--ip-masq", "--kube-subnet-mgr"],
                        "env": [
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            *api_server_env(inp),
                        ],
                        "resources": {"requests": {"cpu": "100m", "memory": "50Mi"}},
                        "securityContext": {"privileged": False,
                                            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
                        "volumeMounts": [{"name": "run", "mountPath": "/run/flannel"},
                                         {"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"},
                                         {"name": "xtables-lock", "mountPath": "/run/xtables.lock"}],
                    }],
                    "volumes": [
                        {"name": "run", "hostPath": {"path": "/run/flannel"}},
                        {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                        {"name": "cni-plugin", "hostPath": {"path": "/opt/cni/bin"}},
                        {"name": "cni", "hostPath": {"path": "/etc/cni/net.d"}},
                        {"name": "flannel-cfg", "configMap": {"name": "kube-flannel-cfg"}},
                    ],
                },
            },
        },
    }
    return [_sa("flannel"), role,
            _crb("flannel", "flannel", [{"kind": "ServiceAccount", "name": "flannel", "namespace": "kube-system"}]),
            cm, ds]


def _endpoint_host(endpoint: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(endpoint).hostname or ""


def _endpoint_port(endpoint: str) -> int:
    from urllib.parse import urlsplit

    return urlsplit(endpoint).port or 443


def parse_inline(name: str, contents: str, path: str) -> list[dict[str, Any]]:
    """Objects of an inline manifest; each must be a mapping with apiVersion, kind, metadata.name."""
    try:
        docs = load_manifests(contents, what=f"{path}.contents")  # bounded: no alias bombs, no deep nesting
    except ConfigErrors as exc:
        raise ManifestRenderError(f"{path}.contents: not valid YAML ({exc})") from None
    for i, d in enumerate(docs):
        if not isinstance(d, dict) or not d.get("apiVersion") or not d.get("kind") \
                or not isinstance(d.get("metadata"), dict) or not d["metadata"].get("name"):
            raise ManifestRenderError(
                f"{path}.contents: document {i} is invalid, expected an object with apiVersion, kind, metadata.name")
    return docs


def render_manifests(inp: ManifestInputs) -> dict[str, ManifestSpec]:
    """All bootstrap manifest groups by id (see the module doc)."""
    if not inp.service_subnets:
        raise ManifestRenderError("cluster.network.serviceSubnets: empty, expected at least one CIDR")
    if inp.cni not in CNI_NAMES:
        raise ManifestRenderError(f"cluster.network.cni.name: {inp.cni!r} is invalid, expected one of "
                                  f"{', '.join(CNI_NAMES)}")
    if not inp.endpoint.startswith("https://"):
        raise ManifestRenderError(f"cluster.controlPlane.endpoint: {inp.endpoint!r} is invalid, expected https://")
    if not 0 <= inp.kube_prism_port < 65536:
        raise ManifestRenderError(f"machine.features.kubePrism.port: {inp.kube_prism_port} is invalid, expected a "
                                  "TCP port (1-65535)")
    out: dict[str, ManifestSpec] = {
        "00-bootstrap-token": _spec([bootstrap_token_secret(inp.bootstrap_token)]),
        "01-csr-rbac": _spec(csr_rbac()),
    }
    if not inp.proxy_disabled:
        out["10-kube-proxy"] = _spec(kube_proxy(inp))
    if not inp.coredns_disabled:
        out["11-coredns"] = _spec(coredns(inp))
    if inp.cni == "flannel":
        out["12-flannel"] = _spec(flannel(inp))
    elif inp.cni == "custom":
        if not inp.cni_urls:
            raise ManifestRenderError("cluster.network.cni.urls: empty, expected URLs when cni.name is custom")
        for i, url in enumerate(inp.cni_urls):
            out[f"13-cni-custom-{i}"] = ManifestSpec(url=_url(url, f"cluster.network.cni.urls[{i}]"))
    seen: set[str] = set()
    for i, m in enumerate(inp.inline_manifests):
        path = f"cluster.inlineManifests[{i}]"
        if not NAME_RE.match(m.name) or m.name in seen:
            raise ManifestRenderError(f"{path}.name: {m.name!r} is invalid, expected a unique DNS-1123 label")
        seen.add(m.name)
        out[f"60-inline-{m.name}"] = _spec(parse_inline(m.name, m.contents, path))
    for i, url in enumerate(inp.extra_manifests):
        out[f"70-extra-{i}"] = ManifestSpec(url=_url(url, f"cluster.extraManifests[{i}]"))
    return out


def _url(url: str, path: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise ManifestRenderError(f"{path}: {url!r} is invalid, expected an http(s) URL")
    return url
