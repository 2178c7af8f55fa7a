"""The supervisor with real processes: restarts with backoff, dependencies, stop/start/restart,
bounded logs under a flood, SIGTERM then SIGKILL, health probes, cgroups, Service resources."""

from __future__ import annotations

import itertools
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from kos.machined.services import (
    BackoffPolicy,
    HealthCheck,
    LogRing,
    PredicateCondition,
    ProcessRunner,
    ResourceCondition,
    RestartPolicy,
    ServiceDefinition,
    ServiceState,
    Supervisor,
    TaskRunner,
    http_probe,
    service_healthy,
    tcp_probe,
)
from kos.machined.services.cgroups import _candidate_dirs
from kos.resources.core import InMemoryState, Resource
from kos.resources.runtime import SERVICES, ServiceSpec

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sup() -> AsyncIterator[Supervisor]:
    async with Supervisor(InMemoryState()) as s:
        yield s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def forever(log: LogRing) -> None:
    await anyio.sleep_forever()


def read(path: str) -> str:
    return Path(path).read_text()


def exists(path: Path) -> bool:
    return path.exists()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def service_resource(sup: Supervisor, id: str, timeout: float = 5.0) -> ServiceSpec:
    """The published resource once it matches the supervisor's own view."""
    assert sup.state is not None
    with anyio.fail_after(timeout):
        while True:
            r = await sup.state.get_or_none(SERVICES.pointer(id))
            if r is not None and r.spec == sup.status(id).spec():
                spec: ServiceSpec = r.spec
                return spec
            await anyio.sleep(0.02)


async def test_crash_restarts_with_growing_backoff(sup: Supervisor) -> None:
    sup.add(
        ServiceDefinition(
            "crasher",
            ProcessRunner(["sh", "-c", "echo crashing; exit 3"]),
            backoff=BackoffPolicy(initial=0.05, multiplier=2.0, maximum=1.0),
        )
    )
    await sup.start("crasher")
    st = await sup.wait_for("crasher", lambda s: s.restarts >= 4, timeout=10)
    assert st.restart_delays[:4] == pytest.approx([0.05, 0.1, 0.2, 0.4])
    starts = [e.timestamp for e in st.events if e.state == ServiceState.RUNNING]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) >= 3 and gaps[2] > gaps[0]  # the waits really grew
    failed = [e.message for e in st.events if e.state == ServiceState.FAILED]
    assert failed and all(m == "exited with code 3" for m in failed)
    assert sup.log("crasher").tail(2) == [b"crashing", b"crashing"]
    await sup.stop("crasher")
    spec = await service_resource(sup, "crasher")
    assert spec.state == "Finished" and spec.restarts >= 4 and not spec.running


async def test_dependency_not_ready_waits_with_reason(sup: Supervisor) -> None:
    assert sup.state is not None
    dep = Resource.new(ServiceSpec(state="Running", running=True), "network")
    cond = ResourceCondition(
        sup.state, dep.pointer, lambda r: bool(r.spec.running), description="network service running"
    )
    sup.add(ServiceDefinition("dependent", ProcessRunner(["sleep", "1000"], stop_timeout=2), depends_on=[cond]))
    await sup.start("dependent")
    st = await sup.wait_for("dependent", lambda s: s.message == "waiting for network service running", timeout=5)
    assert st.state == ServiceState.WAITING and not st.running
    spec = await service_resource(sup, "dependent")
    assert spec.state == "Waiting" and spec.message == "waiting for network service running"
    await sup.state.create(dep)
    st = await sup.wait_state("dependent", ServiceState.RUNNING, timeout=5)
    assert st.pid > 0 and pid_alive(st.pid)


async def test_predicate_dependency_and_skip(sup: Supervisor) -> None:
    ready = anyio.Event()

    async def is_ready() -> bool:
        return ready.is_set()

    async def skip() -> str | None:
        return "not a control-plane node"

    sup.add(ServiceDefinition("skipped", TaskRunner(forever), skip=skip))
    sup.add(
        ServiceDefinition(
            "task",
            TaskRunner(forever),
            depends_on=[PredicateCondition("flag set", is_ready, interval=0.02)],
        )
    )
    await sup.start("skipped")
    await sup.start("task")
    st = await sup.wait_state("skipped", ServiceState.SKIPPED, timeout=5)
    assert st.message == "not a control-plane node"
    await sup.wait_for("task", lambda s: s.message == "waiting for flag set", timeout=5)
    ready.set()
    st = await sup.wait_state("task", ServiceState.RUNNING, timeout=5)
    assert st.message == "started (in-process)"


