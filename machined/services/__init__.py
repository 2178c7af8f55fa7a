"""The service supervisor of machined and its services (etcd, containerd).

Public API::

    Supervisor(state)                      # async context manager; add/start/stop/restart/list/log
    ServiceDefinition(id, runner, depends_on=[...], restart=RestartPolicy.FOREVER,
                      backoff=BackoffPolicy(), health=HealthCheck(probe), skip=None)
    ProcessRunner(args, env=, cwd=, stop_timeout=, namespaces=, netns_path=) / TaskRunner(fn)
    ResourceCondition(state, ptr, check) / PredicateCondition(description, predicate) / service_healthy(state, id)
    tcp_probe / http_probe / grpc_probe            # health probes
    LogRing / LogStore / RingLogProcessor          # bounded logs with tail and follow
    kmsg.pump_kmsg(ring)                           # the kernel log into a ring
"""

from typing import TYPE_CHECKING

from kos.resources.lazy import surface, table_of

if TYPE_CHECKING:
    from kos.machined.services.conditions import Condition, PredicateCondition, ResourceCondition, service_healthy
    from kos.machined.services.health import HealthCheck, grpc_probe, http_probe, tcp_probe
    from kos.machined.services.logring import OWN_LOG, LogRing, LogStore, RingLogProcessor
    from kos.machined.services.runners import ProcessRunner, RunContext, Runner, TaskRunner
    from kos.machined.services.supervisor import (
        BackoffPolicy,
        RestartPolicy,
        ServiceDefinition,
        ServiceEvent,
        ServiceState,
        ServiceStatus,
        Supervisor,
    )

__getattr__ = surface(
    __name__,
    globals(),
    table_of(
        {
            "conditions": (
                "Condition",
                "PredicateCondition",
                "ResourceCondition",
                "service_healthy",
            ),
            "health": (
                "HealthCheck",
                "grpc_probe",
                "http_probe",
                "tcp_probe",
            ),
            "logring": (
                "OWN_LOG",
                "LogRing",
                "LogStore",
                "RingLogProcessor",
            ),
            "runners": (
                "ProcessRunner",
                "RunContext",
                "Runner",
                "TaskRunner",
            ),
            "supervisor": (
                "BackoffPolicy",
                "RestartPolicy",
                "ServiceDefinition",
                "ServiceEvent",
                "ServiceState",
                "ServiceStatus",
                "Supervisor",
            ),
        }
    ),
)

__all__ = [
    "OWN_LOG",
    "BackoffPolicy",
    "Condition",
    "HealthCheck",
    "LogRing",
    "LogStore",
    "PredicateCondition",
    "ProcessRunner",
    "ResourceCondition",
    "RestartPolicy",
    "RingLogProcessor",
    "RunContext",
    "Runner",
    "ServiceDefinition",
    "ServiceEvent",
    "ServiceState",
    "ServiceStatus",
    "Supervisor",
    "TaskRunner",
    "grpc_probe",
    "http_probe",
    "service_healthy",
    "tcp_probe",
]
