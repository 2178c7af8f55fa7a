// Command pause is kos's pod sandbox process for the registry.k8s.io/pause image: it holds the
// pod's namespaces open doing nothing, reaps the zombies re-parented to it when it is PID 1 of a
// shared PID namespace, and exits 0 on SIGINT or SIGTERM. -v prints its version.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set by the build (-X main.version=...).
var version = "unknown"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Printf("pause.kos %s\n", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", sig)
		os.Exit(0)
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
