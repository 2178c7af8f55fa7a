"""Adapters between the network controllers and the kernel: netlink (links, addresses,
routes, change events), sockets opened inside a network namespace, DHCPv4 and gratuitous-ARP
wire formats, the DNS message format and the host DNS cache server (``dnswire``,
``dnsserver``), and atomic rendering of /etc files. Every adapter takes the network namespace
path (``/run/netns/X`` or ``None`` for the caller's own) so it can be tested in a private
namespace."""
