"""What machined needs to run etcd on a node, from explicit parameters.

* ``etcd_controllers(supervisor, paths, define_service)``: EtcdConfigController (machine
  config -> EtcdConfig), EtcdSpecController (bootstrap / join / recover decisions -> EtcdSpec)
  and EtcdServiceController (EtcdSpec -> running etcd + EtcdMember). ``supervisor`` is a
  ``ServiceManager``; ``define_service`` adds machined's ``etcd`` service
  (``kos.machined.services.etcd.etcd_service_definition``) when it is missing;
* ``kos.machined.api.etcd.EtcdAPI(state, supervisor, paths)``: the RPCs, for
  ``MachineService(extensions=[...])``.
"""

from __future__ import annotations

from kos.controllers.etcd.config import EtcdConfigController
from kos.controllers.etcd.marker import EtcdPaths
from kos.controllers.etcd.service import EtcdServiceController
from kos.controllers.etcd.spec import EtcdSpecController
from kos.controllers.runtime import Controller, ServiceDefiner, ServiceManager


def etcd_controllers(
    *,
    supervisor: ServiceManager,
    paths: EtcdPaths,
    define_service: ServiceDefiner | None = None,
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
                              define=define_service),
    ]