async def test_stop_start_restart(sup: Supervisor) -> None:
    sup.add(ServiceDefinition("sleeper", ProcessRunner(["sleep", "1000"], stop_timeout=2)))
    await sup.start("sleeper")
    pid1 = (await sup.wait_state("sleeper", ServiceState.RUNNING, timeout=5)).pid
    assert pid_alive(pid1)
    await sup.stop("sleeper")
    st = sup.status("sleeper")
    assert st.state == ServiceState.FINISHED and st.message == "service stopped" and not st.running
    assert not pid_alive(pid1)
    states = [e.state for e in st.events]
    assert states[-2:] == [ServiceState.STOPPING, ServiceState.FINISHED]
    await sup.start("sleeper")
    pid2 = (await sup.wait_state("sleeper", ServiceState.RUNNING, timeout=5)).pid
    await sup.restart("sleeper")
    pid3 = (await sup.wait_state("sleeper", ServiceState.RUNNING, timeout=5)).pid
    assert len({pid1, pid2, pid3}) == 3 and pid_alive(pid3) and not pid_alive(pid2)
    spec = await service_resource(sup, "sleeper")
    assert spec.state == "Running" and spec.running and spec.pid == pid3
    with pytest.raises(KeyError, match="service 'nope' is not registered"):
        await sup.start("nope")


async def test_log_ring_bounded_under_100_mb_flood(sup: Supervisor) -> None:
    total = 100_000_000
    cmd = f"yes 'the quick brown fox jumps over the lazy dog' | head -c {total}"
    sup.add(ServiceDefinition("flood", ProcessRunner(["sh", "-c", cmd]), restart=RestartPolicy.ONCE))
    ring = sup.log("flood")
    assert ring.capacity == 1 << 20
    t0 = time.monotonic()
    await sup.start("flood")
    st = await sup.wait_state("flood", ServiceState.FINISHED, timeout=60)
    elapsed = time.monotonic() - t0
    assert st.message == "exited successfully"
    assert ring.written == total
    assert len(ring) == ring.capacity and len(ring._buf) == 1 << 20
    line = b"the quick brown fox jumps over the lazy dog"
    last = ring.tail(3)
    assert last[:2] == [line, line] and line.startswith(last[2])  # head -c cut the final line
    print(f"100 MB through the log ring in {elapsed:.2f}s")


async def test_sigterm_then_sigkill_after_timeout(sup: Supervisor) -> None:
    stubborn = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); " \
        "time.sleep(1000)"
    sup.add(ServiceDefinition("stubborn", ProcessRunner([sys.executable, "-c", stubborn], stop_timeout=0.5)))
    sup.add(ServiceDefinition("polite", ProcessRunner(["sleep", "1000"], stop_timeout=5)))
    await sup.start("stubborn")
    await sup.start("polite")
    with anyio.fail_after(10):
        async for chunk in sup.log("stubborn").follow():
            if b"ready" in chunk:
                break
    pid = sup.status("stubborn").pid
    t0 = time.monotonic()
    await sup.stop("stubborn")
    took = time.monotonic() - t0
    assert 0.5 <= took < 3 and not pid_alive(pid)
    msgs = [e.message for e in sup.status("stubborn").events if e.state == ServiceState.STOPPING]
    assert msgs == [f"sending signal SIGTERM to pid {pid}", f"pid {pid} did not stop within 0.5s: sending SIGKILL"]
    await sup.wait_state("polite", ServiceState.RUNNING, timeout=5)
    t0 = time.monotonic()
    await sup.stop("polite")
    assert time.monotonic() - t0 < 2
    msgs = [e.message for e in sup.status("polite").events if e.state == ServiceState.STOPPING]
    assert len(msgs) == 1 and "SIGTERM" in msgs[0]


