"""Known command-line flags of the Kubernetes components kos renders, for the target
Kubernetes minor version (1.32, the release kos builds: rootfs-build/k8s).

A rendered command line is checked against these lists before a node starts the component: a
typo in a generated flag or in ``extraArgs`` is caught at render time. The control-plane lists
are exactly the flags the built 1.32 binaries' ``--help`` documents (global logging flags
included); regenerate them from ``<binary> --help`` when the version changes.
"""

from __future__ import annotations

TARGET_VERSION = "1.32"

_LOGGING = {
    "log-flush-frequency", "log-json-info-buffer-size", "log-json-split-stream", "log-text-info-buffer-size",
    "log-text-split-stream", "logging-format", "v", "vmodule", "help", "version",
}

KUBE_APISERVER = _LOGGING | {
    "admission-control", "admission-control-config-file", "advertise-address",
    "aggregator-reject-forwarding-redirect", "allow-metric-labels", "allow-metric-labels-manifest",
    "allow-privileged", "anonymous-auth", "api-audiences", "audit-log-batch-buffer-size",
    "audit-log-batch-max-size", "audit-log-batch-max-wait", "audit-log-batch-throttle-burst",
    "audit-log-batch-throttle-enable", "audit-log-batch-throttle-qps", "audit-log-compress", "audit-log-format",
    "audit-log-maxage", "audit-log-maxbackup", "audit-log-maxsize", "audit-log-mode", "audit-log-path",
    "audit-log-truncate-enabled", "audit-log-truncate-max-batch-size", "audit-log-truncate-max-event-size",
    "audit-log-version", "audit-policy-file", "audit-webhook-batch-buffer-size", "audit-webhook-batch-max-size",
    "audit-webhook-batch-max-wait", "audit-webhook-batch-throttle-burst", "audit-webhook-batch-throttle-enable",
    "audit-webhook-batch-throttle-qps", "audit-webhook-config-file", "audit-webhook-initial-backoff",
    "audit-webhook-mode", "audit-webhook-truncate-enabled", "audit-webhook-truncate-max-batch-size",
    "audit-webhook-truncate-max-event-size", "audit-webhook-version", "authentication-config",
    "authentication-token-webhook-cache-ttl", "authentication-token-webhook-config-file",
    "authentication-token-webhook-version", "authorization-config", "authorization-mode",
    "authorization-policy-file", "authorization-webhook-cache-authorized-ttl",
    "authorization-webhook-cache-unauthorized-ttl", "authorization-webhook-config-file",
    "authorization-webhook-version", "bind-address", "cert-dir", "client-ca-file", "contention-profiling",
    "cors-allowed-origins", "debug-socket-path", "default-not-ready-toleration-seconds",
    "default-unreachable-toleration-seconds", "delete-collection-workers", "disable-admission-plugins",
    "disable-http2-serving", "disabled-metrics", "egress-selector-config-file", "emulated-version",
    "enable-admission-plugins", "enable-aggregator-routing", "enable-bootstrap-token-auth",
    "enable-garbage-collector", "enable-priority-and-fairness", "encryption-provider-config",
    "encryption-provider-config-automatic-reload", "endpoint-reconciler-type", "etcd-cafile", "etcd-certfile",
    "etcd-compaction-interval", "etcd-count-metric-poll-period", "etcd-db-metric-poll-interval",
    "etcd-healthcheck-timeout", "etcd-keyfile", "etcd-prefix", "etcd-readycheck-timeout", "etcd-servers",
    "etcd-servers-overrides", "event-ttl", "external-hostname", "feature-gates", "goaway-chance",
    "http2-max-streams-per-connection", "kubelet-certificate-authority", "kubelet-client-certificate",
    "kubelet-client-key", "kubelet-preferred-address-types", "kubelet-timeout", "kubernetes-service-node-port",
    "lease-reuse-duration-seconds", "livez-grace-period", "max-connection-bytes-per-sec",
    "max-mutating-requests-inflight", "max-requests-inflight", "min-request-timeout", "oidc-ca-file",
    "oidc-client-id", "oidc-groups-claim", "oidc-groups-prefix", "oidc-issuer-url", "oidc-required-claim",
    "oidc-signing-algs", "oidc-username-claim", "oidc-username-prefix", "peer-advertise-ip",
    "peer-advertise-port", "peer-ca-file", "permit-address-sharing", "permit-port-sharing", "profiling",
    "proxy-client-cert-file", "proxy-client-key-file", "request-timeout", "requestheader-allowed-names",
    "requestheader-client-ca-file", "requestheader-extra-headers-prefix", "requestheader-group-headers",
    "requestheader-uid-headers", "requestheader-username-headers", "runtime-config", "secure-port",
    "service-account-extend-token-expiration", "service-account-issuer", "service-account-jwks-uri",
    "service-account-key-file", "service-account-lookup", "service-account-max-token-expiration",
    "service-account-signing-endpoint", "service-account-signing-key-file", "service-cluster-ip-range",
    "service-node-port-range", "show-hidden-metrics-for-version", "shutdown-delay-duration",
    "shutdown-send-retry-after", "shutdown-watch-termination-grace-period", "storage-backend",
    "storage-initialization-timeout", "storage-media-type", "strict-transport-security-directives",
    "tls-cert-file", "tls-cipher-suites", "tls-min-version", "tls-private-key-file", "tls-sni-cert-key",
    "token-auth-file", "tracing-config-file", "watch-cache", "watch-cache-sizes",
}

