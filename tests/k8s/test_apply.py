"""The manifest applier's wire protocol: server-side apply over mutual TLS.

No kube-apiserver can run here, so the peer is a small HTTPS endpoint written in this test
that demands a client certificate from the Kubernetes CA, serves discovery documents and
records each request. It checks what the client sends (method, path, content type, field
manager, body, identity) and how failures are handled; it says nothing about how a real API
server would treat the objects (their structure is validated with the client models
elsewhere)."""

from __future__ import annotations

import asyncio
import json
import ssl
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from kos.controllers.k8s import manifests as mf
from kos.controllers.k8s.applier import ManifestApplyController
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_resources
from kos.resources import k8s
from kos.resources.core import InMemoryState, Resource
from kos.resources.pki import certificate_common_name, issue_certificate
from kos.resources.secrets import KubernetesCertsSpec
from tests.controllers.runtime.harness import wait_until
from tests.k8s.material import ENDPOINT, TOKEN, material

pytestmark = pytest.mark.anyio

DISCOVERY = {
    "/api/v1": [("Secret", "secrets", True), ("ServiceAccount", "serviceaccounts", True),
                ("ConfigMap", "configmaps", True), ("Service", "services", True), ("Namespace", "namespaces", False)],
    "/apis/rbac.authorization.k8s.io/v1": [("ClusterRole", "clusterroles", False),
                                           ("ClusterRoleBinding", "clusterrolebindings", False)],
    "/apis/apps/v1": [("DaemonSet", "daemonsets", True), ("Deployment", "deployments", True)],
}


@dataclass
class FakeAPI:
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    reject_kind: str = ""
    csrs: list[dict[str, Any]] = field(default_factory=list)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        lines = head.split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        from cryptography import x509

        cn = certificate_common_name(x509.load_der_x509_certificate(cert))
        self.requests.append({"method": method, "target": target, "type": headers.get("content-type"),
                              "body": body.decode(), "cn": cn})
        path = target.split("?")[0]
        status, doc = 200, {}
        if method == "GET" and path == "/version":
            doc = {"major": "1", "minor": "30", "gitVersion": "v1.30.0"}
        elif method == "GET" and path in DISCOVERY:
            doc = {"resources": [{"kind": k, "name": n, "namespaced": ns} for k, n, ns in DISCOVERY[path]]}
        elif method == "GET" and path == "/apis/certificates.k8s.io/v1/certificatesigningrequests":
            doc = {"kind": "CertificateSigningRequestList", "items": self.csrs}
        elif method == "GET" and path.startswith("/api/v1/nodes/"):
            node = self.nodes.get(path.rsplit("/", 1)[1])
            status, doc = (200, node) if node else (404, {"message": "node not found"})
        elif method == "PUT" and path.endswith("/approval"):
            doc = json.loads(body)
            for c in self.csrs:
                if c["metadata"]["name"] == doc["metadata"]["name"]:
                    c["status"] = doc["status"]
        elif method == "PATCH":
            obj = yaml.safe_load(body)
            if obj["kind"] == self.reject_kind:
                status, doc = 422, {"kind": "Status", "message": f"{obj['kind']} is invalid: rejected by test"}
            else:
                doc = obj
        else:
            status, doc = 404, {"message": "not found"}
        payload = json.dumps(doc).encode()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                     "Connection: close\r\n\r\n".encode() + payload)
        await writer.drain()
        writer.close()


def server_context() -> ssl.SSLContext:
    """A server certificate from the Kubernetes CA; clients must present one from it too."""
    m = material()
    server_pair = issue_certificate(m.k8s_ca, common_name="kube-apiserver", server=True, ip_addresses=["127.0.0.1"])
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=m.k8s_ca.cert_pem.decode())
    ctx.verify_mode = ssl.CERT_REQUIRED
    with tempfile.TemporaryDirectory() as d:
        Path(d, "c").write_bytes(server_pair.cert_pem)
        Path(d, "k").write_bytes(server_pair.key_pem)
        ctx.load_cert_chain(Path(d, "c"), Path(d, "k"))
    return ctx


@asynccontextmanager
async def fake_api() -> AsyncIterator[FakeAPI]:
    api = FakeAPI()
    server = await asyncio.start_server(api.handle, "127.0.0.1", 0, ssl=server_context())
    api.port = server.sockets[0].getsockname()[1]
    try:
        yield api
    finally:
        server.close()


