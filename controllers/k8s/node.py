"""Node-level controllers: Nodename, NodeIP, KubeletConfig and KubeletSpec.

* ``NodenameController``: HostnameStatus(hostname) + MachineConfig -> Nodenames(nodename):
  the lower-cased hostname, or hostname.domainname with ``machine.kubelet.registerWithFQDN``.
* ``NodeIPController``: NodeAddresses(routed) + MachineConfig -> NodeIPs(kubelet): the first
  address of each family that passes ``machine.kubelet.nodeIP.validSubnets``
  (``kos.resources.network.filter_addresses``; default: any).
* ``KubeletConfigController``: MachineConfig -> KubeletConfigs(kubelet).
* ``KubeletSpecController``: KubeletConfig + Nodename + NodeIP + KubernetesRootSecrets(k8s)
  -> KubeletSpecs(kubelet) (``kos.controllers.k8s.kubelet.render_kubelet_spec``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from kos.controllers.k8s import kubelet as render
from kos.controllers.k8s.base import MACHINE_CONFIGS, K8sController, machine_config, machine_container, running_spec
from kos.controllers.k8s.flags import TARGET_VERSION, unknown_flags
from kos.controllers.runtime import ControllerRuntime, Input, set_spec
from kos.resources.config import ACTIVE_ID
from kos.resources.core import Resource
from kos.resources.k8s import (
    KUBELET_CONFIGS,
    KUBELET_ID,
    KUBELET_SPECS,
    NODEIP_ID,
    NODEIPS,
    NODENAME_ID,
    NODENAMES,
    KubeletConfigSpec,
    KubeletSpecSpec,
    NodeIPSpec,
    NodenameSpec,
)
from kos.resources.machineconfig import views
from kos.resources.network import HOSTNAME_STATUSES, NODE_ADDRESSES, filter_addresses
from kos.resources.secrets import K8S_ROOT, K8S_ROOT_ID, KubernetesRootSpec

NODE_ADDRESS_ID = "routed"


def nodename_for(hostname: str, domainname: str, *, fqdn: bool) -> str:
    if not hostname:
        raise render.KubeletRenderError("hostname: empty, the node cannot register without a name")
    name = f"{hostname}.{domainname}" if fqdn and domainname else hostname
    return name.lower()


def node_ips_for(addresses: list[str], valid_subnets: list[str]) -> list[str]:
    """At most one IP per family (IPv4 first), without prefix length."""
    picked: dict[int, str] = {}
    for a in filter_addresses(addresses, valid_subnets, []):
        ip = ipaddress.ip_interface(a).ip
        picked.setdefault(ip.version, str(ip))
    return [picked[v] for v in (4, 6) if v in picked]


class NodenameController(K8sController):
    name = "k8s.NodenameController"
    output_kinds = (NODENAMES,)

    def inputs(self) -> Sequence[Input]:
        return [Input(HOSTNAME_STATUSES.namespace, HOSTNAME_STATUSES.type, "hostname"),
                Input(MACHINE_CONFIGS.namespace, MACHINE_CONFIGS.type, ACTIVE_ID)]

    async def reconcile(self, rt: ControllerRuntime) -> None:
        cfg = await machine_config(rt)
        hs = await running_spec(rt, HOSTNAME_STATUSES, "hostname")
        if cfg is None or hs is None or not hs.hostname:
            return
        k = cfg.machine.kubelet
        spec = NodenameSpec(nodename=nodename_for(hs.hostname, hs.domainname, fqdn=bool(k.register_with_fqdn)),
                            hostname=hs.hostname, skip_node_registration=bool(k.skip_node_registration))
        await rt.modify(Resource.new(NodenameSpec(), NODENAME_ID), set_spec(spec))


class NodeIPController(K8sController):
    name = "k8s.NodeIPController"
    output_kinds = (NODEIPS,)

    def inputs(self) -> Sequence[Input]:
        return [Input(NODE_ADDRESSES.namespace, NODE_ADDRESSES.type, NODE_ADDRESS_ID),
                Input(MACHINE_CONFIGS.namespace, MACHINE_CONFIGS.type, ACTIVE_ID)]

    async def reconcile(self, rt: ControllerRuntime) -> None:
        cfg = await machine_config(rt)
        addrs = await running_spec(rt, NODE_ADDRESSES, NODE_ADDRESS_ID)
        if cfg is None or addrs is None:
            return
        valid = list(cfg.machine.kubelet.node_ip.valid_subnets)
        try:
            ips = node_ips_for(list(addrs.addresses), valid)
        except ValueError as exc:
            raise ValueError(f"machine.kubelet.nodeIP.validSubnets: {exc}") from None
        if not ips:
            rt.logger.warning("no node address matches machine.kubelet.nodeIP.validSubnets",
                              addresses=list(addrs.addresses), valid_subnets=valid)
            return
        await rt.modify(Resource.new(NodeIPSpec(), NODEIP_ID), set_spec(NodeIPSpec(addresses=ips)))


class KubeletConfigController(K8sController):
    name = "k8s.KubeletConfigController"
    output_kinds = (KUBELET_CONFIGS,)

    def inputs(self) -> Sequence[Input]:
        return [Input(MACHINE_CONFIGS.namespace, MACHINE_CONFIGS.type, ACTIVE_ID)]

    async def reconcile(self, rt: ControllerRuntime) -> None:
        container = await machine_container(rt)
        cfg = container.v1alpha1 if container is not None else None
        if container is None or cfg is None:
            return
        spec = render.kubelet_config_from_machine(cfg)
        spec.host_dns = views.host_dns(container).enabled
        spec.api_server = render.kube_prism_url(cfg)
        await rt.modify(Resource.new(KubeletConfigSpec(), KUBELET_ID), set_spec(spec))


class KubeletSpecController(K8sController):
    name = "k8s.KubeletSpecController"
    output_kinds = (KUBELET_SPECS,)

    def __init__(self, paths: render.KubeletPaths) -> None:
        self.paths = paths

    def inputs(self) -> Sequence[Input]:
        return [Input(KUBELET_CONFIGS.namespace, KUBELET_CONFIGS.type, KUBELET_ID),
                Input(NODENAMES.namespace, NODENAMES.type, NODENAME_ID),
                Input(NODEIPS.namespace, NODEIPS.type, NODEIP_ID),
                Input(K8S_ROOT.namespace, K8S_ROOT.type, K8S_ROOT_ID)]

    async def reconcile(self, rt: ControllerRuntime) -> None:
        cfg: KubeletConfigSpec | None = await running_spec(rt, KUBELET_CONFIGS, KUBELET_ID)
        nn: NodenameSpec | None = await running_spec(rt, NODENAMES, NODENAME_ID)
        ips: NodeIPSpec | None = await running_spec(rt, NODEIPS, NODEIP_ID)
        root: KubernetesRootSpec | None = await running_spec(rt, K8S_ROOT, K8S_ROOT_ID)
        if cfg is None or nn is None or ips is None or root is None:
            return
        spec: KubeletSpecSpec = render.render_kubelet_spec(
            cfg, nodename=nn.nodename, node_ips=list(ips.addresses), endpoint=cfg.api_server or root.endpoint,
            ca_pem=root.ca_cert, bootstrap_token=root.bootstrap_token, paths=self.paths)
        unknown = unknown_flags("kubelet", list(spec.args))
        if unknown:  # a newer kubelet may know them: warn, do not refuse
            rt.logger.warning(f"flags unknown to kubelet {TARGET_VERSION}", flags=[f"--{f}" for f in unknown])
        await rt.modify(Resource.new(KubeletSpecSpec(), KUBELET_ID), set_spec(spec))
