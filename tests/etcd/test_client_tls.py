"""The etcd client's TLS: the server certificate must come from the CA; with
``check_hostname=False`` (join endpoints, which may be names no member certificate lists) its
names are not checked, by default they are. A grpclib server with no handlers stands in for
etcd: once TLS passes it answers with a gRPC error status (a refused handshake has none)."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpclib.server import Server

from kos.apis.etcd import EtcdClient, EtcdError, TLSFiles
from kos.apis.tls import server_context
from kos.resources.pki import generate_ca, issue_certificate

pytestmark = pytest.mark.anyio


async def test_hostname_check_can_be_relaxed_but_not_the_ca(tmp_path: Path) -> None:
    ca, other_ca = generate_ca("etcd-ca"), generate_ca("someone-else")
    ca.public_only().to_files(tmp_path / "ca.crt")
    issue_certificate(ca, common_name="root", client=True).to_files(tmp_path / "c.crt", tmp_path / "c.key")
    tls = TLSFiles(str(tmp_path / "ca.crt"), str(tmp_path / "c.crt"), str(tmp_path / "c.key"))
    for signer, expect_ok in ((ca, True), (other_ca, False)):
        member = issue_certificate(signer, common_name="m", dns_names=["member-x"], server=True)  # no IP SAN
        ctx = server_context(member, ca.cert_pem)
        ctx.set_alpn_protocols(["h2"])
        server = Server([])
        await server.start("127.0.0.1", 0, ssl=ctx)
        port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            url = f"https://127.0.0.1:{port}"
            async with EtcdClient([url], tls, timeout=3) as c:
                with pytest.raises(EtcdError, match="unreachable") as info:
                    await c.member_list()
            assert info.value.status is None  # the name 127.0.0.1 is not in the certificate
            async with EtcdClient([url], tls, timeout=3, check_hostname=False) as c:
                with pytest.raises(EtcdError) as info:
                    await c.member_list()
            if expect_ok:
                assert info.value.status is not None, info.value  # TLS passed: the server answered
            else:
                assert info.value.status is None and "unreachable" in str(info.value)  # wrong CA: refused
        finally:
            server.close()
            await server.wait_closed()
