//go:build tools

// Package cniflannelbuild is kos's wrapper module for building the flannel CNI plugin from
// github.com/containernetworking/plugins v0.9.1 (plugins/meta/flannel; the plugin moved to
// github.com/flannel-io/cni-plugin later, which the Go module proxy does not serve).
package cniflannelbuild

import _ "github.com/containernetworking/plugins/plugins/meta/flannel"
