"""Talos machine configs as ``talosctl gen config`` writes them for several releases
(tests/machineconfig/testdata/talos, reconstructed from Talos's generator and documentation:
field names, order, comments and defaults per release; v1.12+ output is multi-document) and
a patch of the documents Talos users commonly add. Secrets are ``@@NAME@@`` placeholders
filled from a generated bundle, so the certificates are real."""

from __future__ import annotations

import functools
from pathlib import Path

from kos.resources import machineconfig as mc

DIR = Path(__file__).parent / "testdata" / "talos"
RELEASES = ("v1.3", "v1.6", "v1.8", "v1.10", "v1.12", "v1.14")


@functools.cache
def _placeholders() -> dict[str, str]:
    b = mc.SecretsBundle.generate()
    c = b.certs
    return {
        "MACHINE_TOKEN": b.trustd_info.token, "CLUSTER_ID": b.cluster.id, "CLUSTER_SECRET": b.cluster.secret,
        "BOOTSTRAP_TOKEN": b.secrets.bootstrap_token, "SECRETBOX": b.secrets.secretbox_encryption_secret,
        "OS_CRT": c.os.crt, "OS_KEY": c.os.key, "K8S_CRT": c.k8s.crt, "K8S_KEY": c.k8s.key,
        "AGG_CRT": c.k8s_aggregator.crt, "AGG_KEY": c.k8s_aggregator.key, "SA_KEY": c.k8s_service_account.key,
        "ETCD_CRT": c.etcd.crt, "ETCD_KEY": c.etcd.key,
    }


def fill(text: str) -> str:
    for k, v in _placeholders().items():
        text = text.replace(f"@@{k}@@", v)
    assert "@@" not in text
    return text


def talos_configs() -> dict[str, str]:
    """name -> config text: each release's controlplane.yaml and worker.yaml, and the v1.14
    control plane with the user documents patched in (as ``kosctl mc patch`` would)."""
    out = {f"{r} {role}": fill((DIR / f"{r}-{role}.yaml").read_text()) for r in RELEASES
           for role in ("controlplane", "worker")}
    base = mc.ConfigContainer.load(out["v1.14 controlplane"]).to_data()
    patched = mc.apply_patches(base, [mc.parse_patch((DIR / "user-patch.yaml").read_text())])
    out["v1.14 controlplane + user documents"] = mc.ConfigContainer.from_data(patched).to_yaml()
    return out
