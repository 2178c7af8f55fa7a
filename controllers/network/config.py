"""Config controllers: each source of network configuration writes its layer into
``network-config`` (ids ``<layer>/<id>``); the merge controllers combine the layers.

* ``DefaultLayerController``: the ``default`` layer from the kernel's physical links
  (``LinkStatuses``) and whether the cmdline, platform or configuration layer configures
  addresses/operators (operator results do not count: a DHCP lease must not switch off the
  DHCP that produced it).
* ``CmdlineLayerController``: the ``cmdline`` layer from a kernel command line string.
* ``PlatformLayerController``: the ``platform`` layer from ``PlatformNetworkConfigs/platform``.
* ``ConfigurationLayerController``: the ``configuration`` layer from the active
  ``MachineConfigs/v1alpha1``.

A source that does not parse (``LayerError``, ``CmdlineError``, ``ConfigErrors``) is logged
with the field, value and expectation, and the layer keeps what it had: the machine stays as
it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kos.controllers.network.cmdline import CmdlineError, parse_cmdline
from kos.controllers.network.interfaces import configured_links
from kos.controllers.network.layers import (
    Layer,
    LayerError,
    cmdline_layer,
    configuration_layer,
    default_layer,
    platform_layer,
)
from kos.controllers.runtime import Controller, ControllerRuntime, Input, InputKind, Output, OutputKind
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.config import NAMESPACE as CONFIG_NS
from kos.resources.core import Pointer, Resource
from kos.resources.network import (
    ADDRESS_SPECS,
    APPLY_ERRORS,
    CONFIG_NAMESPACE,
    HOSTNAME_SPECS,
    LINK_SPECS,
    LINK_STATUSES,
    NAMESPACE,
    OPERATOR_SPECS,
    PLATFORM_CONFIGS,
    RESOLVER_SPECS,
    ROUTE_SPECS,
    TIMESERVER_SPECS,
    ConfigLayer,
    NetworkApplyErrorSpec,
    PlatformNetworkConfigSpec,
    config_kind,
    layered_id,
    split_layered_id,
)

LAYERED_KINDS = tuple(
    config_kind(k)
    for k in (LINK_SPECS, ADDRESS_SPECS, ROUTE_SPECS, HOSTNAME_SPECS, RESOLVER_SPECS, TIMESERVER_SPECS, OPERATOR_SPECS)
)


def layered_outputs() -> list[Output]:
    return [*(Output(k.type, OutputKind.SHARED) for k in LAYERED_KINDS), Output(APPLY_ERRORS.type, OutputKind.SHARED)]


async def write_layer(rt: ControllerRuntime, layer: ConfigLayer, content: Layer,
                      last: list[Any] | None = None) -> None:
    """Make ``network-config`` hold exactly ``content`` for ``layer`` (of what this controller
    owns). With ``last`` (the controller's memory of its previous write), an unchanged layer
    is not written again."""
    items = content.items(layer)
    if last is not None:
        if last and last[0] == items:
            return
        last[:] = [items]
    rt.start_tracking_outputs()
    for _kind, id, spec in items:

        def fill(r: Resource[Any], spec: Any = spec) -> None:
            r.spec = spec

        await rt.modify(Resource.new(type(spec)(), layered_id(layer, id), namespace=CONFIG_NAMESPACE), fill)
    await rt.cleanup_outputs(*LAYERED_KINDS, APPLY_ERRORS)


class _LayerController(Controller):
    layer: ConfigLayer
    _last: list[Any]

    def outputs(self) -> Sequence[Output]:
        return layered_outputs()

    async def compute(self, rt: ControllerRuntime) -> Layer:
        raise NotImplementedError

    async def run(self, rt: ControllerRuntime) -> None:
        self._last = []
        async for _ in rt.events():
            try:
                content = await self.compute(rt)
            except (LayerError, CmdlineError, ValueError) as e:
                rt.logger.error("network config rejected, keeping the previous layer", layer=str(self.layer),
                                error=str(e))
                id = f"layer/{self.layer}"

                def fill(r: Resource[Any], msg: str = str(e), id: str = id) -> None:
                    r.spec = NetworkApplyErrorSpec(object=id, error=msg)

                await rt.modify(Resource.new(NetworkApplyErrorSpec(), id, namespace=NAMESPACE), fill)
                self._last.clear()  # the next good layer is written in full (and clears this error)
                continue
            await write_layer(rt, self.layer, content, self._last)


async def physical_links(rt: ControllerRuntime) -> list[tuple[str, str]]:
    return [(r.metadata.id, r.spec.hardware_address) for r in await rt.list(LINK_STATUSES) if r.spec.physical]


class DefaultLayerController(_LayerController):
    name = "network.NetworkDefaultLayerController"
    layer = ConfigLayer.DEFAULT

    def __init__(self, machine_id: str = "") -> None:
        self.machine_id = machine_id

    def inputs(self) -> Sequence[Input]:
        return (
            Input(LINK_STATUSES.namespace, LINK_STATUSES.type),
            Input(CONFIG_NAMESPACE, ADDRESS_SPECS.type),
            Input(CONFIG_NAMESPACE, OPERATOR_SPECS.type),
        )

    async def compute(self, rt: ControllerRuntime) -> Layer:
        others = False
        for kind in (config_kind(ADDRESS_SPECS), config_kind(OPERATOR_SPECS)):
            for r in await rt.list(kind):
                layer, _ = split_layered_id(r.metadata.id)
                # operator results (a DHCP lease) do not count: they exist because of this layer
                if layer not in (str(ConfigLayer.DEFAULT), str(ConfigLayer.OPERATOR)) and r.spec.link_name != "lo":
                    others = True
        return default_layer(await physical_links(rt), machine_id=self.machine_id, others_configure=others)


class CmdlineLayerController(_LayerController):
    name = "network.NetworkCmdlineLayerController"
    layer = ConfigLayer.CMDLINE

    def __init__(self, cmdline: str) -> None:
        self.cmdline = cmdline

    def inputs(self) -> Sequence[Input]:
        return (Input(LINK_STATUSES.namespace, LINK_STATUSES.type),)

    async def compute(self, rt: ControllerRuntime) -> Layer:
        net = parse_cmdline(self.cmdline)
        return cmdline_layer(net, [name for name, _ in await physical_links(rt)])


class PlatformLayerController(_LayerController):
    name = "network.NetworkPlatformLayerController"
    layer = ConfigLayer.PLATFORM

    def inputs(self) -> Sequence[Input]:
        return (Input(PLATFORM_CONFIGS.namespace, PLATFORM_CONFIGS.type, "platform"),)

    async def compute(self, rt: ControllerRuntime) -> Layer:
        r = await rt.get_or_none(Pointer(PLATFORM_CONFIGS.namespace, PLATFORM_CONFIGS.type, "platform"))
        return platform_layer(r.spec if r is not None else PlatformNetworkConfigSpec())


def layer_from_machine_config(spec: MachineConfigSpec, links: Sequence[tuple[str, str, bool]] = ()) -> Layer:
    """``links``: (name, MAC, physical) of the kernel's links, for ``deviceSelector``."""
    from kos.resources.machineconfig import views

    c = spec.container()
    h = views.hostname(c)
    return configuration_layer(
        configured_links(c, links),
        hostname=h.hostname,
        hostname_source=h.source,
        nameservers=views.nameservers(c),
        search_domains=views.search_domains(c),
        time_servers=views.time_servers(c),
    )


class ConfigurationLayerController(_LayerController):
    name = "network.NetworkConfigurationLayerController"
    layer = ConfigLayer.CONFIGURATION

    def inputs(self) -> Sequence[Input]:
        return (
            Input(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID, InputKind.WEAK),
            Input(LINK_STATUSES.namespace, LINK_STATUSES.type),  # deviceSelector
        )

    async def compute(self, rt: ControllerRuntime) -> Layer:
        r = await rt.get_or_none(Pointer(CONFIG_NS, MachineConfigSpec.definition.type, ACTIVE_ID))
        if r is None:
            return Layer()
        links = [(s.metadata.id, s.spec.hardware_address, s.spec.physical) for s in await rt.list(LINK_STATUSES)]
        try:
            return layer_from_machine_config(r.spec, links)
        except LayerError:
            raise
        except Exception as e:  # ConfigErrors from the loader: already named by path
            raise LayerError("machine config", type(e).__name__, f"a loadable config ({e})") from None
