"""EtcdSpec -> etcd command line, and the binary version check."""

from __future__ import annotations

import dataclasses
import re

import pytest

from kos.controllers.etcd.render import EtcdSpecError, check_version, parse_version, render_args
from kos.resources.etcd import EtcdSpecSpec


def tls_spec(**kw: object) -> EtcdSpecSpec:
    base = EtcdSpecSpec(
        name="cp1",
        data_dir="/var/lib/etcd",
        listen_client_urls=["https://0.0.0.0:2379"],
        advertise_client_urls=["https://10.5.0.2:2379"],
        listen_peer_urls=["https://0.0.0.0:2380"],
        advertise_peer_urls=["https://10.5.0.2:2380"],
        initial_cluster={"cp1": "https://10.5.0.2:2380", "cp0": "https://10.5.0.1:2380"},
        ca_file="/etc/etcd/ca.crt", cert_file="/etc/etcd/server.crt", key_file="/etc/etcd/server.key",
        peer_ca_file="/etc/etcd/ca.crt", peer_cert_file="/etc/etcd/peer.crt", peer_key_file="/etc/etcd/peer.key",
        heartbeat_ms=50,
        election_ms=300,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_renders_full_mtls_command_line() -> None:
    args = render_args(tls_spec(initial_cluster_state="existing", extra_args={"quota-backend-bytes": "1024"}))
    assert args == [
        "etcd",
        "--name=cp1",
        "--data-dir=/var/lib/etcd",
        "--listen-client-urls=https://0.0.0.0:2379",
        "--advertise-client-urls=https://10.5.0.2:2379",
        "--listen-peer-urls=https://0.0.0.0:2380",
        "--initial-advertise-peer-urls=https://10.5.0.2:2380",
        "--initial-cluster=cp0=https://10.5.0.1:2380,cp1=https://10.5.0.2:2380",
        "--initial-cluster-state=existing",
        "--initial-cluster-token=kos-etcd",
        "--heartbeat-interval=50",
        "--election-timeout=300",
        "--cert-file=/etc/etcd/server.crt",
        "--key-file=/etc/etcd/server.key",
        "--trusted-ca-file=/etc/etcd/ca.crt",
        "--client-cert-auth=true",
        "--peer-cert-file=/etc/etcd/peer.crt",
        "--peer-key-file=/etc/etcd/peer.key",
        "--peer-trusted-ca-file=/etc/etcd/ca.crt",
        "--peer-client-cert-auth=true",
        "--quota-backend-bytes=1024",
    ]


def test_plain_http_has_no_tls_flags_and_multi_url_members_expand() -> None:
    spec = EtcdSpecSpec(
        name="a",
        data_dir="/d",
        listen_client_urls=["http://127.0.0.1:2379"],
        advertise_client_urls=["http://127.0.0.1:2379"],
        listen_peer_urls=["http://127.0.0.1:2380"],
        advertise_peer_urls=["http://127.0.0.1:2380"],
        initial_cluster={"a": "http://127.0.0.1:2380,http://[::1]:2380"},
    )
    args = render_args(spec, "/usr/bin/etcd")
    assert args[0] == "/usr/bin/etcd"
    assert "--initial-cluster=a=http://127.0.0.1:2380,a=http://[::1]:2380" in args
    assert not [a for a in args if "cert" in a or "trusted" in a]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, "EtcdSpec.name: '' must be a non-empty name"),
        ({"data_dir": "relative"}, "EtcdSpec.data_dir: 'relative' must be an absolute path"),
        ({"initial_cluster_state": "old"}, "EtcdSpec.initial_cluster_state: 'old', expected one of new, existing"),
        ({"listen_client_urls": []}, "EtcdSpec.listen_client_urls: expected at least one URL"),
        ({"listen_client_urls": ["10.0.0.1:2379"]}, "EtcdSpec.listen_client_urls: '10.0.0.1:2379' is not a URL"),
        ({"advertise_client_urls": ["http://10.0.0.1:2379"]}, "advertise_client_urls: scheme differs"),
        ({"initial_cluster": {"other": "https://10.0.0.1:2380"}}, "must contain this member 'cp1'"),
        ({"initial_cluster": {"cp1": "nope"}}, "EtcdSpec.initial_cluster\\[cp1\\]: 'nope' is not a URL"),
        ({"cert_file": ""}, "EtcdSpec: https client URLs need cert_file"),
        ({"peer_key_file": "", "peer_ca_file": ""}, "https peer URLs need peer_ca_file, peer_key_file"),
        ({"election_ms": 100}, "election_ms \\(100\\) must be at least 5x heartbeat_ms \\(50\\)"),
        ({"extra_args": {"--data-dir": "/x"}}, "extra_args: '--data-dir' is managed by kos"),
        ({"extra_args": {"a=b": "1"}}, "extra_args: 'a=b' is not a flag name"),
    ],
)
def test_bad_specs_name_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(EtcdSpecError, match=message):
        render_args(tls_spec(**change))


def test_version_parse_and_check() -> None:
    assert parse_version("etcd Version: 3.4.23\nGit SHA: x\n") == (3, 4, 23)
    with pytest.raises(RuntimeError, match="cannot find 'etcd Version"):
        parse_version("garbage")
    assert check_version("etcd") >= (3, 4, 0)
    with pytest.raises(RuntimeError, match=re.escape("too old: kos needs >= 99.0")):
        check_version("etcd", minimum=(99, 0))
    with pytest.raises(RuntimeError, match="not found"):
        check_version("/nonexistent/etcd")
