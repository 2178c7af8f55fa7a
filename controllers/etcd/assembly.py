"""What machined needs to run etcd on a node, from explicit parameters.

* ``etcd_service_definition(paths)``: the ``etcd`` service (add it to the Supervisor; it stays
  idle until the controllers give it a spec);
* ``etcd_controllers(supervisor, paths)``: EtcdConfigController (machine config ->
  EtcdConfig), EtcdSpecController (bootstrap / join / recover decisions -> EtcdSpec) and
  EtcdServiceController (EtcdSpec -> running etcd + EtcdMember);
* ``kos.machined.api.etcd.EtcdAPI(state, supervisor, paths)``: the RPCs, for
  ``MachineService(extensions=[...])``.
"""

from __future__ import annotations

from kos.controllers.etcd.config import EtcdConfigController
from kos.controllers.etcd.marker import EtcdPaths
from kos.controllers.etcd.service import EtcdServiceController
from kos.controllers.etcd.spec import EtcdSpecController
from kos.controllers.runtime import Controller
from kos.machined.services.etcd import etcd_service
from kos.machined.services.supervisor import ServiceDefinition, Supervisor


def etcd_service_definition(paths: EtcdPaths, *, binary: str = "etcd", stop_timeout: float = 15.0) -> ServiceDefinition:
    return etcd_service(None, paths.admin_tls, binary=binary, stop_timeout=stop_timeout)


def etcd_controllers(
    *,
    supervisor: Supervisor,
    paths: EtcdPaths,
    heartbeat_ms: int = 100,
    election_ms: int = 1000,
    join_retry: float = 1.0,
    etcdctl: str = "etcdctl",
    healthy_timeout: float = 60.0,
) -> list[Controller]:
    return [
        EtcdConfigController(),
        EtcdSpecController(paths, heartbeat_ms=heartbeat_ms, election_ms=election_ms, join_retry=join_retry,
                           etcdctl=etcdctl),
        EtcdServiceController(supervisor, paths.admin_tls, healthy_timeout=healthy_timeout,
                              definition=lambda: etcd_service_definition(paths)),
    ]
