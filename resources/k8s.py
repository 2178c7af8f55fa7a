"""Kubernetes resources (namespace ``k8s``): what the node's kubelet and control plane run.

Flow (``kos.controllers.k8s``)::

    HostnameStatuses + MachineConfig  -> Nodenames(nodename)
    NodeAddresses + MachineConfig     -> NodeIPs(kubelet)
    MachineConfig                     -> KubeletConfigs(kubelet)
    KubeletConfig + Nodename + NodeIP
      + KubernetesRootSecrets(k8s)    -> KubeletSpecs(kubelet)        (sensitive: bootstrap kubeconfig)
    MachineConfig (control plane)     -> APIServerConfigs / ControllerManagerConfigs / SchedulerConfigs
    *Config + KubernetesCerts + EtcdCerts
                                      -> StaticPods(kube-apiserver, ...) + ControlPlaneFiles (sensitive)
    StaticPods                        -> files in the static pod dir -> StaticPodStatuses
    MachineConfig + KubernetesRootSecrets
                                      -> Manifests(00-bootstrap-token, ...)  (sensitive)
    Manifests                         -> server-side apply or pending -> ManifestStatuses(manifests)

Specs carry rendered documents as YAML text (``pod``, ``config``, ``objects``) so that the
wire form is stable and the text is exactly what lands on disk or goes to the API server.
"""

from __future__ import annotations

from dataclasses import dataclass

from kos.resources.core import Kind, Spec, resource_type, spec_field

NAMESPACE = "k8s"

NODENAME_ID = "nodename"
NODEIP_ID = "kubelet"
KUBELET_ID = "kubelet"
APISERVER_ID = "kube-apiserver"
CONTROLLER_MANAGER_ID = "kube-controller-manager"
SCHEDULER_ID = "kube-scheduler"
CONTROL_PLANE_IDS = (APISERVER_ID, CONTROLLER_MANAGER_ID, SCHEDULER_ID)
MANIFEST_STATUS_ID = "manifests"


@resource_type("Nodenames.k8s.kos.dev", namespace=NAMESPACE, print_columns=[("Nodename", "{.nodename}")])
@dataclass
class NodenameSpec(Spec):
    """The name the kubelet registers the node with (lower-cased hostname, or FQDN)."""

    nodename: str = spec_field(1, default="")
    hostname: str = spec_field(2, default="")
    skip_node_registration: bool = spec_field(3, yaml="skipNodeRegistration", default=False)


@resource_type("NodeIPs.k8s.kos.dev", namespace=NAMESPACE, print_columns=[("Addresses", "{.addresses}")])
@dataclass
class NodeIPSpec(Spec):
    """The node IPs for the kubelet's ``--node-ip``: at most one per family, chosen by
    ``machine.kubelet.nodeIP.validSubnets`` from the node's addresses (no prefix length)."""

    addresses: list[str] = spec_field(1, default_factory=list)


@resource_type("KubeletConfigs.k8s.kos.dev", namespace=NAMESPACE, print_columns=[("Image", "{.image}")])
@dataclass
class KubeletConfigSpec(Spec):
    """What the machine config says about the kubelet (input of the KubeletSpec render)."""

    image: str = spec_field(1, default="")
    cluster_dns: list[str] = spec_field(2, yaml="clusterDNS", default_factory=list)
    cluster_domain: str = spec_field(3, yaml="clusterDomain", default="cluster.local")
    extra_args: dict[str, str] = spec_field(4, yaml="extraArgs", default_factory=dict)
    extra_mounts: list[str] = spec_field(5, yaml="extraMounts", default_factory=list)
    """``destination:source:type:opt1,opt2`` strings (lossless, see ``controllers.k8s.kubelet``)."""
    extra_config: str = spec_field(6, yaml="extraConfig", default="")
    """YAML mapping merged over the generated KubeletConfiguration."""
    cloud_provider_external: bool = spec_field(7, yaml="cloudProviderExternal", default=False)
    default_runtime_seccomp_enabled: bool = spec_field(8, yaml="defaultRuntimeSeccompEnabled", default=False)
    skip_node_registration: bool = spec_field(9, yaml="skipNodeRegistration", default=False)
    static_pod_list_url: str = spec_field(10, yaml="staticPodListURL", default="")
    disable_manifests_directory: bool = spec_field(11, yaml="disableManifestsDirectory", default=False)
    node_labels: dict[str, str] = spec_field(12, yaml="nodeLabels", default_factory=dict)
    node_taints: dict[str, str] = spec_field(13, yaml="nodeTaints", default_factory=dict)
    register_with_fqdn: bool = spec_field(14, yaml="registerWithFQDN", default=False)
    host_dns: bool = spec_field(15, yaml="hostDNS", default=False)
    """The host DNS cache is on: pods get the upstream resolvers, not 127.0.0.53 (resolvConf)."""
    api_server: str = spec_field(16, yaml="apiServer", default="")
    """Where the kubelet reaches the API server: KubePrism (``https://127.0.0.1:<port>``) when it
    is on, else "" (the cluster endpoint)."""


