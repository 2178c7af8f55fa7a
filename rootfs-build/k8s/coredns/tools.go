//go:build tools

// Package corednsbuild is kos's wrapper module for building CoreDNS (the module root is its main package).
package corednsbuild

import _ "github.com/coredns/coredns"
