"""Transport security and bad input against a real mTLS server on loopback: expired, missing
and foreign client certificates are rejected; malformed, truncated and oversize requests,
unknown types, bad label queries and regexps get the right status code, and the server keeps
serving afterwards."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError, Connection, GrpcState
from kos.apis.gen.cosi import resource as rpb
from kos.apis.gen.kos import machine as mpb
from kos.apis.server.dispatch import MAX_REQUEST_BYTES
from kos.apis.server.machine import ConfigStore, MachineService
from kos.resources.core import IDQuery, InMemoryState, Kind, NotFoundError, Pointer, publish_meta
from kos.resources.pki import CertificateAndKey, generate_ca, issue_certificate
from tests.support.loopback import LoopbackAPI, serve_state

pytestmark = pytest.mark.anyio
NS_TYPE = "Namespaces.meta.cosi.dev"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[LoopbackAPI]:
    st = InMemoryState()
    await publish_meta(st)
    machine = MachineService(config=ConfigStore(tmp_path / "config.yaml"))
    async with serve_state(st, writable=["user"], machine=machine) as a:
        yield a


async def _alive(api: LoopbackAPI) -> None:
    async with api.connect() as conn:
        resp = mpb.VersionResponse().parse(await conn.unary(auth.MACHINE + "Version", b""))
        assert resp.version.tag


def _expired_client(ca: CertificateAndKey) -> CertificateAndKey:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = serialization.load_pem_private_key(ca.key_pem, None)
    now = datetime.datetime.now(datetime.UTC)
    crt = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, auth.ADMIN),
                                 x509.NameAttribute(NameOID.COMMON_NAME, "expired")]))
        .issuer_name(ca.certificate().subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return CertificateAndKey(
        crt.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
    )


async def _rejected(conn: Connection) -> APIError:
    with pytest.raises(APIError) as info:
        await conn.unary(auth.MACHINE + "Version", b"", timeout=10)
    return info.value


async def test_expired_missing_and_foreign_client_certificates_are_rejected(api: LoopbackAPI) -> None:
    ca = api.pki.ca
    async with Connection(api.endpoint, ca=ca.cert_pem, identity=_expired_client(ca)) as conn:
        err = await _rejected(conn)
        assert err.status == Status.UNAVAILABLE and "client certificate" in err.message
    async with Connection(api.endpoint, ca=ca.cert_pem, identity=None) as conn:
        err = await _rejected(conn)
        assert err.status == Status.UNAVAILABLE and "requires a client certificate" in err.message
    stranger_ca = generate_ca("stranger")
    stranger = issue_certificate(stranger_ca, common_name="x", organizations=[auth.ADMIN], client=True)
    async with Connection(api.endpoint, ca=ca.cert_pem, identity=stranger) as conn:
        assert (await _rejected(conn)).status == Status.UNAVAILABLE
    # the client checks the server too: a server outside the client's CA is refused
    async with Connection(api.endpoint, ca=stranger_ca.cert_pem, identity=api.pki.client((auth.ADMIN,))) as conn:
        err = await _rejected(conn)
        assert err.status == Status.UNAVAILABLE and "TLS" in err.message
    await _alive(api)


async def test_malformed_and_truncated_requests_are_invalid_argument(api: LoopbackAPI) -> None:
    async with api.connect() as conn:
        for method, body in (
            (auth.STATE + "Get", b"\xff\xff\xff"),
            (auth.STATE + "Get", b"\x0a\x10meta"),  # length runs past the end
            (auth.STATE + "Create", b"\x0a\x03\x0a\x01\x00"),  # resource without metadata fields
            (auth.MACHINE + "ApplyConfiguration", b"\x08"),  # varint tag without value
        ):
            with pytest.raises(APIError) as info:
                await conn.unary(method, body)
            assert info.value.status == Status.INVALID_ARGUMENT, (method, body, info.value)
    await _alive(api)


async def test_oversize_request_is_resource_exhausted(api: LoopbackAPI) -> None:
    req = mpb.ApplyConfigurationRequest(data=b"x" * (MAX_REQUEST_BYTES + 1), dry_run=True)
    async with api.connect() as conn:
        with pytest.raises(APIError) as info:
            await conn.unary(auth.MACHINE + "ApplyConfiguration", bytes(req))
        assert info.value.status == Status.RESOURCE_EXHAUSTED
        assert str(MAX_REQUEST_BYTES) in info.value.message
    await _alive(api)


async def test_unknown_types_and_empty_kinds(api: LoopbackAPI) -> None:
    async with api.connect() as conn:
        st = GrpcState(conn)
        with pytest.raises(NotFoundError, match="not registered"):
            await st.get(Pointer("meta", "Nothings.nowhere.kos.dev", "x"))
        with pytest.raises(NotFoundError, match="not registered"):
            await st.list(Kind("meta", "Nothings.nowhere.kos.dev"))
        with pytest.raises(APIError) as info:
            await conn.unary(auth.STATE + "Get", bytes(rpb.GetRequest(namespace="meta", type="")))
        assert info.value.status == Status.INVALID_ARGUMENT and "type" in info.value.message


async def test_bad_label_queries_and_regexps_are_invalid_argument(api: LoopbackAPI) -> None:
    bad_terms = [
        rpb.LabelTerm(key="", op=rpb.LabelTermOperation.EXISTS),
        rpb.LabelTerm(key="a", op=rpb.LabelTermOperation.EQUAL),  # no value
        rpb.LabelTerm(key="a", op=rpb.LabelTermOperation.LT_NUMERIC, value=["ten"]),
    ]
    async with api.connect() as conn:
        for term in bad_terms:
            req = rpb.ListRequest(namespace="meta", type=NS_TYPE,
                                  options=rpb.ListOptions(label_query=[rpb.LabelQuery(terms=[term])]))
            with pytest.raises(APIError) as info:
                async with conn.stream(auth.STATE + "List", bytes(req)) as replies:
                    async for _ in replies:
                        pass
            assert info.value.status == Status.INVALID_ARGUMENT, term
            assert "label_query[0].terms[0]" in info.value.message
        req = rpb.ListRequest(namespace="meta", type=NS_TYPE, options=rpb.ListOptions(id_query=rpb.IdQuery("(")))
        with pytest.raises(APIError) as info:
            async with conn.stream(auth.STATE + "List", bytes(req)) as replies:
                async for _ in replies:
                    pass
        assert info.value.status == Status.INVALID_ARGUMENT and "id_query" in info.value.message
        # a good regexp still works on the same connection
        got = await GrpcState(conn).list(Kind("meta", NS_TYPE), id_query=IDQuery("^me"))
        assert [r.id for r in got] == ["meta"]


async def test_bad_apply_configuration_leaves_the_config_alone(api: LoopbackAPI, tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    async with api.connect() as conn:
        ok = mpb.ApplyConfigurationRequest(data=b"version: v1alpha1\nmachine: {}\n")
        await conn.unary(auth.MACHINE + "ApplyConfiguration", bytes(ok))
        before = cfg.read_bytes()
        for req, code in (
            (mpb.ApplyConfigurationRequest(data=b"version: [unclosed"), Status.INVALID_ARGUMENT),
            (mpb.ApplyConfigurationRequest(data=b"- a list\n"), Status.INVALID_ARGUMENT),
            (mpb.ApplyConfigurationRequest(data=b"   "), Status.INVALID_ARGUMENT),
            (mpb.ApplyConfigurationRequest(data=b"version: v1alpha1\n", mode=mpb.ApplyConfigurationRequestMode.TRY),
             Status.INVALID_ARGUMENT),
        ):
            with pytest.raises(APIError) as info:
                await conn.unary(auth.MACHINE + "ApplyConfiguration", bytes(req))
            assert info.value.status == code, (req, info.value)
        assert cfg.read_bytes() == before
        with pytest.raises(APIError) as info:
            await conn.unary(auth.MACHINE + "ApplyConfiguration", b"\x10\x09\x0a\x01x")  # mode 9
        assert info.value.status == Status.INVALID_ARGUMENT and "mode" in info.value.message
