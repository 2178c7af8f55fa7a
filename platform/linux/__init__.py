"""Thin, typed wrappers over the Linux system calls kos needs and Python's os module lacks:
mount/umount2/pivot_root (``syscalls``), setns into a network namespace; ``memory``: giving
freed heap memory back to the kernel after a burst (malloc_trim)."""
