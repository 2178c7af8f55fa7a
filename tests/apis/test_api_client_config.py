"""GenerateClientConfiguration's checks in the machine service (the e2e test
tests/e2e/test_client_config.py runs it on a cluster's control plane): roles, the lifetime
(0 = one year, at most ten years; an absurd one is INVALID_ARGUMENT, never UNKNOWN), and an
issuer that reads the CA per call and may refuse (a worker: FAILED_PRECONDITION)."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from kos.apis import auth
from kos.apis.client.connection import APIError
from kos.apis.gen.kos import machine as pb
from kos.apis.server.machine import MAX_CLIENT_CRT_TTL, ConfigStore, MachineService
from kos.apis.server.nodepki import issue_client_configuration
from kos.resources.core.inmem import InMemoryState
from kos.resources.pki import CertificateAndKey, generate_ca
from tests.support.loopback import serve_state

pytestmark = pytest.mark.anyio
M = auth.MACHINE + "GenerateClientConfiguration"


async def test_limits_and_a_refusing_issuer(tmp_path: Path) -> None:
    ca: list[CertificateAndKey] = []  # empty: a worker (no CA key), as the node reads it per call
    issued: list[tuple[list[str], int]] = []

    async def issuer(roles: list[str], ttl: int) -> pb.GenerateClientConfigurationResponse:
        if not ca:
            raise GRPCError(Status.FAILED_PRECONDITION, "this node holds no OS CA key: ask a control plane")
        issued.append((roles, ttl))
        return issue_client_configuration(ca[0], "t", ["127.0.0.1:1"], roles, ttl)

    machine = MachineService(config=ConfigStore(tmp_path / "c.yaml"), client_config=issuer)
    async with serve_state(InMemoryState(), machine=machine) as api, api.connect([auth.ADMIN]) as conn:
        with pytest.raises(APIError) as info:
            await conn.unary(M, bytes(pb.GenerateClientConfigurationRequest(roles=[auth.READER])))
        assert info.value.status == Status.FAILED_PRECONDITION and "control plane" in info.value.message

        ca.append(generate_ca("t"))  # the CA appears (a config with the key was applied)
        for ttl, code in [(-1, Status.INVALID_ARGUMENT), (MAX_CLIENT_CRT_TTL + 1, Status.INVALID_ARGUMENT),
                          (2**62, Status.INVALID_ARGUMENT)]:
            with pytest.raises(APIError) as info:
                await conn.unary(M, bytes(pb.GenerateClientConfigurationRequest(crt_ttl=ttl)))
            assert info.value.status == code and "crt_ttl" in info.value.message
        with pytest.raises(APIError) as info:
            await conn.unary(M, bytes(pb.GenerateClientConfigurationRequest(roles=["os:impersonator" * 50])))
        assert info.value.status == Status.INVALID_ARGUMENT and len(info.value.message) < 400

        resp = pb.GenerateClientConfigurationResponse().parse(
            await conn.unary(M, bytes(pb.GenerateClientConfigurationRequest(roles=[auth.READER, auth.READER]))))
        assert b"contexts:" in resp.kosconfig and resp.crt
        await conn.unary(M, bytes(pb.GenerateClientConfigurationRequest(crt_ttl=MAX_CLIENT_CRT_TTL)))
    assert issued == [([auth.READER], 365 * 86400), ([auth.ADMIN], MAX_CLIENT_CRT_TTL)]