KUBE_CONTROLLER_MANAGER = _LOGGING | {
    "allocate-node-cidrs", "allow-metric-labels", "allow-metric-labels-manifest",
    "attach-detach-reconcile-sync-period", "authentication-kubeconfig", "authentication-skip-lookup",
    "authentication-token-webhook-cache-ttl", "authentication-tolerate-lookup-failure",
    "authorization-always-allow-paths", "authorization-kubeconfig",
    "authorization-webhook-cache-authorized-ttl", "authorization-webhook-cache-unauthorized-ttl",
    "bind-address", "cert-dir", "cidr-allocator-type", "client-ca-file", "cloud-config", "cloud-provider",
    "cluster-cidr", "cluster-name", "cluster-signing-cert-file", "cluster-signing-duration",
    "cluster-signing-key-file", "cluster-signing-kube-apiserver-client-cert-file",
    "cluster-signing-kube-apiserver-client-key-file", "cluster-signing-kubelet-client-cert-file",
    "cluster-signing-kubelet-client-key-file", "cluster-signing-kubelet-serving-cert-file",
    "cluster-signing-kubelet-serving-key-file", "cluster-signing-legacy-unknown-cert-file",
    "cluster-signing-legacy-unknown-key-file", "concurrent-cron-job-syncs", "concurrent-daemonset-syncs",
    "concurrent-deployment-syncs", "concurrent-endpoint-syncs", "concurrent-ephemeralvolume-syncs",
    "concurrent-gc-syncs", "concurrent-horizontal-pod-autoscaler-syncs", "concurrent-job-syncs",
    "concurrent-namespace-syncs", "concurrent-rc-syncs", "concurrent-replicaset-syncs",
    "concurrent-resource-quota-syncs", "concurrent-service-endpoint-syncs", "concurrent-service-syncs",
    "concurrent-serviceaccount-token-syncs", "concurrent-statefulset-syncs",
    "concurrent-ttl-after-finished-syncs", "concurrent-validating-admission-policy-status-syncs",
    "configure-cloud-routes", "contention-profiling", "controller-start-interval", "controllers",
    "disable-attach-detach-reconcile-sync", "disable-force-detach-on-timeout", "disable-http2-serving",
    "disabled-metrics", "emulated-version", "enable-dynamic-provisioning", "enable-garbage-collector",
    "enable-hostpath-provisioner", "enable-leader-migration", "endpoint-updates-batch-period",
    "endpointslice-updates-batch-period", "external-cloud-volume-plugin", "feature-gates",
    "flex-volume-plugin-dir", "horizontal-pod-autoscaler-cpu-initialization-period",
    "horizontal-pod-autoscaler-downscale-stabilization", "horizontal-pod-autoscaler-initial-readiness-delay",
    "horizontal-pod-autoscaler-sync-period", "horizontal-pod-autoscaler-tolerance",
    "http2-max-streams-per-connection", "kube-api-burst", "kube-api-content-type", "kube-api-qps", "kubeconfig",
    "large-cluster-size-threshold", "leader-elect", "leader-elect-lease-duration",
    "leader-elect-renew-deadline", "leader-elect-resource-lock", "leader-elect-resource-name",
    "leader-elect-resource-namespace", "leader-elect-retry-period", "leader-migration-config",
    "legacy-service-account-token-clean-up-period", "master", "max-endpoints-per-slice", "min-resync-period",
    "mirroring-concurrent-service-endpoint-syncs", "mirroring-endpointslice-updates-batch-period",
    "mirroring-max-endpoints-per-subset", "namespace-sync-period", "node-cidr-mask-size",
    "node-cidr-mask-size-ipv4", "node-cidr-mask-size-ipv6", "node-eviction-rate", "node-monitor-grace-period",
    "node-monitor-period", "node-startup-grace-period", "permit-address-sharing", "permit-port-sharing",
    "profiling", "pv-recycler-increment-timeout-nfs", "pv-recycler-minimum-timeout-hostpath",
    "pv-recycler-minimum-timeout-nfs", "pv-recycler-pod-template-filepath-hostpath",
    "pv-recycler-pod-template-filepath-nfs", "pv-recycler-timeout-increment-hostpath",
    "pvclaimbinder-sync-period", "requestheader-allowed-names", "requestheader-client-ca-file",
    "requestheader-extra-headers-prefix", "requestheader-group-headers", "requestheader-uid-headers",
    "requestheader-username-headers", "resource-quota-sync-period", "root-ca-file",
    "route-reconciliation-period", "secondary-node-eviction-rate", "secure-port",
    "service-account-private-key-file", "service-cluster-ip-range", "show-hidden-metrics-for-version",
    "terminated-pod-gc-threshold", "tls-cert-file", "tls-cipher-suites", "tls-min-version",
    "tls-private-key-file", "tls-sni-cert-key", "unhealthy-zone-threshold", "use-service-account-credentials",
}