def admin_certs() -> KubernetesCertsSpec:
    m = material()
    admin = issue_certificate(m.k8s_ca, common_name="admin", organizations=["system:masters"], client=True)
    return KubernetesCertsSpec(ca_cert=m.k8s_ca.cert_pem.decode(), admin_cert=admin.cert_pem.decode(),
                               admin_key=admin.key_pem.decode())


async def test_server_side_apply_of_every_group_in_order() -> None:
    async with fake_api() as api:
        state = InMemoryState()
        rt = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
        rt.register(ManifestApplyController(api_url=f"https://127.0.0.1:{api.port}", retry_interval=0.2))
        specs = mf.render_manifests(mf.ManifestInputs(bootstrap_token=TOKEN, endpoint=ENDPOINT,
                                                      service_subnets=["10.96.0.0/12"], pod_subnets=["10.244.0.0/16"]))
        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run)
            await state.create(Resource.new(admin_certs(), "k8s-certs"))
            api.reject_kind = "DaemonSet"
            for gid, spec in specs.items():
                await state.create(Resource.new(spec, gid))

            def stuck(r: Resource[Any]) -> bool:
                return r.spec.pending == ["10-kube-proxy", "11-coredns", "12-flannel"] and \
                    "10-kube-proxy: HTTP 422: apply DaemonSet/kube-proxy: DaemonSet is invalid" in r.spec.last_error

            await assert_resources(state, k8s.MANIFEST_STATUSES, ["manifests"], stuck, timeout=10)
            api.reject_kind = ""  # the retry timer applies the rest

            def done(r: Resource[Any]) -> bool:
                return r.spec.applied == sorted(specs) and not r.spec.pending and not r.spec.last_error

            await assert_resources(state, k8s.MANIFEST_STATUSES, ["manifests"], done, timeout=10)
            tg.cancel_scope.cancel()
    patches = [r for r in api.requests if r["method"] == "PATCH"]
    assert {r["cn"] for r in api.requests} == {"admin"}
    assert all(r["type"] == "application/apply-patch+yaml" for r in patches)
    assert patches[0]["target"] == \
        "/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef?fieldManager=kos&force=true"
    assert yaml.safe_load(patches[0]["body"])["stringData"]["token-id"] == "abcdef"
    assert "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/system-bootstrap-node-bootstrapper" \
        "?fieldManager=kos&force=true" in [r["target"] for r in patches]
    applied = [yaml.safe_load(r["body"])["metadata"]["name"] for r in patches]
    # every object of every group, in id order; the rejected DaemonSet's group re-applied whole
    expected = [o["metadata"]["name"] for s in specs.values() for o in yaml.safe_load_all(s.objects)]
    first = sum(len(list(yaml.safe_load_all(specs[g].objects))) for g in ("00-bootstrap-token", "01-csr-rbac"))
    assert applied[-len(expected) + first:] == expected[first:]
    assert len([t for t in (r["target"] for r in api.requests) if t == "/api/v1"]) == 1  # discovery is cached


async def test_client_verifies_the_server_and_presents_its_certificate() -> None:
    from kos.controllers.k8s.apiclient import APIError, KubeClient, tls_context
    from kos.resources.pki import generate_ca

    other = generate_ca("not-kubernetes")
    c = admin_certs()
    async with fake_api() as api:
        url = f"https://127.0.0.1:{api.port}"
        assert (await KubeClient(url, tls_context(c.ca_cert, c.admin_cert, c.admin_key)).get("/version"))["minor"] \
            == "30"
        # a server the client's CA did not sign is refused
        with pytest.raises(ssl.SSLCertVerificationError):
            await KubeClient(url, tls_context(other.cert_pem.decode(), c.admin_cert, c.admin_key)).get("/version")
        # a client certificate from another CA is refused by the server
        stranger = issue_certificate(other, common_name="admin", client=True)
        with pytest.raises(APIError, match="closed the connection without a response"):
            await KubeClient(url, tls_context(c.ca_cert, stranger.cert_pem.decode(),
                                              stranger.key_pem.decode())).get("/version")
        assert len(api.requests) == 1