async def test_health_probes(sup: Supervisor) -> None:
    port = free_port()
    sup.add(
        ServiceDefinition(
            "web",
            ProcessRunner([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], stop_timeout=2),
            health=HealthCheck(http_probe("127.0.0.1", port, "/"), interval=0.1, timeout=1),
        )
    )
    sup.add(
        ServiceDefinition(
            "web404",
            TaskRunner(forever),
            health=HealthCheck(http_probe("127.0.0.1", port, "/no-such-file"), interval=0.1, timeout=1),
        )
    )
    await sup.start("web")
    st = await sup.wait_healthy("web", timeout=10)
    assert st.message == "health check successful"
    spec = await service_resource(sup, "web")
    assert spec.healthy and not spec.unknown and spec.running
    await sup.start("web404")
    st = await sup.wait_for("web404", lambda s: not s.health_unknown, timeout=10)
    assert not st.healthy and st.message == "health check failed: GET /no-such-file: status 404, expected 200"
    # a TCP probe against a closed port fails, then the port opens and it turns healthy
    port2 = free_port()
    sup.add(
        ServiceDefinition(
            "late",
            ProcessRunner(
                [sys.executable, "-c", f"import time,socket; time.sleep(0.5); s=socket.create_server(('127.0.0.1',"
                 f"{port2})); time.sleep(1000)"],
                stop_timeout=2,
            ),
            health=HealthCheck(tcp_probe("127.0.0.1", port2), interval=0.1, timeout=1),
        )
    )
    await sup.start("late")
    await sup.wait_for("late", lambda s: not s.health_unknown and not s.healthy, timeout=10)
    await sup.wait_healthy("late", timeout=10)
    messages = [e.message for e in sup.status("late").events]
    assert messages.index("health check successful") > next(
        i for i, m in enumerate(messages) if m.startswith("health check failed")
    )


async def test_until_success_task(sup: Supervisor) -> None:
    attempts = []

    async def flaky(log: LogRing) -> None:
        attempts.append(1)
        log.write(f"attempt {len(attempts)}\n".encode())
        if len(attempts) < 3:
            raise RuntimeError("not yet")

    sup.add(
        ServiceDefinition(
            "flaky", TaskRunner(flaky), restart=RestartPolicy.UNTIL_SUCCESS, backoff=BackoffPolicy(initial=0.01)
        )
    )
    await sup.start("flaky")
    st = await sup.wait_state("flaky", ServiceState.FINISHED, timeout=5)
    await sup.wait_for("flaky", lambda s: not sup._services["flaky"].active, timeout=5)
    assert len(attempts) == 3 and st.restarts == 2
    assert sup.log("flaky").tail(10) == [b"attempt 1", b"task failed: RuntimeError('not yet')", b"attempt 2",
                                         b"task failed: RuntimeError('not yet')", b"attempt 3"]


async def test_prepare_failure_is_reported(sup: Supervisor) -> None:
    async def bad_prepare() -> None:
        raise FileNotFoundError("/var/lib/etcd: no such directory")

    sup.add(
        ServiceDefinition(
            "unprepared",
            ProcessRunner(["true"], prepare_fn=bad_prepare),
            restart=RestartPolicy.ONCE,
        )
    )
    await sup.start("unprepared")
    st = await sup.wait_state("unprepared", ServiceState.FAILED, timeout=5)
    assert st.message == "pre-start tasks failed: /var/lib/etcd: no such directory"
    sup.add(ServiceDefinition("nobinary", ProcessRunner(["/nonexistent/bin"]), restart=RestartPolicy.ONCE))
    await sup.start("nobinary")
    st = await sup.wait_state("nobinary", ServiceState.FAILED, timeout=5)
    assert st.message.startswith("failed to run: ") and "/nonexistent/bin" in st.message


def test_bad_definitions() -> None:
    with pytest.raises(ValueError, match="expected a non-empty command line"):
        ProcessRunner([])
    with pytest.raises(ValueError, match="unknown \\['time'\\]"):
        ProcessRunner(["true"], namespaces=["time"])
    with pytest.raises(ValueError, match="service id 'a/b'"):
        ServiceDefinition("a/b", ProcessRunner(["true"]))
    with pytest.raises(ValueError, match="interval must be positive"):
        HealthCheck(tcp_probe("127.0.0.1", 1), interval=0)


