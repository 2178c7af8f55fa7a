"""The bootable image: deterministic writers (cpio initramfs, squashfs rootfs, GPT disk
image), the kernel extractor, the META key/value store with the A/B boot-slot state machine,
and the installer that writes a rootfs into a BOOT slot. Used by ``rootfs-build/build`` on
the build host and by the upgrade path on a node."""
