"""The node's API serving: the maintenance API (TLS without client certificates) until a config
arrives, then the full API over mutual TLS with the node certificate from
``APICerts(secrets/api)``, else from the config's OS CA, else from a CA of the node's own; the
machine-API extensions of ``kos.machined.api``; trustd and the discovery registry on control
planes.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import anyio
import structlog
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.server.dispatch import Node
from kos.apis.server.machine import MachineService
from kos.apis.server.nodepki import issue_client_configuration
from kos.apis.server.security import SecurityService
from kos.apis.server.serve import APIServer
from kos.apis.server.state import StateService
from kos.apis.tls import client_context, server_context
from kos.machined.early import listen_maintenance
from kos.machined.nodebase import write_endpoint
from kos.machined.nodeidentity import NodeIdentity
from kos.resources.config import is_control_plane
from kos.resources.pki import CertificateAndKey

log = structlog.get_logger("kos.machined")

class NodeAPI(NodeIdentity):
    async def _serve_maintenance(self) -> None:
        # the server machined started before loading the node (kos.machined.early), else one now
        server, self.opts.early_api = self.opts.early_api, None
        if server is None:
            server = await listen_maintenance(self.opts.listen, self.opts.node_names, self.opts.platform)
        machine = MachineService(config=self.store, maintenance=True, supervisor=self.supervisor, events=self.events,
                                 platform_name=self.opts.platform)
        server.serve(state=StateService(self.state, self.policy), machine=machine)
        self.port = server.port
        write_endpoint(self.opts.state_dir, self.host, server.port)
        self.ready.set()
        try:
            await self._wait_machine_config(timeout=None)
            log.info("configuration applied in maintenance mode: switching to mutual TLS")
            await anyio.sleep(0.5)  # closing cancels running calls: let the apply's answer leave
        finally:
            with anyio.CancelScope(shield=True):
                await server.close(grace=2.0)


    async def _task_api(self) -> None:
        ident = await self._identity()
        node = Node(
            names=frozenset([*self.opts.node_names, socket.gethostname()]),
            port=self.port,
            forward_ssl=client_context(ident.ca_pem, ident.forward),
        )
        shown = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        pki = ident.pki

        from kos.controllers.secrets.trustd import issuing_ca

        async def signing_ca() -> CertificateAndKey | None:
            """The OS CA with its key: the machine config's secrets (OSRootSecrets; control
            planes of a cluster, whose API certificate comes from APICerts), else the node's
            own CA (a node started without a cluster's secrets)."""
            ca = await issuing_ca(self.state)
            if ca is None and pki is not None and pki.ca.has_key:
                ca = pki.ca
            return ca

        async def client_config(roles: list[str], ttl: int) -> Any:
            ca = await signing_ca()
            if ca is None:
                raise GRPCError(
                    Status.FAILED_PRECONDITION,
                    "this node holds no OS CA key (a worker): ask a control plane for client configurations",
                )
            return await anyio.to_thread.run_sync(
                issue_client_configuration, ca, "kos", [f"{shown}:{node.port}"], roles, ttl
            )

        machine = MachineService(
            config=self.store, supervisor=self.supervisor, events=self.events, client_config=client_config,
            extensions=self._extensions(node.forward_ssl), platform_name=self.opts.platform,
        )
        self._server = await APIServer.start(
            self.host, self.port, server_context(ident.server, ident.ca_pem), node=node,
            state=StateService(self.state, self.policy), machine=machine, security=SecurityService(signing_ca),
        )  # fmt: skip
        self.port = self._server.port
        if pki is not None and pki.ca.has_key:
            cfg = pki.client_config("kos", [f"{shown}:{self._server.port}"], [auth.ADMIN], 365 * 86400)
            await anyio.to_thread.run_sync(cfg.save, self.opts.state_dir / "kosconfig")
        write_endpoint(self.opts.state_dir, self.host, self._server.port)
        self.events.publish("api", {"action": "listening", "port": self._server.port, "certificates": ident.source})
        assert self._tg is not None
        if ident.source == "APICerts":
            from kos.controllers.secrets.trustd import follow_api_certs

            server = self._server
            self._tg.start_soon(lambda: follow_api_certs(
                self.state, lambda pair, ca: server.reload_identity(pair, ca), skip_version=ident.version
            ))
            container = self._container()
            if container is not None and is_control_plane(container.machine_type):
                from kos.controllers.cluster.discovery import run_registry
                from kos.controllers.secrets.trustd import run_trustd

                await self._tg.start(run_trustd, self.state)
                await self._tg.start(lambda task_status: run_registry(
                    self.state, wakeup=self._discovery_wakeup, task_status=task_status))
        self.ready.set()

    def _extensions(self, forward_ssl: Any = None) -> list[Any]:
        # imported here, when the full API starts: the maintenance API serves none of them, and
        # their modules (disks, files, etcd, diagnostics ...) would delay its start (issue 17)
        from kos.machined.api import (
            ClusterHealthAPI,
            ContainersAPI,
            DiagnosticsAPI,
            DisksAPI,
            EtcdAPI,
            EtcdMaintenanceAPI,
            FilePolicy,
            FilesAPI,
            ImagesAPI,
            LifecycleService,
            PodLogsAPI,
            StatsAPI,
        )

        out: list[Any] = [LifecycleService(self.lifecycle)]
        out.append(EtcdAPI(self.state, self.supervisor, self._etcd_paths()))
        # the socket machined.assembly.node_services gives containerd
        pod_logs = Path(self._root()) / "var/log"  # the kubelet's container logs (/var/log/pods, /var/log/containers)
        containers = ContainersAPI(Path(self._root()) / "run/containerd/containerd.sock", pod_log_root=pod_logs)
        out.append(containers)
        out.append(PodLogsAPI(pod_logs))
        out.append(StatsAPI(containers))
        out.append(ImagesAPI(containers))
        if forward_ssl is not None:  # the health checks call this node's API with its client identity
            out.append(ClusterHealthAPI(self._local_endpoint, forward_ssl))
        # the operator's daily tools: files, diagnostics, disks/META, etcd maintenance
        secret_dirs = (*FilePolicy().secret_dirs, str(self.opts.state_dir))
        out.append(FilesAPI(FilePolicy(secret_dirs=secret_dirs)))
        out.append(DiagnosticsAPI(self.state, lambda: list(self._runtimes)))
        out.append(DisksAPI(self.state))
        out.append(EtcdMaintenanceAPI(self.state, self.supervisor, self._etcd_paths()))
        return out

    def _local_endpoint(self) -> str:
        """This node's API as the node itself reaches it (the bound port, once serving)."""
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