KUBE_SCHEDULER = _LOGGING | {
    "allow-metric-labels", "allow-metric-labels-manifest", "authentication-kubeconfig",
    "authentication-skip-lookup", "authentication-token-webhook-cache-ttl",
    "authentication-tolerate-lookup-failure", "authorization-always-allow-paths", "authorization-kubeconfig",
    "authorization-webhook-cache-authorized-ttl", "authorization-webhook-cache-unauthorized-ttl",
    "bind-address", "cert-dir", "client-ca-file", "config", "contention-profiling", "disable-http2-serving",
    "disabled-metrics", "emulated-version", "feature-gates", "http2-max-streams-per-connection",
    "kube-api-burst", "kube-api-content-type", "kube-api-qps", "kubeconfig", "leader-elect",
    "leader-elect-lease-duration", "leader-elect-renew-deadline", "leader-elect-resource-lock",
    "leader-elect-resource-name", "leader-elect-resource-namespace", "leader-elect-retry-period", "master",
    "permit-address-sharing", "permit-port-sharing", "pod-max-in-unschedulable-pods-duration", "profiling",
    "requestheader-allowed-names", "requestheader-client-ca-file", "requestheader-extra-headers-prefix",
    "requestheader-group-headers", "requestheader-uid-headers", "requestheader-username-headers", "secure-port",
    "show-hidden-metrics-for-version", "tls-cert-file", "tls-cipher-suites", "tls-min-version",
    "tls-private-key-file", "tls-sni-cert-key", "write-config-to",
}

KUBELET = _LOGGING | {
    "bootstrap-kubeconfig", "cert-dir", "cloud-config", "cloud-provider", "config", "config-dir",
    "container-runtime-endpoint", "exit-on-lock-contention", "feature-gates", "hostname-override",
    "image-credential-provider-bin-dir", "image-credential-provider-config", "image-service-endpoint",
    "kubeconfig", "lock-file", "node-ip", "node-labels", "pod-infra-container-image", "provider-id",
    "root-dir", "runonce", "register-node", "register-with-taints", "seccomp-default",
    "experimental-allocatable-ignore-eviction", "experimental-mounter-path",
    "minimum-container-ttl-duration", "maximum-dead-containers", "maximum-dead-containers-per-container",
    "node-status-max-images", "register-schedulable",
}

KUBE_PROXY = _LOGGING | {
    "bind-address", "bind-address-hard-fail", "cleanup", "cluster-cidr", "config", "config-sync-period",
    "conntrack-max-per-core", "conntrack-min", "conntrack-tcp-be-liberal", "conntrack-tcp-timeout-close-wait",
    "conntrack-tcp-timeout-established", "conntrack-udp-timeout", "conntrack-udp-timeout-stream",
    "detect-local-mode", "feature-gates", "healthz-bind-address", "hostname-override", "init-only",
    "iptables-localhost-nodeports", "iptables-masquerade-bit", "iptables-min-sync-period", "iptables-sync-period",
    "ipvs-exclude-cidrs", "ipvs-min-sync-period", "ipvs-scheduler", "ipvs-strict-arp", "ipvs-sync-period",
    "ipvs-tcp-timeout", "ipvs-tcpfin-timeout", "ipvs-udp-timeout", "kube-api-burst", "kube-api-content-type",
    "kube-api-qps", "kubeconfig", "masquerade-all", "master", "metrics-bind-address", "nodeport-addresses",
    "oom-score-adj", "pod-bridge-interface", "pod-interface-name-prefix", "profiling", "proxy-mode",
    "show-hidden-metrics-for-version", "write-config-to",
}

