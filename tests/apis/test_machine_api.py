"""The machine service over mutual TLS with a real service supervisor running a real process:
Version, ApplyConfiguration (modes, dry-run diff), ServiceList/Start/Stop/Restart, Logs (tail,
follow), Events (tail, follow), Dmesg, Memory, Processes, GenerateClientConfiguration, and
UNIMPLEMENTED with a message for subsystems that are not built."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID
from grpclib.const import Status

from kos.apis import auth
from kos.apis.client import APIError, ClientConfig, Connection, Context
from kos.apis.gen.kos import machine as pb
from kos.apis.server.machine import ConfigStore, EventBus, MachineService
from kos.apis.server.nodepki import NodePKI, generate_client_configuration
from kos.machined.services import ProcessRunner, RestartPolicy, ServiceDefinition, ServiceState, Supervisor
from kos.resources.core import InMemoryState
from tests.support.loopback import LoopbackAPI, serve_state

pytestmark = pytest.mark.anyio
M = auth.MACHINE
Mode = pb.ApplyConfigurationRequestMode


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[LoopbackAPI, Supervisor, MachineService]]:
    st = InMemoryState()
    pki = NodePKI.load_or_create(tmp_path / "pki", ["127.0.0.1"])
    async with Supervisor(st) as sup:
        sup.add(ServiceDefinition(
            "greeter",
            ProcessRunner(["sh", "-c", "for i in 1 2 3; do echo line$i; done; exec sleep 600"], cgroup=False,
                          stop_timeout=2),
            restart=RestartPolicy.ONCE,
        ))
        await sup.start("greeter")
        await sup.wait_state("greeter", ServiceState.RUNNING, timeout=20)
        machine = MachineService(
            config=ConfigStore(tmp_path / "config.yaml"), supervisor=sup, events=EventBus(),
            client_config=lambda roles, ttl: generate_client_configuration(pki, "t", ["127.0.0.1:1"], roles, ttl),
        )
        async with serve_state(st, machine=machine) as api:
            yield api, sup, machine
        await sup.stop_all()


async def _collect(conn: Connection, method: str, req: bytes, *, until: bytes | None = None,
                   n: int | None = None, timeout: float = 10) -> list[bytes]:
    out: list[bytes] = []
    with anyio.fail_after(timeout):
        async with conn.stream(method, req) as replies:
            async for m in replies:
                out.append(m)
                if n is not None and len(out) >= n:
                    break
                if until is not None and until in b"".join(pb.Data().parse(x).bytes for x in out):
                    break
    return out


async def test_version_and_unimplemented_subsystems(node: tuple[LoopbackAPI, Supervisor, MachineService]) -> None:
    api, _, _ = node
    async with api.connect() as conn:
        v = pb.VersionResponse().parse(await conn.unary(M + "Version", b""))
        assert v.version.tag and v.version.python_version and not v.maintenance
        for name in ("Reboot", "Upgrade", "Stats"):
            with pytest.raises(APIError) as info:
                await conn.unary(M + name, b"")
            assert info.value.status == Status.UNIMPLEMENTED and "not implemented" in info.value.message


async def test_apply_configuration_modes_and_dry_run(
    node: tuple[LoopbackAPI, Supervisor, MachineService], tmp_path: Path,
) -> None:
    api, _, machine = node
    cfg = tmp_path / "config.yaml"
    async with api.connect() as conn:
        async def apply(data: bytes, mode: Mode = Mode.AUTO, dry: bool = False) -> pb.ApplyConfigurationResponse:
            req = pb.ApplyConfigurationRequest(data=data, mode=mode, dry_run=dry)
            return pb.ApplyConfigurationResponse().parse(await conn.unary(M + "ApplyConfiguration", bytes(req)))

        r = await apply(b"machine:\n  type: worker\n")
        assert r.warnings == ["configuration has no 'version' field"]
        assert cfg.read_bytes() == b"machine:\n  type: worker\n"
        r = await apply(b"version: v1alpha1\nmachine:\n  type: controlplane\n", dry=True)
        assert "-  type: worker" in r.diff and "+  type: controlplane" in r.diff and "Dry run" in r.mode_details
        assert cfg.read_bytes() == b"machine:\n  type: worker\n"  # dry run changed nothing
        r = await apply(b"version: v1alpha1\n", Mode.STAGED)
        assert r.mode == Mode.STAGED and "next reboot" in r.mode_details
        r = await apply(b"version: v1alpha1\n", Mode.NO_REBOOT)
        assert r.mode_details == "Applied configuration without a reboot"
        with pytest.raises(APIError) as info:
            await apply(b"version: v1alpha1\n", Mode.REBOOT)
        assert info.value.status == Status.UNIMPLEMENTED and "sequencer" in info.value.message
    types = [e.type for e in machine.events.history]
    assert types.count("config") == 3


async def test_services_list_actions_and_logs(node: tuple[LoopbackAPI, Supervisor, MachineService]) -> None:
    api, sup, _ = node
    async with api.connect([auth.OPERATOR]) as conn:
        infos = pb.ServiceListResponse().parse(await conn.unary(M + "ServiceList", b"")).services
        assert [(s.id, s.state) for s in infos] == [("greeter", "Running")]
        assert [e.state for e in infos[0].events][-1] == "Running"
        # logs: everything, the tail, and follow until a line shows up
        await _collect(conn, M + "Logs", bytes(pb.LogsRequest(id="greeter", follow=True)), until=b"line3")
        data = b"".join(pb.Data().parse(m).bytes for m in await _collect(
            conn, M + "Logs", bytes(pb.LogsRequest(id="greeter"))))
        assert data.splitlines()[-3:] == [b"line1", b"line2", b"line3"]
        data = b"".join(pb.Data().parse(m).bytes for m in await _collect(
            conn, M + "Logs", bytes(pb.LogsRequest(id="greeter", tail_lines=1))))
        assert data == b"line3\n"
        # restart: the process runs again and logs again; follow sees the new lines
        async with anyio.create_task_group() as tg:
            got: list[bytes] = []

            async def follow() -> None:
                got.extend(await _collect(conn, M + "Logs", bytes(pb.LogsRequest(id="greeter", follow=True)),
                                          until=b"line3\nline1", timeout=20))

            tg.start_soon(follow)
            await anyio.sleep(0.3)
            resp = pb.ServiceActionResponse().parse(
                await conn.unary(M + "ServiceRestart", bytes(pb.ServiceRequest(id="greeter"))))
            assert "restart" in resp.resp
        await sup.wait_state("greeter", ServiceState.RUNNING, timeout=20)
        await conn.unary(M + "ServiceStop", bytes(pb.ServiceRequest(id="greeter")))
        st = await sup.wait_state("greeter", ServiceState.FINISHED, ServiceState.FAILED, timeout=20)
        assert st.state in (ServiceState.FINISHED, ServiceState.FAILED)
        await conn.unary(M + "ServiceStart", bytes(pb.ServiceRequest(id="greeter")))
        await sup.wait_state("greeter", ServiceState.RUNNING, timeout=20)
        for method, req in ((M + "ServiceStart", pb.ServiceRequest(id="nope")),):
            with pytest.raises(APIError) as info:
                await conn.unary(method, bytes(req))
            assert info.value.status == Status.NOT_FOUND and "greeter" in info.value.message
        with pytest.raises(APIError) as info:
            await _collect(conn, M + "Logs", bytes(pb.LogsRequest(id="nope")))
        assert info.value.status == Status.NOT_FOUND


async def test_kosctl_services_and_logs(
    node: tuple[LoopbackAPI, Supervisor, MachineService], tmp_path: Path,
) -> None:
    """kosctl as a subprocess against this node (the server keeps serving on the test's loop)."""
    api, sup, _ = node
    client = api.pki.client((auth.ADMIN,))
    cfg = tmp_path / "kosconfig"
    ClientConfig(context="t", contexts={"t": Context(endpoints=[api.endpoint], ca=api.pki.ca.cert_pem,
                                                     crt=client.cert_pem, key=client.key_pem)}).save(cfg)
    env = dict(os.environ, KOSCONFIG=str(cfg))

    async def kosctl(*args: str) -> tuple[int, str, str]:
        p = await anyio.run_process([sys.executable, "-m", "kos.apis.kosctl.main", *args], env=env, check=False)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    async with api.connect() as conn:
        await _collect(conn, M + "Logs", bytes(pb.LogsRequest(id="greeter", follow=True)), until=b"line3")
    rc, out, err = await kosctl("services")
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][:4] == ["NODE", "SERVICE", "STATE", "HEALTH"]
    assert rows[1][:4] == [api.endpoint, "greeter", "Running", "?"]
    rc, out, _ = await kosctl("logs", "greeter", "--tail", "2")
    assert rc == 0 and out == "line2\nline3\n"
    rc, out, _ = await kosctl("service", "greeter")
    assert rc == 0 and "STATE" in out and "Running" in out and "[Running]: started (pid" in out
    rc, out, err = await kosctl("service", "greeter", "restart")
    assert rc == 0 and out.startswith(f"{api.endpoint}: Service 'greeter' restart requested"), err
    await sup.wait_state("greeter", ServiceState.RUNNING, timeout=20)
    rc, _, err = await kosctl("service", "nope", "stop")
    assert rc == 1 and err.startswith(f"error: {api.endpoint}: NOT_FOUND: service 'nope' not found")


