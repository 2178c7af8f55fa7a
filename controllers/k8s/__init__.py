"""Kubernetes on kos: controllers and pure renderers for the kubelet and the control plane.

Modules (each owns one piece):

* ``flags`` - known flags/fields of the target Kubernetes version (validation without binaries)
* ``kubeconfig`` - kubeconfig rendering, admin kubeconfigs, kubeconfig checks
* ``kubelet`` - machine config -> KubeletConfig -> KubeletSpec (KubeletConfiguration, args)
* ``controlplane`` - static pods for kube-apiserver, kube-controller-manager, kube-scheduler
* ``manifests`` - bootstrap manifests (token, RBAC, CoreDNS, kube-proxy, flannel, extra/inline)
* ``validate`` - structural checks of rendered objects (kubernetes client models, flags, volumes)
* ``apiclient`` - a small async server-side-apply client (mutual TLS)
* ``controllers`` - the reconciling controllers; ``service`` - the kubelet service
* ``releases`` - the Kubernetes versions a config asks for, checked against the node's releases
* ``assembly`` - ``k8s_controllers(...)`` for machined
"""