@resource_type("KubeletSpecs.k8s.kos.dev", namespace=NAMESPACE, sensitive=True,
               print_columns=[("Image", "{.image}"), ("Nodename", "{.expectedNodename}")])
@dataclass
class KubeletSpecSpec(Spec):
    """How the kubelet runs: its command line, KubeletConfiguration and bootstrap kubeconfig."""

    image: str = spec_field(1, default="")
    args: list[str] = spec_field(2, default_factory=list)
    config: str = spec_field(3, default="")
    """KubeletConfiguration (kubelet.config.k8s.io/v1beta1) as YAML."""
    bootstrap_kubeconfig: str = spec_field(4, yaml="bootstrapKubeconfig", default="", sensitive=True)
    ca_crt: str = spec_field(5, yaml="caCrt", default="")
    expected_nodename: str = spec_field(6, yaml="expectedNodename", default="")
    extra_mounts: list[str] = spec_field(7, yaml="extraMounts", default_factory=list)


@dataclass
class _ComponentConfigBase(Spec):
    image: str = spec_field(1, default="")
    extra_args: dict[str, str] = spec_field(2, yaml="extraArgs", default_factory=dict)
    extra_volumes: list[str] = spec_field(3, yaml="extraVolumes", default_factory=list)
    """``name:hostPath:mountPath[:ro]`` strings."""
    env: dict[str, str] = spec_field(4, default_factory=dict)


@resource_type("APIServerConfigs.k8s.kos.dev", namespace=NAMESPACE, print_columns=[("Image", "{.image}")])
@dataclass
class APIServerConfigSpec(_ComponentConfigBase):
    """kube-apiserver settings from the machine config."""

    port: int = spec_field(10, default=6443)
    cloud_provider: str = spec_field(11, yaml="cloudProvider", default="")
    control_plane_endpoint: str = spec_field(12, yaml="controlPlaneEndpoint", default="")
    etcd_servers: list[str] = spec_field(13, yaml="etcdServers", default_factory=list)
    service_cidrs: list[str] = spec_field(14, yaml="serviceCIDRs", default_factory=list)
    advertised_address: str = spec_field(15, yaml="advertisedAddress", default="")
    admission_plugins: list[str] = spec_field(16, yaml="admissionPlugins", default_factory=list)
    audit_policy: str = spec_field(17, yaml="auditPolicy", default="")
    """Audit policy (audit.k8s.io/v1 Policy) as YAML; empty: the kos default."""


@resource_type("ControllerManagerConfigs.k8s.kos.dev", namespace=NAMESPACE, print_columns=[("Image", "{.image}")])
@dataclass
class ControllerManagerConfigSpec(_ComponentConfigBase):
    """kube-controller-manager settings from the machine config."""

    enabled: bool = spec_field(10, default=True)
    pod_cidrs: list[str] = spec_field(11, yaml="podCIDRs", default_factory=list)
    service_cidrs: list[str] = spec_field(12, yaml="serviceCIDRs", default_factory=list)
    allocate_node_cidrs: bool = spec_field(13, yaml="allocateNodeCIDRs", default=True)
    cluster_name: str = spec_field(14, yaml="clusterName", default="")