# KubeletConfiguration (kubelet.config.k8s.io/v1beta1) top-level fields.
KUBELET_CONFIGURATION_FIELDS = {
    "apiVersion", "kind", "enableServer", "staticPodPath", "podLogsDir", "syncFrequency", "fileCheckFrequency",
    "httpCheckFrequency", "staticPodURL", "staticPodURLHeader", "address", "port", "readOnlyPort", "tlsCertFile",
    "tlsPrivateKeyFile", "tlsCipherSuites", "tlsMinVersion", "rotateCertificates", "serverTLSBootstrap",
    "authentication", "authorization", "registryPullQPS", "registryBurst", "eventRecordQPS", "eventBurst",
    "enableDebuggingHandlers", "enableContentionProfiling", "healthzPort", "healthzBindAddress", "oomScoreAdj",
    "clusterDomain", "clusterDNS", "streamingConnectionIdleTimeout", "nodeStatusUpdateFrequency",
    "nodeStatusReportFrequency", "nodeLeaseDurationSeconds", "imageMinimumGCAge", "imageMaximumGCAge",
    "imageGCHighThresholdPercent", "imageGCLowThresholdPercent", "volumeStatsAggPeriod", "kubeletCgroups",
    "systemCgroups", "cgroupRoot", "cgroupsPerQOS", "cgroupDriver", "cpuManagerPolicy", "cpuManagerPolicyOptions",
    "cpuManagerReconcilePeriod", "memoryManagerPolicy", "topologyManagerPolicy", "topologyManagerScope",
    "topologyManagerPolicyOptions", "qosReserved", "runtimeRequestTimeout", "hairpinMode", "maxPods",
    "podCIDR", "podPidsLimit", "resolvConf", "runOnce", "cpuCFSQuota", "cpuCFSQuotaPeriod", "nodeStatusMaxImages",
    "maxOpenFiles", "contentType", "kubeAPIQPS", "kubeAPIBurst", "serializeImagePulls", "maxParallelImagePulls",
    "evictionHard", "evictionSoft", "evictionSoftGracePeriod", "evictionPressureTransitionPeriod",
    "evictionMaxPodGracePeriod", "evictionMinimumReclaim", "podsPerCore", "enableControllerAttachDetach",
    "protectKernelDefaults", "makeIPTablesUtilChains", "iptablesMasqueradeBit", "iptablesDropBit",
    "featureGates", "failSwapOn", "memorySwap", "containerLogMaxSize", "containerLogMaxFiles",
    "containerLogMaxWorkers", "containerLogMonitorInterval", "configMapAndSecretChangeDetectionStrategy",
    "systemReserved", "kubeReserved", "reservedSystemCPUs", "showHiddenMetricsForVersion",
    "systemReservedCgroup", "kubeReservedCgroup", "enforceNodeAllocatable", "allowedUnsafeSysctls",
    "volumePluginDir", "providerID", "kernelMemcgNotification", "logging", "enableSystemLogHandler",
    "enableSystemLogQuery", "shutdownGracePeriod", "shutdownGracePeriodCriticalPods",
    "shutdownGracePeriodByPodPriority", "reservedMemory", "enableProfilingHandler", "enableDebugFlagsHandler",
    "seccompDefault", "memoryThrottlingFactor", "registerWithTaints", "registerNode", "tracing",
    "localStorageCapacityIsolation", "containerRuntimeEndpoint", "imageServiceEndpoint",
}

KNOWN_FLAGS = {
    "kube-apiserver": KUBE_APISERVER,
    "kube-controller-manager": KUBE_CONTROLLER_MANAGER,
    "kube-scheduler": KUBE_SCHEDULER,
    "kubelet": KUBELET,
    "kube-proxy": KUBE_PROXY,
}


def unknown_flags(component: str, args: list[str]) -> list[str]:
    """The ``--name`` flags of ``args`` that ``component`` does not know (in order)."""
    known = KNOWN_FLAGS[component]
    out: list[str] = []
    for a in args:
        if not a.startswith("--"):
            continue
        name = a[2:].split("=", 1)[0]
        if name not in known:
            out.append(name)
    return out
