"""An async etcd v3 client (grpclib + betterproto, mutual TLS) for membership, health,
snapshots and simple key/value access. The generated protocol code lives in ``gen/``
(regenerate with ``apis/etcd/generate``); the client is in ``client``.
"""

from kos.apis.etcd.client import EndpointStatus, EtcdClient, EtcdError, MemberInfo, TLSFiles, format_member_id

__all__ = ["EndpointStatus", "EtcdClient", "EtcdError", "MemberInfo", "TLSFiles", "format_member_id"]
