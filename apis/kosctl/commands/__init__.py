"""kosctl commands, one module each, and ``COMMANDS``: the table of every top-level command.

Every module here must define::

    def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None

which adds its sub-command(s) and sets ``func`` (``(args) -> int``) as the parser default.

kosctl imports only the module of the command it runs (``kos.apis.kosctl.main``): the table
below names, for each top-level command, its module, aliases and one-line help, so that
``kosctl --help`` lists every command without importing any of them. A test
(tests/apis/test_kosctl_lazy.py) checks the table against what the modules register, so a new
command is a new row here. Heavy imports (grpclib, cryptography, yaml) belong inside the
handlers, not at module top.
"""

from __future__ import annotations

from typing import NamedTuple


class Command(NamedTuple):
    name: str
    module: str
    help: str
    aliases: tuple[str, ...] = ()


COMMANDS: tuple[Command, ...] = (
    Command("apply-config", "apply_config", "apply a machine configuration to the nodes", ("apply",)),
    Command("bootstrap", "bootstrap", "bootstrap the etcd cluster on one control-plane node"),
    Command("get-client-config", "clientconfig", "issue a client certificate and write a kosconfig with it"),
    Command("cluster", "cluster", "create, show and destroy local namespace clusters"),
    Command("completion", "completion", "print a shell completion script (bash, zsh)"),
    Command("config", "config", "manage the client configuration (kosconfig)"),
    Command("containers", "containers", "list the containers containerd runs on the nodes", ("c",)),
    Command("dashboard", "dashboard", "a live terminal dashboard of the nodes"),
    Command("netstat", "diag", "the nodes' network sockets", ("ss",)),
    Command("time", "diag", "the nodes' clock offset against an NTP server"),
    Command("stats", "diag", "CPU and memory of the containers containerd runs on the nodes"),
    Command("disks", "diag", "the nodes' disks (the system disk marked)"),
    Command("wipe", "diag", "wipe block devices (os:admin)"),
    Command("meta", "diag", "the keys of the system disk's META partition"),
    Command("images", "diag", "the container images containerd holds on the nodes"),
    Command("inspect", "diag", "inspect the node's internals"),
    Command("edit", "edit", "edit a node's machine config in $EDITOR and apply it"),
    Command("patch", "edit", "patch the nodes' machine config and apply it"),
    Command("etcd", "etcd", "manage the etcd cluster"),
    Command("events", "events", "stream machine events"),
    Command("ls", "files", "list a directory on the nodes", ("list",)),
    Command("read", "files", "print a file of a node", ("cat",)),
    Command("cp", "files", "copy a file or directory from the nodes", ("copy",)),
    Command("usage", "files", "disk usage of paths on the nodes", ("du",)),
    Command("mounts", "files", "the nodes' mounts with their sizes", ("mount",)),
    Command("gen", "gen", "generate configs, secrets, keys and certificates"),
    Command("get", "get", "get resources (kosctl get TYPE [ID])"),
    Command("health", "health", "check the cluster's health (etcd, services, readiness)"),
    Command("image", "image", "build the boot image, write system disks, switch A/B slots (local)"),
    Command("kubeconfig", "kubeconfig", "write an admin kubeconfig for the cluster"),
    Command("reboot", "lifecycle", "reboot nodes"),
    Command("shutdown", "lifecycle", "shut nodes down"),
    Command("reset", "lifecycle", "reset nodes: leave etcd, wipe system volumes, power off"),
    Command("upgrade", "lifecycle", "upgrade nodes to an installer image"),
    Command("upgrade-k8s", "upgrade_k8s", "upgrade Kubernetes to another built version, node by node"),
    Command("rollback", "lifecycle", "reboot nodes into their previous good A/B boot slot"),
    Command("logs", "logs", "print a service's log, or machined's own"),
    Command("dmesg", "logs", "print the kernel log"),
    Command("machineconfig", "machineconfig", "work with machine config files offline", ("mc",)),
    Command("services", "services", "list the services of the nodes"),
    Command("service", "services", "show a service, or start/stop/restart it"),
    Command("support", "support", "collect the nodes' state, logs and config (redacted) into one archive"),
    Command("memory", "system", "show memory usage", ("m", "free")),
    Command("processes", "system", "list processes", ("ps",)),
    Command("validate", "validate", "validate a machine config file"),
    Command("version", "version", "print the client and server versions"),
)


def module_of(word: str) -> str | None:
    """The module that registers the command (or alias) ``word``; None for an unknown word."""
    for c in COMMANDS:
        if word == c.name or word in c.aliases:
            return c.module
    return None
