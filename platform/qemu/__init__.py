"""The ``qemu`` platform: a VM under QEMU (kernel cmdline or fw_cfg config)."""
