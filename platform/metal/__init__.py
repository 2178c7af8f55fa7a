"""The ``metal`` platform: bare metal, config URL from the kernel command line."""
