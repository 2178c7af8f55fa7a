"""Role enforcement over real mutual TLS: every RPC of the rule table for every client role,
sensitive resources hidden from non-admins, writes only for admins in writable namespaces,
and a node's forwarded roles (os:impersonator + kos-roles)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from grpclib.const import Cardinality, Status

from kos.apis import auth
from kos.apis.client import AccessDeniedError, APIError, Connection, GrpcState
from kos.apis.wire import RawMessage
from kos.resources import secrets
from kos.resources.core import InMemoryState, Kind, NamespaceSpec, Pointer, Resource, publish_meta
from tests.support.loopback import LoopbackAPI, serve_state

pytestmark = pytest.mark.anyio

ROLES = [auth.ADMIN, auth.OPERATOR, auth.READER, auth.ETCD_BACKUP]
STREAMS = {"List", "Watch", "Logs", "Dmesg", "Events", "EtcdSnapshot", "ClusterHealthCheck", "Read", "Copy",
           "DiskUsage"}
SENSITIVE = secrets.OSRootSpec.definition.type
NS_TYPE = "Namespaces.meta.cosi.dev"


@pytest.fixture
async def api() -> AsyncIterator[LoopbackAPI]:
    st = InMemoryState()
    await publish_meta(st)
    await st.create(Resource.new(secrets.OSRootSpec(), "os", namespace=secrets.NAMESPACE))
    async with serve_state(st, writable=["user"]) as a:
        yield a


async def _status(conn: Connection, method: str) -> Status | None:
    """The status of calling ``method`` with an empty request (None: it answered or kept streaming)."""
    name = method.rsplit("/", 1)[1]
    try:
        if name == "EtcdRecover":
            async with conn.channel.request(method, Cardinality.STREAM_UNARY, RawMessage, RawMessage) as s:
                await s.send_message(RawMessage(b""), end=True)
                await s.recv_message()
        elif name in STREAMS:
            with anyio.move_on_after(0.5):
                async with conn.stream(method, b"") as replies:
                    async for _ in replies:
                        pass
        else:
            await conn.unary(method, b"", timeout=10)
    except APIError as exc:
        return exc.status
    except Exception as exc:  # grpclib's own error for the raw client-stream call
        return getattr(exc, "status", Status.UNKNOWN)
    return None


@pytest.mark.parametrize("role", ROLES)
async def test_every_method_allowed_or_denied_per_rule_table(api: LoopbackAPI, role: str) -> None:
    methods = list(auth.METHOD_RULES)
    assert len(methods) >= 31
    async with api.connect([role]) as conn:
        for method in methods:
            status = await _status(conn, method)
            if auth.method_allowed(method, {role}):
                assert status != Status.PERMISSION_DENIED, (method, role)
            else:
                assert status == Status.PERMISSION_DENIED, (method, role, status)


async def test_unknown_role_is_denied_everything(api: LoopbackAPI) -> None:
    async with api.connect(["os:nobody"]) as conn:
        for method in (auth.STATE + "Get", auth.MACHINE + "Version", auth.MACHINE + "ServiceList"):
            assert await _status(conn, method) == Status.PERMISSION_DENIED


@pytest.mark.parametrize("role", [auth.OPERATOR, auth.READER])
async def test_sensitive_types_hidden_from_non_admins(api: LoopbackAPI, role: str) -> None:
    ptr = Pointer(secrets.NAMESPACE, SENSITIVE, "os")
    async with api.connect([role]) as conn:
        st = GrpcState(conn)
        with pytest.raises(AccessDeniedError, match="sensitive"):
            await st.get(ptr)
        with pytest.raises(AccessDeniedError, match="sensitive"):
            await st.list(ptr.kind)
        with pytest.raises(AccessDeniedError, match="sensitive"):
            async with st.watch_kind(ptr.kind, bootstrap_contents=True):
                pass
        # non-sensitive types stay readable
        assert (await st.get(Pointer("meta", NS_TYPE, "meta"))).id == "meta"
    async with api.connect([auth.ADMIN]) as conn:
        assert (await GrpcState(conn).get(ptr)).id == "os"


async def test_writes_need_admin_and_a_writable_namespace(api: LoopbackAPI) -> None:
    for role in (auth.OPERATOR, auth.READER):
        async with api.connect([role]) as conn:
            with pytest.raises(AccessDeniedError, match=r"requires one of \[os:admin\]"):
                await GrpcState(conn).create(Resource.new(NamespaceSpec(), "x", namespace="user"))
    async with api.connect([auth.ADMIN]) as conn:
        st = GrpcState(conn)
        with pytest.raises(AccessDeniedError, match="read-only"):
            await st.create(Resource.new(NamespaceSpec(), "x"))  # meta
        with pytest.raises(AccessDeniedError, match="read-only"):
            await st.destroy(Pointer("meta", NS_TYPE, "meta"))
        r = Resource.new(NamespaceSpec(description="d"), "x", namespace="user")
        await st.create(r)
        await st.destroy(r.pointer)
        assert await st.list(Kind("user", NS_TYPE)) == []


async def test_certificate_signing_keeps_roles_only_for_admins(api: LoopbackAPI) -> None:
    from kos.apis.gen.kos import security as spb
    from kos.resources.pki import certificate_organizations, create_csr, generate_private_key, private_key_pem

    key = private_key_pem(generate_private_key())
    csr = create_csr(key, common_name="n1", organizations=[auth.ADMIN], ip_addresses=["10.5.0.7"])
    method = auth.SECURITY + "Certificate"
    req = bytes(spb.CertificateRequest(csr=csr))
    async with api.connect([auth.ADMIN]) as conn:
        resp = spb.CertificateResponse().parse(await conn.unary(method, req))
        assert resp.ca == api.pki.ca.cert_pem and certificate_organizations(resp.crt) == (auth.ADMIN,)
        with pytest.raises(APIError) as info:
            await conn.unary(method, bytes(spb.CertificateRequest(csr=b"-----BEGIN CERTIFICATE REQUEST-----x")))
        assert info.value.status == Status.INVALID_ARGUMENT and "csr" in info.value.message
    async with api.connect([auth.IMPERSONATOR]) as conn:  # a node: never gets roles
        resp = spb.CertificateResponse().parse(await conn.unary(method, req))
        assert certificate_organizations(resp.crt) == ()


async def test_impersonator_acts_with_forwarded_roles(api: LoopbackAPI) -> None:
    """A node (os:impersonator) forwarding for a reader gets the reader's rights, not more."""
    async with api.connect([auth.IMPERSONATOR]) as conn:
        md = {auth.ROLES_METADATA: auth.READER}
        async with conn.channel.request(auth.MACHINE + "Version", Cardinality.UNARY_UNARY, RawMessage, RawMessage,
                                        metadata=md) as s:
            await s.send_message(RawMessage(b""), end=True)
            assert await s.recv_message() is not None
        with pytest.raises(Exception) as info:
            async with conn.channel.request(auth.MACHINE + "GenerateClientConfiguration", Cardinality.UNARY_UNARY,
                                            RawMessage, RawMessage, metadata=md) as s:
                await s.send_message(RawMessage(b""), end=True)
                await s.recv_message()
        assert getattr(info.value, "status", None) == Status.PERMISSION_DENIED
        # forwarded roles are limited to the known ones: a node cannot claim impersonation twice
        md = {auth.ROLES_METADATA: "os:impersonator,os:bogus"}
        with pytest.raises(Exception) as info:
            async with conn.channel.request(auth.MACHINE + "Version", Cardinality.UNARY_UNARY, RawMessage,
                                            RawMessage, metadata=md) as s:
                await s.send_message(RawMessage(b""), end=True)
                await s.recv_message()
        assert getattr(info.value, "status", None) == Status.PERMISSION_DENIED