@resource_type("SchedulerConfigs.k8s.kos.dev", namespace=NAMESPACE, print_columns=[("Image", "{.image}")])
@dataclass
class SchedulerConfigSpec(_ComponentConfigBase):
    """kube-scheduler settings from the machine config."""

    enabled: bool = spec_field(10, default=True)


@resource_type("StaticPods.k8s.kos.dev", namespace=NAMESPACE, print_columns=[("Component", "{.component}")])
@dataclass
class StaticPodSpec(Spec):
    """A rendered static pod manifest (a v1 Pod as YAML), served to the kubelet as a file.
    Never holds key material: keys are files under the secrets dir (ControlPlaneFiles)."""

    component: str = spec_field(1, default="")
    pod: str = spec_field(2, default="")


@resource_type("ControlPlaneFiles.k8s.kos.dev", namespace=NAMESPACE, sensitive=True,
               print_columns=[("Files", "{.files}")])
@dataclass
class ControlPlaneFilesSpec(Spec):
    """Files one control-plane component needs (certs, keys, kubeconfigs, encryption config),
    by path relative to the secrets dir. Keys are written with mode 0600."""

    files: dict[str, str] = spec_field(1, default_factory=dict, sensitive=True)


@resource_type("StaticPodStatuses.k8s.kos.dev", namespace=NAMESPACE,
               print_columns=[("Path", "{.path}"), ("SHA256", "{.sha256}")])
@dataclass
class StaticPodStatusSpec(Spec):
    """A static pod manifest as written to the static pod dir (what the kubelet would read)."""

    path: str = spec_field(1, default="")
    sha256: str = spec_field(2, default="")
    secret_files: list[str] = spec_field(3, yaml="secretFiles", default_factory=list)


@resource_type("Manifests.k8s.kos.dev", namespace=NAMESPACE, sensitive=True,
               print_columns=[("Objects", "{.count}")])
@dataclass
class ManifestSpec(Spec):
    """One group of bootstrap manifests (multi-document YAML), applied in id order."""

    objects: str = spec_field(1, default="", sensitive=True)
    count: int = spec_field(2, default=0)
    url: str = spec_field(3, default="")
    """Fetched at apply time instead of ``objects`` (extraManifests, custom CNI URLs)."""


@resource_type("ManifestStatuses.k8s.kos.dev", namespace=NAMESPACE,
               print_columns=[("Applied", "{.applied}"), ("Pending", "{.pending}")])
@dataclass
class ManifestStatusSpec(Spec):
    """Which manifest groups were server-side applied and which wait for an API server."""

    applied: list[str] = spec_field(1, default_factory=list)
    pending: list[str] = spec_field(2, default_factory=list)
    api_server: str = spec_field(3, yaml="apiServer", default="")
    last_error: str = spec_field(4, yaml="lastError", default="")


NODENAMES = Kind(NAMESPACE, NodenameSpec.definition.type)
NODEIPS = Kind(NAMESPACE, NodeIPSpec.definition.type)
KUBELET_CONFIGS = Kind(NAMESPACE, KubeletConfigSpec.definition.type)
KUBELET_SPECS = Kind(NAMESPACE, KubeletSpecSpec.definition.type)
APISERVER_CONFIGS = Kind(NAMESPACE, APIServerConfigSpec.definition.type)
CONTROLLER_MANAGER_CONFIGS = Kind(NAMESPACE, ControllerManagerConfigSpec.definition.type)
SCHEDULER_CONFIGS = Kind(NAMESPACE, SchedulerConfigSpec.definition.type)
STATIC_PODS = Kind(NAMESPACE, StaticPodSpec.definition.type)
CONTROL_PLANE_FILES = Kind(NAMESPACE, ControlPlaneFilesSpec.definition.type)
STATIC_POD_STATUSES = Kind(NAMESPACE, StaticPodStatusSpec.definition.type)
MANIFESTS = Kind(NAMESPACE, ManifestSpec.definition.type)
MANIFEST_STATUSES = Kind(NAMESPACE, ManifestStatusSpec.definition.type)


