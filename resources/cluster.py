"""Cluster membership resources (namespace ``cluster``), as Talos's cluster discovery.

* ``Identities`` (id ``local``): this node's stable id (kept on STATE, so it survives reboots).
* ``Affiliates`` (id = node id): what one node says about itself: hostname, machine type,
  operating system and addresses. The local node's comes from its own resources; the others'
  from the discovery registry on the control planes (``kos.controllers.cluster.discovery``).
* ``Members`` (id = hostname): the cluster's nodes, one per affiliate with a hostname;
  ``kosctl get members`` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from kos.resources.core import Kind, Spec, resource_type, spec_field

NAMESPACE = "cluster"
LOCAL_IDENTITY_ID = "local"


@resource_type("Identities.cluster.kos.dev", namespace=NAMESPACE, print_columns=[("ID", "{.nodeId}")])
@dataclass
class IdentitySpec(Spec):
    """This node's id in the cluster (random, persisted on STATE)."""

    node_id: str = spec_field(1, yaml="nodeId", default="")


@resource_type(
    "Affiliates.cluster.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Hostname", "{.hostname}"), ("Machine Type", "{.machineType}"), ("Addresses", "{.addresses}")],
)
@dataclass
class AffiliateSpec(Spec):
    """One node as it describes itself."""

    node_id: str = spec_field(1, yaml="nodeId", default="")
    hostname: str = spec_field(2, default="")
    machine_type: str = spec_field(3, yaml="machineType", default="unknown")
    operating_system: str = spec_field(4, yaml="operatingSystem", default="")
    addresses: list[str] = spec_field(5, default_factory=list)


@resource_type(
    "Members.cluster.kos.dev",
    namespace=NAMESPACE,
    print_columns=[("Hostname", "{.hostname}"), ("Machine Type", "{.machineType}"), ("OS", "{.operatingSystem}"),
                   ("Addresses", "{.addresses}")],
)
@dataclass
class MemberSpec(Spec):
    """A node of the cluster (id: its hostname)."""

    node_id: str = spec_field(1, yaml="nodeId", default="")
    hostname: str = spec_field(2, default="")
    machine_type: str = spec_field(3, yaml="machineType", default="unknown")
    operating_system: str = spec_field(4, yaml="operatingSystem", default="")
    addresses: list[str] = spec_field(5, default_factory=list)


IDENTITIES = Kind(NAMESPACE, IdentitySpec.definition.type)
AFFILIATES = Kind(NAMESPACE, AffiliateSpec.definition.type)
MEMBERS = Kind(NAMESPACE, MemberSpec.definition.type)
