"""Local clusters on one machine: nodes as Linux namespaces (the default provisioner).

* ``network``: the cluster's own network namespace with a bridge, and one namespace per
  node attached to it by a veth pair (never touching the host's interfaces);
* ``nodeinit``: the first process of a node, which builds the node's root (a tmpfs with
  read-only binds, no shell), pivots into it and execs the node's PID 1;
* ``forward``: a TCP forwarder so the host reaches node APIs through loopback ports;
* ``namespaces``: the provisioner that ties them together and can tear everything down.
"""
