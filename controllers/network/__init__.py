"""Network controllers: config layers -> merged specs -> kernel (netlink), files and
operators (DHCPv4, VIP); status controllers publish what the kernel has. See docs/network.md."""
