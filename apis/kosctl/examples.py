"""``--help`` examples for the commands whose modules do not carry their own (``epilog``):
``apply(parser)`` adds them, keyed by command path, after every command has registered.
A test checks that every command path here exists and that each example parses."""

from __future__ import annotations

import argparse

EXAMPLES: dict[str, list[str]] = {
    "get": ["kosctl get members", "kosctl get rd", "kosctl get addresses -n 10.5.0.2,10.5.0.3",
            "kosctl get ns meta -o yaml", "kosctl get addresses -l 'kos.dev/link in (eth0)' -w",
            "kosctl get mc -o jsonpath='{.spec.version}'"],
    "apply-config": ["kosctl apply-config --insecure -e 10.5.0.2 -f controlplane.yaml",
                     "kosctl apply-config -f worker.yaml -n 10.5.0.3 --mode no-reboot",
                     "kosctl apply-config -f worker.yaml --dry-run"],
    "services": ["kosctl services", "kosctl services -n 10.5.0.2,10.5.0.3"],
    "service": ["kosctl service etcd", "kosctl service containerd restart -n 10.5.0.3"],
    "logs": ["kosctl logs etcd", "kosctl logs kubelet -f --tail 50 -n 10.5.0.3"],
    "dmesg": ["kosctl dmesg", "kosctl dmesg -f --tail"],
    "events": ["kosctl events", "kosctl events --tail -1 --duration 10s", "kosctl events --since 5m"],
    "version": ["kosctl version", "kosctl version --client", "kosctl version --insecure -e 10.5.0.2"],
    "memory": ["kosctl memory", "kosctl free -n 10.5.0.2,10.5.0.3"],
    "processes": ["kosctl processes --sort rss", "kosctl ps -n 10.5.0.3"],
    "containers": ["kosctl containers", "kosctl containers -k", "kosctl containers --all -n 10.5.0.3"],
    "health": ["kosctl health", "kosctl health --server --wait-timeout 120",
               "kosctl health --control-plane-nodes 10.5.0.2 --worker-nodes 10.5.0.3"],
    "bootstrap": ["kosctl bootstrap -n 10.5.0.2", "kosctl bootstrap --recover-from db.snapshot"],
    "reboot": ["kosctl reboot -n 10.5.0.3 --wait", "kosctl reboot -m powercycle"],
    "shutdown": ["kosctl shutdown -n 10.5.0.3", "kosctl shutdown --force"],
    "reset": ["kosctl reset -n 10.5.0.3 --graceful --reboot",
              "kosctl reset --system-labels-to-wipe EPHEMERAL --reboot"],
    "upgrade": ["kosctl upgrade --image http://10.5.0.1:8080/rootfs.squashfs -n 10.5.0.3 --wait",
                "kosctl upgrade --image file:///var/tmp/rootfs.squashfs --stage"],
    "rollback": ["kosctl rollback -n 10.5.0.3 --wait"],
    "kubeconfig": ["kosctl kubeconfig", "kosctl kubeconfig ./kubeconfig --force", "kosctl kubeconfig --merge"],
    "get-client-config": ["kosctl get-client-config reader.kosconfig --roles os:reader --crt-ttl 720h"],
    "validate": ["kosctl validate -c controlplane.yaml -m metal",
                 "kosctl validate -c worker.yaml -m container --strict"],
    "gen config": ["kosctl gen config demo https://10.5.0.2:6443",
                   "kosctl gen config demo https://10.5.0.2:6443 --config-patch @patch.yaml"],
    "cluster create": ["kosctl cluster create --name dev --workers 1",
                       "kosctl cluster create --name ha --controlplanes 3 --workers 2 --provisioner qemu"],
    "cluster destroy": ["kosctl cluster destroy --name dev"],
    "config merge": ["kosctl config merge reader.kosconfig"],
    "config endpoint": ["kosctl config endpoint 10.5.0.2 10.5.0.3"],
    "config node": ["kosctl config node 10.5.0.2", "kosctl config node"],
    "etcd members": ["kosctl etcd members -n 10.5.0.2"],
    "etcd status": ["kosctl etcd status --cluster", "kosctl etcd status -n 10.5.0.2,10.5.0.3,10.5.0.4"],
    "etcd snapshot": ["kosctl etcd snapshot db.snapshot -n 10.5.0.2"],
    "etcd remove-member": ["kosctl etcd remove-member 8e9e05c52164694d", "kosctl etcd remove-member cp-3 --hostname"],
    "etcd leave": ["kosctl etcd leave -n 10.5.0.4"],
    "etcd forfeit-leadership": ["kosctl etcd forfeit-leadership -n 10.5.0.2"],
    "etcd alarm list": ["kosctl etcd alarm list"],
    "etcd alarm disarm": ["kosctl etcd alarm disarm"],
    "etcd defrag": ["kosctl etcd defrag -n 10.5.0.2,10.5.0.3,10.5.0.4"],
    "machineconfig patch": ["kosctl machineconfig patch controlplane.yaml -p @patch.yaml -o patched.yaml"],
    "machineconfig diff": ["kosctl machineconfig diff old.yaml new.yaml"],
}


def _find(parser: argparse.ArgumentParser, path: list[str]) -> argparse.ArgumentParser | None:
    for word in path:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or word not in sub.choices:
            return None
        parser = sub.choices[word]
    return parser


def apply(parser: argparse.ArgumentParser) -> None:
    for path, lines in EXAMPLES.items():
        p = _find(parser, path.split())
        if p is None or p.epilog:
            continue
        p.epilog = "examples:\n" + "".join(f"  {line}\n" for line in lines)
        p.formatter_class = argparse.RawDescriptionHelpFormatter
