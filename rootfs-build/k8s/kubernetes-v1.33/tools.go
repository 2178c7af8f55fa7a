//go:build tools

// Package k8sbuild is kos's wrapper module for building Kubernetes: k8s.io/kubernetes cannot be
// `go install`ed because of its replace directives, so this module requires it and pins every
// k8s.io staging module to the matching v0 release (see rootfs-build/k8s/build.py).
package k8sbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