def node_csr(name: str, node: str, *, ips: list[str], dns: list[str], org: str = "system:nodes",
             usages: tuple[str, ...] = ("digital signature", "server auth")) -> dict[str, Any]:
    import base64

    from kos.resources.pki import create_csr, generate_private_key, private_key_pem

    pem = create_csr(private_key_pem(generate_private_key("ecdsa")), common_name=f"system:node:{node}",
                     organizations=[org], dns_names=dns, ip_addresses=ips)
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"signerName": "kubernetes.io/kubelet-serving", "username": f"system:node:{node}",
                     "groups": ["system:nodes", "system:authenticated"], "usages": list(usages),
                     "request": base64.b64encode(pem).decode()},
            "status": {}}


NODE = {"metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.5.0.2"},
                                 {"type": "Hostname", "address": "node-1"}]}}


def test_review_of_kubelet_serving_csrs() -> None:
    from kos.controllers.k8s.csr import review_csr

    good = node_csr("good", "node-1", ips=["10.5.0.2"], dns=["node-1"])
    assert review_csr(good, NODE) is None
    from kos.controllers.k8s.validate import check_object

    check_object(good)  # what the fake API serves is a well-formed v1 CertificateSigningRequest
    assert "not addresses of node 'node-1'" in str(review_csr(node_csr("x", "node-1", ips=["10.9.9.9"], dns=[]), NODE))
    assert "subject CN" in str(review_csr(node_csr("x", "node-1", ips=["10.5.0.2"], dns=[], org="evil"), NODE))
    assert "not serving usages" in str(review_csr(node_csr("x", "node-1", ips=["10.5.0.2"], dns=[],
                                                           usages=("client auth",)), NODE))
    assert "does not exist" in str(review_csr(good, None))
    impostor = node_csr("x", "node-1", ips=["10.5.0.2"], dns=[])
    impostor["spec"]["username"] = "system:serviceaccount:default:x"
    assert "is not a node" in str(review_csr(impostor, NODE))


async def test_approver_approves_only_matching_csrs_over_mutual_tls() -> None:
    from kos.controllers.k8s.csr import CSRApproverController

    async with fake_api() as api:
        api.nodes["node-1"] = NODE
        api.csrs = [node_csr("csr-good", "node-1", ips=["10.5.0.2"], dns=["node-1"]),
                    node_csr("csr-foreign-ip", "node-1", ips=["10.7.7.7"], dns=[]),
                    node_csr("csr-unknown-node", "node-9", ips=["10.5.0.9"], dns=[])]
        state = InMemoryState()
        rt = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
        rt.register(CSRApproverController(api_url=f"https://127.0.0.1:{api.port}", interval=0.1))
        from kos.resources.k8s import APIServerConfigSpec

        async with anyio.create_task_group() as tg:
            tg.start_soon(rt.run)
            await state.create(Resource.new(admin_certs(), "k8s-certs"))
            await state.create(Resource.new(APIServerConfigSpec(), "kube-apiserver"))
            await wait_until(lambda: any(r["method"] == "PUT" for r in api.requests), timeout=10,
                             what="an approval")
            await anyio.sleep(0.3)  # more rounds: nothing else gets approved
            tg.cancel_scope.cancel()
    puts = [r["target"] for r in api.requests if r["method"] == "PUT"]
    assert puts == ["/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-good/approval"]
    good = api.csrs[0]
    assert good["status"]["conditions"][0]["type"] == "Approved"
    assert all(not c["status"] for c in api.csrs[1:])


async def test_approver_keeps_one_client_while_the_api_server_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Round after round against a peer that is no API server: one TLS context, not one per
    round (building it was most of an idle control plane's cost of the approver)."""
    from kos.controllers.k8s import csr
    from kos.resources.k8s import APIServerConfigSpec

    built: list[str] = []
    real = csr.tls_context
    monkeypatch.setattr(csr, "tls_context", lambda *a: built.append("ctx") or real(*a))
    rounds: list[int] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rounds.append(1)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state = InMemoryState()
    rt = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
    rt.register(csr.CSRApproverController(api_url=f"https://127.0.0.1:{port}", interval=0.05))
    async with anyio.create_task_group() as tg:
        tg.start_soon(rt.run)
        await state.create(Resource.new(admin_certs(), "k8s-certs"))
        await state.create(Resource.new(APIServerConfigSpec(), "kube-apiserver"))
        await wait_until(lambda: len(rounds) >= 4, timeout=10, what="four approval rounds")
        tg.cancel_scope.cancel()
    server.close()
    assert built == ["ctx"]
