"""Maintenance mode against a real ``machined --maintenance`` process: the reduced API over
TLS without a client certificate, exactly one ApplyConfiguration (by ``kosctl apply-config
--insecure``), then mutual TLS only."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import AccessDeniedError, APIError, ClientConfig, Connection, GrpcState
from kos.apis.gen.kos import machine as pb
from kos.resources.core import Pointer

from .nodeproc import kosctl, machined, wait_file

pytestmark = pytest.mark.anyio
NS_TYPE = "Namespaces.meta.cosi.dev"


async def test_maintenance_serves_reduced_api_then_applies_once(tmp_path: Path) -> None:
    sd = tmp_path / "node"
    sd.mkdir()
    gen = kosctl("gen", "config", "demo", "https://127.0.0.1:6443", "-o", str(tmp_path / "gen"))
    assert gen.returncode == 0, gen.stderr
    cfg = tmp_path / "gen" / "controlplane.yaml"
    # no controllers: this test is about the API (the node then serves with the config's OS CA)
    with machined(sd, "--maintenance", "--no-controllers", wait_for="api-endpoint") as endpoint:
        async with Connection(endpoint, insecure=True) as conn:
            v = pb.VersionResponse().parse(await conn.unary(auth.MACHINE + "Version", b""))
            assert v.maintenance and v.platform.mode == "maintenance"
            st = GrpcState(conn)
            assert (await st.get(Pointer("meta", NS_TYPE, "meta"))).id == "meta"
            with pytest.raises(AccessDeniedError, match="maintenance"):
                await st.get(Pointer("secrets", "OSRootSecrets.secrets.kos.dev", "os"))
            for method in ("ServiceList", "Processes", "GenerateClientConfiguration"):
                with pytest.raises(APIError) as info:
                    await conn.unary(auth.MACHINE + method, b"")
                assert info.value.status == Status.PERMISSION_DENIED
            # a dry run does not use up the one apply
            dry = pb.ApplyConfigurationRequest(data=cfg.read_bytes(), dry_run=True)
            r = pb.ApplyConfigurationResponse().parse(await conn.unary(auth.MACHINE + "ApplyConfiguration",
                                                                       bytes(dry)))
            assert "+version: v1alpha1" in r.diff and not (sd / "config.yaml").exists()
        assert not (sd / "kosconfig").exists()
        got = kosctl("get", "rd", "namespaces.meta.cosi.dev", "--insecure", "-e", endpoint, kosconfig=tmp_path / "none")
        assert got.returncode == 0 and "namespaces.meta.cosi.dev" in got.stdout, got.stderr

        out = kosctl("apply-config", "--insecure", "-e", endpoint, "-f", str(cfg), kosconfig=tmp_path / "none")
        assert out.returncode == 0, out.stderr
        assert "Applied configuration" in out.stdout
        assert (sd / "config.yaml").read_bytes() == cfg.read_bytes()

        wait_file(sd / "kosconfig")  # the node switched to mutual TLS
        endpoint = (sd / "api-endpoint").read_text().strip()
        # once configured: no second insecure apply, no insecure access at all
        again = kosctl("apply-config", "--insecure", "-e", endpoint, "-f", str(cfg), kosconfig=tmp_path / "none")
        assert again.returncode != 0
        assert again.stderr.startswith("error: ") and "Traceback" not in again.stderr
        assert "UNAVAILABLE" in again.stderr or "FAILED_PRECONDITION" in again.stderr
        # mutual TLS with the node's kosconfig works
        _, ctx = ClientConfig.load(sd / "kosconfig").current()
        async with Connection.from_context(ctx) as conn:
            v = pb.VersionResponse().parse(await conn.unary(auth.MACHINE + "Version", b""))
            assert not v.maintenance
        ver = kosctl("version", kosconfig=sd / "kosconfig")
        assert ver.returncode == 0 and "Server:" in ver.stdout and "Maintenance" not in ver.stdout
