"""The qemu platform: like metal (``kos.config=`` on the kernel command line), and the config
may also come inline through QEMU's firmware config as ``-fw_cfg name=opt/kos.config,file=...``
(read from ``/sys/firmware/qemu_fw_cfg/by_name/opt/kos.config/raw``, which needs the
``qemu_fw_cfg`` kernel module)."""

from __future__ import annotations

from pathlib import Path

from kos.platform.metal.platform import MetalPlatform

FW_CFG = Path("/sys/firmware/qemu_fw_cfg/by_name/opt/kos.config/raw")


class QemuPlatform(MetalPlatform):
    name = "qemu"

    def __init__(self, cmdline: str | None = None, fw_cfg: Path = FW_CFG) -> None:
        super().__init__(cmdline)
        self.fw_cfg = fw_cfg

    def config(self) -> bytes | None:
        if self.fw_cfg.exists():
            return self.fw_cfg.read_bytes()
        return super().config()


PLATFORM_CLASS = QemuPlatform
