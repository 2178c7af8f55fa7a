"""The versions of the Kubernetes parts kos builds and deploys, one constant each: the build
(``kos.platform.image.k8s``, ``rootfs-build/k8s/build``), the generated machine configs and the
rendered manifests all read them from here, the lowest layer."""

from __future__ import annotations

KUBERNETES_VERSION = "v1.32.13"
# The Kubernetes release a cluster can be upgraded to (``kosctl upgrade-k8s``): one minor step
# ahead of KUBERNETES_VERSION, built beside it (binaries and the control-plane/kube-proxy images;
# CoreDNS, flannel and pause are shared). See docs/kubernetes.md.
KUBERNETES_UPGRADE_VERSION = "v1.33.13"
# Every Kubernetes release kos builds, the cluster's own first.
KUBERNETES_VERSIONS = (KUBERNETES_VERSION, KUBERNETES_UPGRADE_VERSION)
COREDNS_VERSION = "v1.11.3"
FLANNEL_VERSION = "v0.28.10"
# The flannel CNI plugin image flannel v0.28.10 pairs with. Its content here is built from
# github.com/containernetworking/plugins v0.9.1 (plugins/meta/flannel), because
# github.com/flannel-io/cni-plugin is not served by the Go module proxy: see docs/kubernetes.md.
FLANNEL_CNI_TAG = "v1.9.1-flannel3"
PAUSE_VERSION = "3.10"
