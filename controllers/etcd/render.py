"""EtcdSpec -> etcd command line (a pure function) and the binary's version check.

Every flag kos manages is rendered from the spec; ``extra_args`` add others (``{"quota-backend-bytes":
"..."}`` -> ``--quota-backend-bytes=...``) but may not override a managed flag. TLS is all-or-nothing
per side: https client (peer) URLs need the client (peer) CA, cert and key, and then client
(peer) certificates are required (``--client-cert-auth``/``--peer-client-cert-auth``).
"""

from __future__ import annotations

import re
import subprocess
from urllib.parse import urlsplit

from kos.resources.etcd import CLUSTER_STATES, EtcdSpecSpec

MIN_VERSION = (3, 4)

MANAGED_FLAGS = frozenset(
    {
        "name", "data-dir", "listen-client-urls", "advertise-client-urls", "listen-peer-urls",
        "initial-advertise-peer-urls", "initial-cluster", "initial-cluster-state", "initial-cluster-token",
        "heartbeat-interval", "election-timeout", "cert-file", "key-file", "trusted-ca-file", "client-cert-auth",
        "peer-cert-file", "peer-key-file", "peer-trusted-ca-file", "peer-client-cert-auth",
    }
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class EtcdSpecError(ValueError):
    """The spec cannot be rendered; the message names the field, the value and what was expected."""


def _check_urls(field: str, urls: list[str], required: bool = True) -> bool:
    """Validate URLs; returns whether they use https."""
    if required and not urls:
        raise EtcdSpecError(f"EtcdSpec.{field}: expected at least one URL")
    schemes = set()
    for u in urls:
        p = urlsplit(u)
        if p.scheme not in ("http", "https") or not p.hostname or p.port is None:
            raise EtcdSpecError(f"EtcdSpec.{field}: {u!r} is not a URL like https://10.0.0.1:2379")
        schemes.add(p.scheme)
    if len(schemes) > 1:
        raise EtcdSpecError(f"EtcdSpec.{field}: mixes http and https URLs ({', '.join(urls)})")
    return schemes == {"https"}


def _check_tls(side: str, ca: str, cert: str, key: str, prefix: str) -> None:
    missing = [n for n, v in ((f"{prefix}ca_file", ca), (f"{prefix}cert_file", cert), (f"{prefix}key_file", key))
               if not v]
    if missing:
        raise EtcdSpecError(f"EtcdSpec: https {side} URLs need {', '.join(missing)}")


def render_args(spec: EtcdSpecSpec, binary: str = "etcd") -> list[str]:
    """The argv that runs etcd as ``spec`` says (validated; raises EtcdSpecError)."""
    if not _NAME_RE.match(spec.name):
        raise EtcdSpecError(f"EtcdSpec.name: {spec.name!r} must be a non-empty name of letters, digits, '.', '_', '-'")
    if not spec.data_dir.startswith("/"):
        raise EtcdSpecError(f"EtcdSpec.data_dir: {spec.data_dir!r} must be an absolute path")
    if spec.initial_cluster_state not in CLUSTER_STATES:
        expected = ", ".join(CLUSTER_STATES)
        state = spec.initial_cluster_state
        raise EtcdSpecError(f"EtcdSpec.initial_cluster_state: {state!r}, expected one of {expected}")
    client_tls = _check_urls("listen_client_urls", spec.listen_client_urls)
    if _check_urls("advertise_client_urls", spec.advertise_client_urls) != client_tls:
        raise EtcdSpecError("EtcdSpec.advertise_client_urls: scheme differs from listen_client_urls")
    peer_tls = _check_urls("listen_peer_urls", spec.listen_peer_urls)
    if _check_urls("advertise_peer_urls", spec.advertise_peer_urls) != peer_tls:
        raise EtcdSpecError("EtcdSpec.advertise_peer_urls: scheme differs from listen_peer_urls")
    if not spec.initial_cluster:
        raise EtcdSpecError("EtcdSpec.initial_cluster: expected at least this member (name -> peer URLs)")
    if spec.name not in spec.initial_cluster:
        raise EtcdSpecError(f"EtcdSpec.initial_cluster: must contain this member {spec.name!r}")
    cluster: list[str] = []
    for name, urls in sorted(spec.initial_cluster.items()):
        split = [u.strip() for u in urls.split(",") if u.strip()]
        _check_urls(f"initial_cluster[{name}]", split)
        cluster.extend(f"{name}={u}" for u in split)
    if spec.heartbeat_ms <= 0 or spec.election_ms < 5 * spec.heartbeat_ms:
        raise EtcdSpecError(
            f"EtcdSpec: election_ms ({spec.election_ms}) must be at least 5x heartbeat_ms ({spec.heartbeat_ms}) > 0"
        )
    args = [
        binary,
        f"--name={spec.name}",
        f"--data-dir={spec.data_dir}",
        f"--listen-client-urls={','.join(spec.listen_client_urls)}",
        f"--advertise-client-urls={','.join(spec.advertise_client_urls)}",
        f"--listen-peer-urls={','.join(spec.listen_peer_urls)}",
        f"--initial-advertise-peer-urls={','.join(spec.advertise_peer_urls)}",
        f"--initial-cluster={','.join(cluster)}",
        f"--initial-cluster-state={spec.initial_cluster_state}",
        f"--initial-cluster-token={spec.initial_cluster_token}",
        f"--heartbeat-interval={spec.heartbeat_ms}",
        f"--election-timeout={spec.election_ms}",
    ]
    if client_tls:
        _check_tls("client", spec.ca_file, spec.cert_file, spec.key_file, "")
        args += [f"--cert-file={spec.cert_file}", f"--key-file={spec.key_file}",
                 f"--trusted-ca-file={spec.ca_file}", "--client-cert-auth=true"]
    if peer_tls:
        _check_tls("peer", spec.peer_ca_file, spec.peer_cert_file, spec.peer_key_file, "peer_")
        args += [f"--peer-cert-file={spec.peer_cert_file}", f"--peer-key-file={spec.peer_key_file}",
                 f"--peer-trusted-ca-file={spec.peer_ca_file}", "--peer-client-cert-auth=true"]
    for key, value in sorted(spec.extra_args.items()):
        flag = key.lstrip("-")
        if flag in MANAGED_FLAGS:
            raise EtcdSpecError(f"EtcdSpec.extra_args: {key!r} is managed by kos and cannot be overridden")
        if not flag or "=" in flag:
            raise EtcdSpecError(f"EtcdSpec.extra_args: {key!r} is not a flag name")
        args.append(f"--{flag}={value}")
    return args


def parse_version(output: str) -> tuple[int, int, int]:
    m = re.search(r"etcd Version:\s*(\d+)\.(\d+)\.(\d+)", output)
    if not m:
        raise RuntimeError(f"cannot find 'etcd Version: X.Y.Z' in {output.strip()[:200]!r}")
    return int(m[1]), int(m[2]), int(m[3])


def check_version(binary: str = "etcd", minimum: tuple[int, int] = MIN_VERSION) -> tuple[int, int, int]:
    """Run ``etcd --version`` (blocking; call through a thread) and require at least ``minimum``."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except FileNotFoundError:
        raise RuntimeError(f"etcd binary {binary!r} not found (install Debian's etcd-server)") from None
    version = parse_version(out)
    if version[:2] < minimum:
        raise RuntimeError(
            f"etcd {'.'.join(map(str, version))} is too old: kos needs >= {'.'.join(map(str, minimum))}"
        )
    return version