@pytest.mark.root
async def test_process_gets_its_own_cgroup_and_namespaces(sup: Supervisor) -> None:
    sup.add(ServiceDefinition("boxed", ProcessRunner(["sleep", "1000"], stop_timeout=2, namespaces=["uts", "ipc"])))
    await sup.start("boxed")
    pid = (await sup.wait_state("boxed", ServiceState.RUNNING, timeout=5)).pid
    cgroups = read(f"/proc/{pid}/cgroup")
    assert "/kos/boxed" in cgroups
    assert os.readlink(f"/proc/{pid}/ns/uts") != os.readlink("/proc/self/ns/uts")
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    await sup.stop("boxed")
    assert "/kos/boxed" not in read("/proc/self/cgroup")
    assert not [p for p in _candidate_dirs("kos/boxed") if exists(p)]


@pytest.fixture
async def netns() -> AsyncIterator[str]:
    name = f"kos-svc-{os.getpid()}-{time.monotonic_ns() % 100000}"
    await anyio.run_process(["ip", "netns", "add", name])
    try:
        yield name
    finally:
        await anyio.run_process(["ip", "netns", "del", name], check=False)


@pytest.mark.root
async def test_process_joins_an_existing_network_namespace(sup: Supervisor, netns: str) -> None:
    path = f"/run/netns/{netns}"
    sup.add(ServiceDefinition("innetns", ProcessRunner(["sleep", "1000"], stop_timeout=2, netns_path=path)))
    await sup.start("innetns")
    pid = (await sup.wait_state("innetns", ServiceState.RUNNING, timeout=5)).pid
    inode = (await anyio.Path(path).stat()).st_ino
    assert os.readlink(f"/proc/{pid}/ns/net") == f"net:[{inode}]"
    await sup.stop("innetns")


async def test_service_waits_for_another_service_and_logs_follow(sup: Supervisor) -> None:
    assert sup.state is not None
    port = free_port()
    sup.add(
        ServiceDefinition(
            "backend",
            ProcessRunner([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], stop_timeout=2),
            health=HealthCheck(tcp_probe("127.0.0.1", port), interval=0.1, timeout=1),
        )
    )
    ticker = "import time\nfor i in range(1000):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.01)"
    sup.add(
        ServiceDefinition(
            "frontend",
            ProcessRunner([sys.executable, "-c", ticker], stop_timeout=2),
            depends_on=[service_healthy(sup.state, "backend")],
        )
    )
    await sup.start("frontend")
    st = await sup.wait_for("frontend", lambda s: s.message == "waiting for service 'backend' healthy", timeout=5)
    assert st.state == ServiceState.WAITING
    await sup.start("backend")
    await sup.wait_state("frontend", ServiceState.RUNNING, timeout=10)
    # follow sees lines as the service prints them
    seen = b""
    with anyio.fail_after(10):
        async for chunk in sup.log("frontend").follow(tail_lines=0):
            seen += chunk
            if seen.count(b"\n") >= 5:
                break
    lines = seen.decode().splitlines()
    nums = [int(x.split()[1]) for x in lines if x.startswith("tick ")]
    assert nums == list(range(nums[0], nums[0] + len(nums)))


async def test_publishing_conflict_does_not_stop_supervision(sup: Supervisor) -> None:
    assert sup.state is not None
    await sup.state.create(Resource.new(ServiceSpec(), "squatted"), owner="someone-else")
    sup.add(ServiceDefinition("squatted", TaskRunner(forever)))
    await sup.start("squatted")
    await sup.wait_state("squatted", ServiceState.RUNNING, timeout=5)
    sup.add(ServiceDefinition("other", TaskRunner(forever)))
    await sup.start("other")
    spec = await service_resource(sup, "other")
    assert spec.state == "Running"
    r = await sup.state.get(SERVICES.pointer("squatted"))
    assert r.metadata.owner == "someone-else" and r.spec.state == "Waiting"
