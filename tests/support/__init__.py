"""Test harnesses shared by tests/ and bench/ (not part of the installed kos packages).

* ``loopback``: ``serve_state`` / ``LoopbackAPI`` - a State (and machine API) served over
  mutual TLS on 127.0.0.1 with a throwaway PKI;
* ``localcluster``: ``LocalCluster`` - N real etcd members under one Supervisor;
* ``nodecluster``: ``NodeCluster`` - N in-process control-plane nodes running etcd the way
  machined does, with the machine API.
"""