async def test_events_tail_and_follow(node: tuple[LoopbackAPI, Supervisor, MachineService]) -> None:
    api, _, machine = node
    for i in range(3):
        machine.events.publish("test", {"n": i})
    async with api.connect([auth.READER]) as conn:
        msgs = await _collect(conn, M + "Events", bytes(pb.EventsRequest(tail_events=2)), n=2)
        assert [yaml.safe_load(pb.MachineEvent().parse(m).payload) for m in msgs] == [{"n": 1}, {"n": 2}]
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: _later(lambda: machine.events.publish("test", {"n": "new"})))
            msgs = await _collect(conn, M + "Events", bytes(pb.EventsRequest()), n=1)
        ev = pb.MachineEvent().parse(msgs[0])
        assert ev.type == "test" and yaml.safe_load(ev.payload) == {"n": "new"} and ev.ts.year >= 2024
        # resume after an event id; a recent period; an id that left the history
        first = machine.events.history[0].id
        msgs = await _collect(conn, M + "Events", bytes(pb.EventsRequest(tail_id=first)), n=3)
        assert [yaml.safe_load(pb.MachineEvent().parse(m).payload) for m in msgs] == [{"n": 1}, {"n": 2}, {"n": "new"}]
        msgs = await _collect(conn, M + "Events", bytes(pb.EventsRequest(tail_seconds=60)), n=4)
        assert len(msgs) == 4
        with pytest.raises(APIError) as info:
            await _collect(conn, M + "Events", bytes(pb.EventsRequest(tail_id="gone")), n=1)
        assert info.value.status == Status.NOT_FOUND and "tail_id" in info.value.message


