"""Two nodes: a control plane serving trustd (token + CSR -> certificate from the OS CA) and a
worker without the CA key whose APICertsController retries until the control plane answers;
wrong tokens are PERMISSION_DENIED; the trustd/API TLS certificate is reloaded on rotation."""

from __future__ import annotations

import datetime
import socket
import ssl

import anyio
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from kos.apis.tls import client_context
from kos.controllers.runtime import Runtime
from kos.controllers.runtime.testing import assert_resources
from kos.controllers.secrets.assembly import secrets_controllers
from kos.controllers.secrets.remote import RemoteSignError, TrustdSigner, remote_signer_from_config
from kos.controllers.secrets.trustd import run_trustd
from kos.resources import network as net
from kos.resources import secrets as s
from kos.resources.config import ACTIVE_ID, MachineConfigSpec
from kos.resources.core import InMemoryState, Resource
from kos.resources.pki import (
    certificate_organizations,
    certificate_sans,
    create_csr,
    generate_private_key,
    load_certificate,
    private_key_pem,
    verify_chain,
)

from .fixtures import configs

pytestmark = pytest.mark.anyio


async def _node(config: str, address: str, hostname: str, **kw: object) -> tuple[InMemoryState, Runtime]:
    state = InMemoryState(history_max=4096)
    rt = Runtime(state, backoff_initial=0.01, backoff_max=0.2)
    for c in secrets_controllers(**kw):  # type: ignore[arg-type]
        rt.register(c)
    await state.create(Resource.new(MachineConfigSpec(config=config), ACTIVE_ID))
    await state.create(Resource.new(net.NodeAddressSpec(addresses=[address]), "accumulative"))
    await state.create(Resource.new(net.HostnameStatusSpec(hostname=hostname), "hostname"))
    return state, rt


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _served_cert(port: int, ca: bytes) -> bytes:
    def handshake() -> bytes:
        ctx = client_context(ca, None)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return ssl.DER_cert_to_PEM_cert(der).encode()

    return await anyio.to_thread.run_sync(handshake)


async def test_worker_gets_its_api_certificate_from_the_control_plane() -> None:
    cp, wk = configs()
    cp_text, wk_text = cp.to_yaml(), wk.to_yaml()
    ca_pem = wk.config.machine.ca.to_pair().cert_pem
    port = _free_port()
    # the worker starts first: nobody answers yet, it keeps retrying
    signer = remote_signer_from_config(wk, port=port)
    signer.endpoints = ["127.0.0.1"]  # the generated endpoint's host, on loopback in this test
    wk_state, wk_rt = await _node(wk_text, "10.5.0.3/24", "worker-1", remote=signer, retry_interval=0.2)
    cp_state, cp_rt = await _node(cp_text, "127.0.0.1/8", "cp-1")
    async with anyio.create_task_group() as tg:
        tg.start_soon(wk_rt.run)
        await assert_resources(wk_state, s.CERT_SANS, [s.CERT_SANS_OS_ID])
        await anyio.sleep(0.5)
        assert await wk_state.get_or_none(Resource.new(s.APICertsSpec(), s.API_CERTS_ID).pointer) is None
        tg.start_soon(cp_rt.run)
        await tg.start(run_trustd, cp_state, "127.0.0.1", port)
        got = await assert_resources(wk_state, s.API_CERTS, [s.API_CERTS_ID], timeout=20)
        api: s.APICertsSpec = got[s.API_CERTS_ID].spec
        verify_chain(api.server_cert.encode(), ca_pem)
        sans = certificate_sans(api.server_cert.encode())
        assert "worker-1" in sans and "10.5.0.3" in sans
        assert certificate_organizations(api.server_cert.encode()) == ()  # no roles for nodes
        assert "PRIVATE KEY" in api.server_key and not wk.config.machine.ca.key  # no CA key on the worker

        # wrong token: PERMISSION_DENIED (and the signer reports it)
        csr = create_csr(private_key_pem(generate_private_key()), common_name="intruder", organizations=["os:admin"])
        bad = TrustdSigner(["127.0.0.1"], "wrong.token", ca_pem, port=port)
        with pytest.raises(RemoteSignError, match="PERMISSION_DENIED"):
            await bad(csr)
        try:
            await bad._ask("127.0.0.1", csr)
            raise AssertionError("expected PERMISSION_DENIED")
        except GRPCError as exc:
            assert exc.status == Status.PERMISSION_DENIED
        # the right token, a CSR asking for admin: signed without roles
        good = TrustdSigner(["127.0.0.1"], wk.config.machine.token, ca_pem, port=port)
        _, crt = await good(csr)
        assert certificate_organizations(crt) == ()
        # garbage CSR: INVALID_ARGUMENT
        with pytest.raises(RemoteSignError, match="INVALID_ARGUMENT"):
            await good(b"not a csr")
        tg.cancel_scope.cancel()


async def test_trustd_reloads_its_certificate_on_rotation() -> None:
    cp, _ = configs()
    cp_text = cp.to_yaml()
    ca_pem = cp.config.machine.ca.to_pair().cert_pem
    port = _free_port()
    state, rt = await _node(cp_text, "127.0.0.1/8", "cp-1", ttl=datetime.timedelta(seconds=3))
    async with anyio.create_task_group() as tg:
        tg.start_soon(rt.run)
        await tg.start(run_trustd, state, "127.0.0.1", port)
        first = await _served_cert(port, ca_pem)
        # APICerts renews at half of its 3 s life; the served certificate follows (new handshakes)
        await assert_resources(state, s.API_CERTS, [s.API_CERTS_ID],
                               lambda r: r.spec.server_cert.encode() != first, timeout=20)
        second = first
        for _ in range(100):
            second = await _served_cert(port, ca_pem)
            if second != first:
                break
            await anyio.sleep(0.05)
        verify_chain(second, ca_pem)
        assert load_certificate(second).serial_number != load_certificate(first).serial_number
        tg.cancel_scope.cancel()


async def test_api_server_follows_api_certs_without_restart() -> None:
    from kos.controllers.secrets.trustd import follow_api_certs
    from tests.support.loopback import serve_state

    cp, _ = configs()
    ca_pem = cp.config.machine.ca.to_pair().cert_pem
    state, rt = await _node(cp.to_yaml(), "127.0.0.1/8", "cp-1", ttl=datetime.timedelta(seconds=8))
    async with anyio.create_task_group() as tg, serve_state(state) as api:
        trust = ca_pem + api.pki.ca.cert_pem
        loopback_cert = await _served_cert(api.server.port, trust)
        tg.start_soon(rt.run)
        tg.start_soon(follow_api_certs, state, lambda pair, ca: api.server.reload_identity(pair, ca))

        async def served_becomes(expected: bytes) -> None:
            for _ in range(200):
                if await _served_cert(api.server.port, trust) == expected:
                    return
                await anyio.sleep(0.05)
            raise AssertionError("the API server did not switch to the expected certificate")

        first = (await assert_resources(state, s.API_CERTS, [s.API_CERTS_ID], timeout=20))[s.API_CERTS_ID].spec
        await served_becomes(first.server_cert.encode())  # the same server, now with the node's certificate
        assert first.server_cert.encode() != loopback_cert
        renewed = await assert_resources(state, s.API_CERTS, [s.API_CERTS_ID],
                                         lambda r: r.spec.server_cert != first.server_cert, timeout=20)
        await served_becomes(renewed[s.API_CERTS_ID].spec.server_cert.encode())
        tg.cancel_scope.cancel()