# -- KubePrism (machine.features.kubePrism; kos.controllers.system.kubeprism) ------------------
KUBEPRISM_ID = "k8s-loadbalancer-config"


@resource_type("KubePrismConfigs.k8s.kos.dev", namespace=NAMESPACE,
               print_columns=[("Host", "{.host}"), ("Port", "{.port}"), ("Endpoints", "{.endpoints}")])
@dataclass
class KubePrismConfigSpec(Spec):
    """The local load balancer to the API servers: where it listens and the ``host:port`` of
    every API server it may forward to (preferred first)."""

    host: str = spec_field(1, default="127.0.0.1")
    port: int = spec_field(2, default=7445)
    endpoints: list[str] = spec_field(3, default_factory=list)


@resource_type("KubePrismStatuses.k8s.kos.dev", namespace=NAMESPACE,
               print_columns=[("Host", "{.host}"), ("Healthy", "{.healthy}")])
@dataclass
class KubePrismStatusSpec(Spec):
    """``host`` (``127.0.0.1:7445``) serving; ``healthy`` once an API server answers; which do."""

    host: str = spec_field(1, default="")
    healthy: bool = spec_field(2, default=False)
    healthy_endpoints: list[str] = spec_field(3, yaml="healthyEndpoints", default_factory=list)
    error: str = spec_field(4, default="")


KUBEPRISM_CONFIGS = Kind(NAMESPACE, KubePrismConfigSpec.definition.type)
KUBEPRISM_STATUSES = Kind(NAMESPACE, KubePrismStatusSpec.definition.type)


# -- the Node object's labels, annotations and taints (kos.controllers.system.node) -----------


@resource_type("NodeLabelSpecs.k8s.kos.dev", namespace=NAMESPACE, print_columns=[("Value", "{.value}")])
@dataclass
class NodeLabelSpecSpec(Spec):
    """A label of this node's Node object (id: the key): ``machine.nodeLabels`` and, on
    control planes, ``node-role.kubernetes.io/control-plane``."""

    key: str = spec_field(1, default="")
    value: str = spec_field(2, default="")


@resource_type("NodeAnnotationSpecs.k8s.kos.dev", namespace=NAMESPACE, print_columns=[("Value", "{.value}")])
@dataclass
class NodeAnnotationSpecSpec(Spec):
    """An annotation of this node's Node object (id: the key), from ``machine.nodeAnnotations``."""

    key: str = spec_field(1, default="")
    value: str = spec_field(2, default="")


@resource_type("NodeTaintSpecs.k8s.kos.dev", namespace=NAMESPACE,
               print_columns=[("Value", "{.value}"), ("Effect", "{.effect}")])
@dataclass
class NodeTaintSpecSpec(Spec):
    """A taint of this node (id: the key): ``machine.nodeTaints`` and the control-plane taint
    unless ``cluster.allowSchedulingOnControlPlanes``."""

    key: str = spec_field(1, default="")
    value: str = spec_field(2, default="")
    effect: str = spec_field(3, default="NoSchedule")


@resource_type("NodeApplyStatuses.k8s.kos.dev", namespace=NAMESPACE,
               print_columns=[("Applied", "{.applied}"), ("Error", "{.error}")])
@dataclass
class NodeApplyStatusSpec(Spec):
    """What was server-side applied to the Node object (id: the nodename), with which identity,
    or why not yet (``error``: no credentials, not registered, API unreachable)."""

    applied: bool = spec_field(1, default=False)
    labels: list[str] = spec_field(2, default_factory=list)
    annotations: list[str] = spec_field(3, default_factory=list)
    taints: list[str] = spec_field(4, default_factory=list)
    identity: str = spec_field(5, default="")
    error: str = spec_field(6, default="")


NODE_LABEL_SPECS = Kind(NAMESPACE, NodeLabelSpecSpec.definition.type)
NODE_ANNOTATION_SPECS = Kind(NAMESPACE, NodeAnnotationSpecSpec.definition.type)
NODE_TAINT_SPECS = Kind(NAMESPACE, NodeTaintSpecSpec.definition.type)
NODE_APPLY_STATUSES = Kind(NAMESPACE, NodeApplyStatusSpec.definition.type)
