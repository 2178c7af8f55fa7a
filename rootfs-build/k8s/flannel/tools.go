//go:build tools

// Package flannelbuild is kos's wrapper module for building flanneld (the module root is its main package).
package flannelbuild

import _ "github.com/flannel-io/flannel"
