"""Adapters to the machine's block devices: sysfs/udev discovery, a superblock probe,
partitioning, mkfs, mount, grow and wipe. Every destructive function takes the exact device
it was told to touch and refuses anything else."""
