"""etcd resources (namespace ``etcd``).

* ``EtcdSpecs`` (id ``etcd``): how the local etcd member runs: name, listen/advertise URLs for
  clients and peers, the initial cluster and its state (new/existing), data dir, certificate
  paths, heartbeat/election timeouts and extra arguments. ``kos.controllers.etcd.render``
  turns it into etcd's command line.
* ``EtcdMembers`` (id ``local``): the local member's id once it is part of a cluster, as the
  hexadecimal string etcd prints.
* ``EtcdConfigs`` (id ``etcd``): the machine config's ``cluster.etcd`` on a control-plane node
  (extra args, advertised/listen subnet filters) plus the etcd client URLs a joining member asks
  (derived from ``cluster.controlPlane.endpoint``). Absent on workers.
* ``EtcdBootstraps`` (id ``bootstrap``): the persisted bootstrap marker as the Bootstrap RPC
  left it (bootstrapped, a pending snapshot recovery, left the cluster); written by the etcd
  API, read by the EtcdSpec controller (which also reads the marker file itself after a reboot).
* ``EtcdErrors`` (id ``etcd``): why the EtcdSpec controller cannot run etcd (a config field
  matching no address, a managed flag in extraArgs, an unreadable marker, a snapshot that did
  not restore); absent when there is nothing wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from kos.resources.core import Kind, Spec, resource_type, spec_field

NAMESPACE = "etcd"

CLUSTER_STATES = ("new", "existing")


@resource_type(
    "EtcdSpecs.etcd.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Name", "{.name}"), ("Client URLs", "{.advertiseClientUrls}"), ("State", "{.initialClusterState}")],
)
@dataclass
class EtcdSpecSpec(Spec):
    """Desired configuration of the local etcd member."""

    name: str = spec_field(1, default="")
    data_dir: str = spec_field(2, default="/var/lib/etcd")
    listen_client_urls: list[str] = spec_field(3, yaml="listenClientUrls", default_factory=list)
    advertise_client_urls: list[str] = spec_field(4, yaml="advertiseClientUrls", default_factory=list)
    listen_peer_urls: list[str] = spec_field(5, yaml="listenPeerUrls", default_factory=list)
    advertise_peer_urls: list[str] = spec_field(6, yaml="advertisePeerUrls", default_factory=list)
    initial_cluster: dict[str, str] = spec_field(7, yaml="initialCluster", default_factory=dict)
    initial_cluster_state: str = spec_field(8, yaml="initialClusterState", default="new")
    initial_cluster_token: str = spec_field(9, yaml="initialClusterToken", default="kos-etcd")
    ca_file: str = spec_field(10, yaml="caFile", default="")
    cert_file: str = spec_field(11, yaml="certFile", default="")
    key_file: str = spec_field(12, yaml="keyFile", default="")
    peer_ca_file: str = spec_field(13, yaml="peerCaFile", default="")
    peer_cert_file: str = spec_field(14, yaml="peerCertFile", default="")
    peer_key_file: str = spec_field(15, yaml="peerKeyFile", default="")
    heartbeat_ms: int = spec_field(16, yaml="heartbeatMs", default=100)
    election_ms: int = spec_field(17, yaml="electionMs", default=1000)
    extra_args: dict[str, str] = spec_field(18, yaml="extraArgs", default_factory=dict)


@resource_type("EtcdMembers.etcd.kos.dev", namespace=NAMESPACE, print_columns=[("Member ID", "{.memberId}")])
@dataclass
class EtcdMemberSpec(Spec):
    """The local member's id (hex, as ``etcdctl member list`` prints it)."""

    member_id: str = spec_field(1, yaml="memberId", default="")


@resource_type(
    "EtcdConfigs.etcd.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Advertised Subnets", "{.advertisedSubnets}"), ("Join Endpoints", "{.joinEndpoints}")],
)
@dataclass
class EtcdConfigSpec(Spec):
    """The etcd part of the machine config, as the EtcdSpec controller needs it."""

    extra_args: dict[str, str] = spec_field(1, yaml="extraArgs", default_factory=dict)
    advertised_subnets: list[str] = spec_field(2, yaml="advertisedSubnets", default_factory=list)
    listen_subnets: list[str] = spec_field(3, yaml="listenSubnets", default_factory=list)
    join_endpoints: list[str] = spec_field(4, yaml="joinEndpoints", default_factory=list)


@resource_type(
    "EtcdBootstraps.etcd.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Bootstrapped", "{.bootstrapped}"), ("Recover", "{.recoverFrom}"), ("Left", "{.left}")],
)
@dataclass
class EtcdBootstrapSpec(Spec):
    """The bootstrap marker: this node started the cluster (once), optionally from a snapshot;
    ``attempt`` counts Bootstrap calls (a recovery retried with another snapshot is a change)."""

    bootstrapped: bool = spec_field(1, default=False)
    recover_from: str = spec_field(2, yaml="recoverFrom", default="")
    skip_hash_check: bool = spec_field(3, yaml="skipHashCheck", default=False)
    left: bool = spec_field(4, default=False)
    attempt: int = spec_field(5, default=0)


@resource_type("EtcdErrors.etcd.kos.dev", namespace=NAMESPACE, print_columns=[("Error", "{.message}")])
@dataclass
class EtcdErrorSpec(Spec):
    """What keeps etcd from running here, naming the field and the value."""

    message: str = spec_field(1, default="")


ETCD_SPECS = Kind(NAMESPACE, EtcdSpecSpec.definition.type)
ETCD_MEMBERS = Kind(NAMESPACE, EtcdMemberSpec.definition.type)
ETCD_CONFIGS = Kind(NAMESPACE, EtcdConfigSpec.definition.type)
ETCD_BOOTSTRAPS = Kind(NAMESPACE, EtcdBootstrapSpec.definition.type)
ETCD_ERRORS = Kind(NAMESPACE, EtcdErrorSpec.definition.type)