async def _later(fn: object) -> None:
    await anyio.sleep(0.3)
    fn()  # type: ignore[operator]


async def test_system_information(node: tuple[LoopbackAPI, Supervisor, MachineService]) -> None:
    api, _, _ = node
    async with api.connect([auth.READER]) as conn:
        mem = pb.MemoryResponse().parse(await conn.unary(M + "Memory", b"")).meminfo
        assert mem.memtotal > mem.memavailable > 0
        procs = pb.ProcessesResponse().parse(await conn.unary(M + "Processes", b"")).processes
        mine = [p for p in procs if p.pid == os.getpid()]
        assert mine and mine[0].resident_memory > 0 and mine[0].threads >= 1
        assert any("sleep 600" in p.args for p in procs)
        if os.access("/dev/kmsg", os.R_OK):
            msgs = await _collect(conn, M + "Dmesg", bytes(pb.DmesgRequest()))
            text = b"".join(pb.Data().parse(m).bytes for m in msgs)
            assert text.startswith(b"[") and b"] " in text.split(b"\n")[0]


async def test_generate_client_configuration(node: tuple[LoopbackAPI, Supervisor, MachineService]) -> None:
    api, _, _ = node
    async with api.connect() as conn:
        req = pb.GenerateClientConfigurationRequest(roles=[auth.READER], crt_ttl=3600)
        resp = pb.GenerateClientConfigurationResponse().parse(
            await conn.unary(M + "GenerateClientConfiguration", bytes(req)))
        crt = x509.load_pem_x509_certificate(resp.crt)
        assert [a.value for a in crt.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [auth.READER]
        life = crt.not_valid_after_utc - crt.not_valid_before_utc
        assert 3600 <= life.total_seconds() <= 3600 + 900  # not-before is backdated for clock skew
        _, ctx = ClientConfig.parse(resp.kosconfig.decode()).current()
        assert ctx.crt == resp.crt and ctx.endpoints == ["127.0.0.1:1"]
        for bad in (pb.GenerateClientConfigurationRequest(roles=["os:root"]),
                    pb.GenerateClientConfigurationRequest(crt_ttl=-5)):
            with pytest.raises(APIError) as info:
                await conn.unary(M + "GenerateClientConfiguration", bytes(bad))
            assert info.value.status == Status.INVALID_ARGUMENT


async def test_machined_own_log_is_served_like_a_service_log(
    node: tuple[LoopbackAPI, Supervisor, MachineService],
) -> None:
    """``kosctl logs machined``: machined's structured log (the lines its console gets, one
    per event with the controller that logged it) through the Logs RPC: all, tail, follow."""
    import structlog

    from kos.machined.main import _configure_logging

    api, _, _ = node
    _configure_logging()
    try:
        log = structlog.get_logger("kos.test").bind(controller="ExampleController")
        log.info("first event", n=1)
        await anyio.to_thread.run_sync(lambda: log.info("from a worker thread"))
        async with api.connect([auth.READER]) as conn:
            data = b"".join(pb.Data().parse(m).bytes for m in await _collect(
                conn, M + "Logs", bytes(pb.LogsRequest(id="machined"))))
            lines = [yaml.safe_load(line) for line in data.splitlines()]
            first = next(ln for ln in lines if ln["event"] == "first event")
            assert first["controller"] == "ExampleController" and first["n"] == 1 and first["level"] == "info"
            assert any(ln["event"] == "from a worker thread" for ln in lines)
            data = b"".join(pb.Data().parse(m).bytes for m in await _collect(
                conn, M + "Logs", bytes(pb.LogsRequest(id="machined", tail_lines=1))))
            assert data.count(b"\n") == 1 and b"from a worker thread" in data
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: _later(lambda: log.warning("while following")))
                got = await _collect(conn, M + "Logs", bytes(pb.LogsRequest(id="machined", follow=True,
                                                                            tail_lines=1)),
                                     until=b"while following")
            assert b"from a worker thread" in got[0]
            with pytest.raises(APIError) as info:
                await _collect(conn, M + "Logs", bytes(pb.LogsRequest(id="nope")))
            assert info.value.status == Status.NOT_FOUND and "greeter, machined" in info.value.message
    finally:
        structlog.reset_defaults()
