"""Disks and volumes: the disk selector language, the partition layout planner, and the
controllers that discover disks and provision, format and mount volumes."""
