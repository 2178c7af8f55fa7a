"""The block controllers a node registers, in one call::

    for c in block_controllers(container_mode=is_container):
        runtime.register(c)
"""

from __future__ import annotations

from kos.controllers.block.config import VolumeConfigController
from kos.controllers.block.discovery import BlockDiscoveryController
from kos.controllers.block.volumes import VolumeController
from kos.controllers.runtime import Controller


def block_controllers(*, root: str = "/", container_mode: bool = False) -> list[Controller]:
    """Config -> VolumeConfigs, discovery (not in container mode: no devices of our own),
    and volume provisioning under ``root``."""
    out: list[Controller] = [VolumeConfigController(), VolumeController(root=root, container_mode=container_mode)]
    if not container_mode:
        out.insert(0, BlockDiscoveryController())
    return out
