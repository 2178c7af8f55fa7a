"""The versions of the Kubernetes parts kos builds and deploys, one constant each: the build
(``kos.platform.image.k8s``, ``rootfs-build/k8s/build``), the generated machine configs and the
rendered manifests all read them from here, the lowest layer."""

from __future__ import annotations

KUBERNETES_VERSION = "v1.32.13"
COREDNS_VERSION = "v1.11.3"
FLANNEL_VERSION = "v0.28.10"
# The flannel CNI plugin image flannel v0.28.10 pairs with. Its content here is built from
# github.com/containernetworking/plugins v0.9.1 (plugins/meta/flannel), because
# github.com/flannel-io/cni-plugin is not served by the Go module proxy: see docs/kubernetes.md.
FLANNEL_CNI_TAG = "v1.9.1-flannel3"
PAUSE_VERSION = "3.10"
