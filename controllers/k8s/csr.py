"""Approval of kubelet serving certificates (``serverTLSBootstrap: true``).

kube-controller-manager approves node *client* CSRs (RBAC in ``01-csr-rbac``) but, by design,
never ``kubernetes.io/kubelet-serving`` ones: something must check that the names a kubelet
asks for are its own. ``review_csr(csr, node)`` is that check (pure): the requester is
``system:node:<name>`` in ``system:nodes``, the CSR's subject is exactly
``CN=system:node:<name>, O=system:nodes``, usages are the serving ones, and every DNS/IP SAN
is one of the Node object's ``status.addresses``. ``CSRApproverController`` runs it every
``interval`` seconds against the local API server (admin client certificate, one client kept
while the certificates stay the same) and approves what passes (``PUT
.../certificatesigningrequests/<name>/approval``); denials are logged, an unreachable API
server once per distinct reason.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from typing import Any

import anyio
from cryptography import x509
from cryptography.x509.oid import NameOID

from kos.controllers.k8s.apiclient import APIError, KubeClient, tls_context
from kos.controllers.k8s.base import running_spec
from kos.controllers.runtime import Controller, ControllerRuntime, Input, Output
from kos.resources.k8s import APISERVER_CONFIGS, APISERVER_ID
from kos.resources.secrets import K8S_CERTS, K8S_CERTS_ID

SIGNER = "kubernetes.io/kubelet-serving"
ALLOWED_USAGES = {"digital signature", "key encipherment", "server auth"}
CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


def _pending(csr: dict[str, Any]) -> bool:
    conds = (csr.get("status") or {}).get("conditions") or []
    return not any(c.get("type") in ("Approved", "Denied", "Failed") for c in conds)


def review_csr(csr: dict[str, Any], node: dict[str, Any] | None) -> str | None:
    """None if ``csr`` may be approved, else why not."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != SIGNER:
        return f"signer {spec.get('signerName')!r} is not {SIGNER}"
    user = str(spec.get("username", ""))
    if not user.startswith("system:node:") or "system:nodes" not in (spec.get("groups") or []):
        return f"requester {user!r} is not a node (system:node:<name> in system:nodes)"
    name = user.removeprefix("system:node:")
    extra = set(spec.get("usages") or []) - ALLOWED_USAGES
    if extra or "server auth" not in (spec.get("usages") or []):
        return f"usages {sorted(spec.get('usages') or [])} are not serving usages"
    try:
        req = x509.load_pem_x509_csr(base64.b64decode(spec.get("request", "")))
    except ValueError as exc:
        return f"request does not parse: {exc}"
    cns = [a.value for a in req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if cns != [user] or orgs != ["system:nodes"]:
        return f"subject CN={cns} O={orgs}, expected CN={user} O=system:nodes"
    try:
        san = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "no subject alternative names"
    if node is None:
        return f"node {name!r} does not exist"
    known = {str(a.get("address", "")).lower() for a in (node.get("status") or {}).get("addresses") or []}
    names = [d.lower() for d in san.get_values_for_type(x509.DNSName)]
    ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
    unknown = [n for n in names + ips if n not in known]
    if unknown:
        return f"names {unknown} are not addresses of node {name!r}"
    return None


def approval(csr: dict[str, Any]) -> dict[str, Any]:
    out = dict(csr)
    status = dict(out.get("status") or {})
    status["conditions"] = [*(status.get("conditions") or []), {
        "type": "Approved", "status": "True", "reason": "KosKubeletServingApprover",
        "message": "kubelet serving certificate for the node's own addresses (approved by kos)"}]
    out["status"] = status
    return out


async def approve_pending(client: KubeClient) -> tuple[list[str], dict[str, str]]:
    """Approve every pending kubelet serving CSR that passes; returns (approved, denied reasons)."""
    approved: list[str] = []
    denied: dict[str, str] = {}
    for csr in (await client.get(CSR_PATH)).get("items", []):
        if not _pending(csr) or (csr.get("spec") or {}).get("signerName") != SIGNER:
            continue
        name = csr["metadata"]["name"]
        node_name = str(csr["spec"].get("username", "")).removeprefix("system:node:")
        try:
            node = await client.get(f"/api/v1/nodes/{node_name}")
        except APIError as exc:
            if exc.status != 404:
                raise
            node = None
        why = review_csr(csr, node)
        if why is not None:
            denied[name] = why
            continue
        status, payload = await client.request("PUT", f"{CSR_PATH}/{name}/approval",
                                               body=json.dumps(approval(csr)).encode())
        if status >= 300:
            raise APIError(status, f"approve {name}: {payload[:200].decode(errors='replace')}")
        approved.append(name)
    return approved, denied


class CSRApproverController(Controller):
    name = "k8s.CSRApproverController"

    def __init__(self, *, api_url: str | None = None, interval: float = 10.0) -> None:
        self.api_url = api_url
        self.interval = interval
        self.reported: set[str] = set()
        # kept between rounds: a TLS context per round (PEM files written and parsed) was most
        # of an idle control plane's cost of this controller
        self._client: tuple[tuple[str, str, str, str], KubeClient] | None = None
        self._skipped = ""  # the last "not reachable" reason logged (logged again when it changes)

    def inputs(self) -> Sequence[Input]:
        return [Input(K8S_CERTS.namespace, K8S_CERTS.type, K8S_CERTS_ID),
                Input(APISERVER_CONFIGS.namespace, APISERVER_CONFIGS.type, APISERVER_ID)]

    def outputs(self) -> Sequence[Output]:
        return []

    async def run(self, rt: ControllerRuntime) -> None:
        active = False
        while True:
            with anyio.move_on_after(self.interval if active else math.inf):
                await rt.wait()
            active = await self.reconcile(rt)
            rt.reset_restart_backoff()

    async def reconcile(self, rt: ControllerRuntime) -> bool:
        """Returns whether this node should keep polling (a control plane with an admin cert)."""
        certs = await running_spec(rt, K8S_CERTS, K8S_CERTS_ID)
        api = await running_spec(rt, APISERVER_CONFIGS, APISERVER_ID)
        if certs is None or api is None or not certs.admin_cert:
            return False
        server = self.api_url or f"https://localhost:{api.port}"
        key = (server, certs.ca_cert, certs.admin_cert, certs.admin_key)
        if self._client is None or self._client[0] != key:
            self._client = (key, KubeClient(server, tls_context(certs.ca_cert, certs.admin_cert, certs.admin_key)))
        client = self._client[1]
        try:
            approved, denied = await approve_pending(client)
        except Exception as exc:  # API server not up yet: try again next round
            if str(exc) != self._skipped:
                rt.logger.debug("CSR approval skipped", server=server, error=str(exc))
                self._skipped = str(exc)
            return True
        self._skipped = ""
        for name in approved:
            rt.logger.info("kubelet serving CSR approved", csr=name)
        for name, why in denied.items():
            if name not in self.reported:
                rt.logger.warning("kubelet serving CSR not approved", csr=name, reason=why)
                self.reported.add(name)
        return True
