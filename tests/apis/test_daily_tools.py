"""The operator's daily tools as a user runs them: kosctl (subprocess) against a real
``machined`` process: ls/read/cp/usage under the file policy (roots, secrets withheld,
symlinks resolved), mounts, netstat with processes, time against a real SNTP responder,
inspect dependencies, META and wipe refusals on a node without a system disk, support
bundle, and the roles (reads os:reader, file contents and changes os:admin)."""

from __future__ import annotations

import io
import os
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kos.apis import auth
from kos.apis.server.nodepki import NodePKI
from kos.platform.network.sntp import PACKET, to_ntp

from .nodeproc import kosctl, machined


@dataclass
class Node:
    endpoint: str
    kosconfig: Path
    reader: Path
    state_dir: Path
    files: Path  # a directory under /var the node serves


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    base = tmp_path_factory.mktemp("daily")
    files = Path("/var/tmp") / f"kos-daily-{uuid.uuid4().hex[:8]}"
    (files / "sub" / "deeper").mkdir(parents=True)
    (files / "pki").mkdir()
    (files / "hello.txt").write_text("hello from the node\n")
    (files / "sub" / "data.bin").write_bytes(b"\x00\x01" * 5000)
    (files / "sub" / "deeper" / "note.txt").write_text("deep\n")
    (files / "server.key").write_text("-----BEGIN PRIVATE KEY-----\nsecret\n")
    (files / "pki" / "ca.crt").write_text("cert\n")
    with machined(base / "n1", "--no-controllers") as ep:
        (files / "escape").symlink_to(base / "n1" / "kosconfig")  # resolves outside the roots
        (files / "state").symlink_to(base / "n1")
        (files / "rel").symlink_to("hello.txt")
        pki = NodePKI.load_or_create(base / "n1" / "pki", ["127.0.0.1"])
        reader = base / "reader.kosconfig"
        pki.client_config("reader", [ep], [auth.READER], 3600).save(reader)
        try:
            yield Node(ep, base / "n1" / "kosconfig", reader, base / "n1", files)
        finally:
            shutil.rmtree(files, ignore_errors=True)


def k(n: Node, *args: str, reader: bool = False, rc: int = 0) -> str:
    r = kosctl(*args, kosconfig=n.reader if reader else n.kosconfig, timeout=60)
    assert r.returncode == rc, (args, r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    return r.stdout if rc == 0 else r.stderr


def names(out: str) -> list[str]:
    return [line.split(None, 1)[1] for line in out.splitlines()[1:]]


# -- ls / read / cp / usage ---------------------------------------------------------------------


def test_ls_lists_under_the_roots_and_withholds_secrets(node: Node) -> None:
    top = names(k(node, "ls", "/"))
    assert {"etc", "var", "proc", "sys", "run"} <= set(top) and "tmp" not in top and "root" not in top
    d = str(node.files)
    assert names(k(node, "ls", d)) == [".", "escape -> " + str(node.state_dir / "kosconfig"), "hello.txt",
                                       "rel -> hello.txt", "state -> " + str(node.state_dir), "sub"]
    err = k(node, "ls", d, rc=0)
    r = kosctl("ls", d, kosconfig=node.kosconfig)
    assert f"{d}/server.key: withheld: {d}/server.key may hold a key or credentials" in r.stderr
    assert f"{d}/pki: withheld: {d}/pki is in a directory of secrets" in r.stderr
    assert "server.key" not in err
    deep = names(k(node, "ls", "-r", d))
    assert "sub/deeper/note.txt" in deep and "pki/ca.crt" not in deep
    assert names(k(node, "ls", "-r", "-d", "1", d)) == names(k(node, "ls", d))
    assert names(k(node, "ls", "-r", "-t", "f", d)) == ["hello.txt", "sub/data.bin", "sub/deeper/note.txt"]
    assert names(k(node, "ls", "-t", "l", d))[1] == "rel -> hello.txt"
    long_ = k(node, "ls", "-l", d).splitlines()
    assert long_[0].split() == ["NODE", "MODE", "UID", "GID", "SIZE(B)", "LASTMOD", "NAME"]
    row = next(line.split() for line in long_ if line.endswith("hello.txt"))
    assert row[1] == "-rw-r--r--" and row[4] == "20" and row[5].endswith("Z")
    # outside the roots (also through a symlink), relative paths, bad depth
    assert "PERMISSION_DENIED: access denied: root: '/root' is outside the paths served" in k(
        node, "ls", "/root", rc=1)
    assert "resolves to" in k(node, "ls", f"{d}/state", rc=1)
    assert "give an absolute path" in k(node, "ls", "var", rc=1)
    assert "NOT_FOUND: root: '/var/nope-kos' does not exist" in k(node, "ls", "/var/nope-kos", rc=1)


def test_read_prints_files_and_refuses_secrets_and_non_files(node: Node) -> None:
    d = str(node.files)
    assert k(node, "read", f"{d}/hello.txt") == "hello from the node\n"
    assert "model name" in k(node, "read", "/proc/cpuinfo") or "processor" in k(node, "read", "/proc/cpuinfo")
    out = k(node, "read", f"{d}/server.key", rc=1)
    assert "PERMISSION_DENIED: access denied: path:" in out and "may hold a key" in out
    assert "outside the paths served" in k(node, "read", f"{d}/escape", rc=1)  # symlink to the state dir
    assert "exposes process memory" in k(node, "read", "/proc/1/environ", rc=1)
    assert "FAILED_PRECONDITION: path:" in k(node, "read", f"{d}/sub", rc=1)
    assert "is a directory" in k(node, "read", f"{d}/sub", rc=1)


def test_cp_extracts_a_tree_without_the_secrets(node: Node, tmp_path: Path) -> None:
    d = str(node.files)
    r = kosctl("cp", d, str(tmp_path / "out"), kosconfig=node.kosconfig)
    assert r.returncode == 0, r.stderr
    assert "warning: not extracted: " + node.files.name + "/escape (" in r.stderr  # absolute link target
    got = tmp_path / "out" / node.files.name
    assert (got / "hello.txt").read_text() == "hello from the node\n"
    assert (got / "sub" / "data.bin").read_bytes() == b"\x00\x01" * 5000
    assert (got / "sub" / "deeper" / "note.txt").exists()
    assert not (got / "server.key").exists() and not (got / "pki").exists()
    assert os.readlink(got / "rel") == "hello.txt"  # archived as a link, never followed
    r2 = subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", "cp", f"{d}/sub", "-"],
                        env={**os.environ, "KOSCONFIG": str(node.kosconfig)}, capture_output=True, timeout=60)
    assert r2.returncode == 0, r2.stderr
    with tarfile.open(fileobj=io.BytesIO(r2.stdout), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["sub", "sub/data.bin", "sub/deeper", "sub/deeper/note.txt"]
    assert "root_path: '/' is too broad" in k(node, "cp", "/", str(tmp_path / "x"), rc=1)


def test_usage_sums_sizes(node: Node) -> None:
    d = str(node.files)
    rows = {line.split()[1]: int(line.split()[2]) for line in k(node, "usage", "-d", "1", d).splitlines()[1:]}
    assert set(rows) == {d, f"{d}/sub"}
    assert rows[f"{d}/sub"] >= 10000 + 5  # data.bin + note.txt (+ directory entries)
    assert rows[d] >= rows[f"{d}/sub"] + 20
    files = k(node, "usage", "-a", "-d", "2", "-t", "5K", d)
    assert f"{d}/sub/data.bin" in files and "note.txt" not in files and "hello.txt" not in files
    assert "--threshold 'lots'" in k(node, "usage", "-t", "lots", d, rc=1)


def test_mounts_and_netstat(node: Node) -> None:
    mounts = k(node, "mounts").splitlines()
    assert mounts[0].split()[:3] == ["NODE", "FILESYSTEM", "TYPE"]
    assert any(line.split()[-1] == "/proc" and line.split()[2] == "proc" for line in mounts[1:])
    port = node.endpoint.rsplit(":", 1)[1]
    listening = k(node, "netstat", "-l", "-p", "--tcp").splitlines()
    assert listening[0].split()[-1] == "PID/PROGRAM"
    mine = [line for line in listening if f"127.0.0.1:{port} " in line]
    assert mine and "LISTEN" in mine[0] and "/python" in mine[0]
    connected = k(node, "netstat", "--tcp")  # this kosctl's own connection to the node, from the node's side
    assert "ESTABLISHED" in connected and "LISTEN" not in connected


# -- time ---------------------------------------------------------------------------------------


class SNTPServer:
    """A real SNTP responder on loopback whose clock runs ``skew`` seconds ahead."""

    def __init__(self, skew: float) -> None:
        self.skew = skew
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            transmit = struct.unpack("!Q", data[40:48])[0]
            now = to_ntp(time.time() + self.skew)
            reply = PACKET.pack((0 << 6) | (4 << 3) | 4, 2, 0, -20, 0, 0, b"LOCL", now, transmit, now, now)
            self.sock.sendto(reply, peer)

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        self.sock.close()


def test_time_against_an_ntp_server(node: Node) -> None:
    srv = SNTPServer(skew=2.5)
    try:
        out = k(node, "time", "--check", f"127.0.0.1:{srv.port}", reader=True).splitlines()
    finally:
        srv.close()
    assert out[0].split() == ["NODE", "NTP-SERVER", "NODE-TIME", "NTP-SERVER-TIME", "OFFSET", "RTT"]
    row = out[1].split()
    assert row[1] == f"127.0.0.1:{srv.port}" and abs(float(row[4].rstrip("s")) - 2.5) < 0.2
    assert "FAILED_PRECONDITION: no time server configured" in k(node, "time", rc=1)
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))  # bound, never answers
    try:
        assert "UNAVAILABLE: no time server answered" in k(node, "time", "-c", f"127.0.0.1:{dead.getsockname()[1]}",
                                                            rc=1)
    finally:
        dead.close()


# -- inspect, meta, wipe, support ---------------------------------------------------------------


def test_inspect_dependencies_is_dot_with_live_counts(node: Node) -> None:
    dot = k(node, "inspect", "dependencies", reader=True)
    assert dot.startswith("digraph controllers {") and dot.rstrip().endswith("}")
    assert '"ctrl:config.MachineConfigController" [label="config.MachineConfigController\\nreconciles ' in dot
    assert '"type:MachineConfigs.config.kos.dev" [label="MachineConfigs.config.kos.dev", shape=ellipse];' in dot
    assert "-> \"ctrl:config.MachineTypeController\" [style=dashed" in dot
    slim = k(node, "inspect", "dependencies", "--with-resources=false")
    assert "shape=ellipse" not in slim and (
        '"ctrl:config.MachineConfigController" -> "ctrl:config.MachineTypeController"' in slim)


def test_meta_and_wipe_refuse_clearly_on_a_node_without_a_system_disk(node: Node) -> None:
    out = k(node, "meta", "list", rc=1)
    assert "FAILED_PRECONDITION: META:" in out and "did not boot from a kos system disk" in out
    assert "NOT_FOUND: devices[0].device: /dev/nosuchdisk: no such device" in k(node, "wipe", "disk", "nosuchdisk",
                                                                                 rc=1)
    assert "INVALID_ARGUMENT: devices[0].device: '../etc'" in k(node, "wipe", "disk", "../etc", rc=1)


def test_roles_reads_for_readers_contents_and_changes_for_admins(node: Node) -> None:
    d = str(node.files)
    assert "hello.txt" in k(node, "ls", d, reader=True)
    assert k(node, "usage", d, reader=True)
    assert k(node, "mounts", reader=True) and k(node, "netstat", reader=True)
    for args in (("read", f"{d}/hello.txt"), ("cp", d, "/tmp/nowhere"), ("wipe", "disk", "loop0"),
                 ("meta", "write", "k", "v"), ("meta", "delete", "k"), ("etcd", "defrag"),
                 ("etcd", "alarm", "disarm")):
        out = k(node, *args, reader=True, rc=1)
        assert "PERMISSION_DENIED: access denied:" in out and "requires one of [os:admin]" in out, (args, out)


def test_support_bundle_collects_and_redacts(node: Node, tmp_path: Path) -> None:
    out = tmp_path / "support.zip"
    r = kosctl("support", "-O", str(out), kosconfig=node.kosconfig, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote {out} (")
    base = node.endpoint.replace(":", "_")
    with zipfile.ZipFile(out) as z:
        files = set(z.namelist())
        for f in ("version.txt", "processes.txt", "mounts.txt", "netstat.txt", "dmesg.log", "errors.txt",
                  "resources/Namespaces.meta.cosi.dev.yaml", "resources/OSRootSecrets.secrets.kos.dev.yaml"):
            assert f"{base}/{f}" in files, f
        assert z.read(f"{base}/resources/OSRootSecrets.secrets.kos.dev.yaml").startswith(b"# sensitive: left out")
        assert b"id: meta" in z.read(f"{base}/resources/Namespaces.meta.cosi.dev.yaml")
        errors = z.read(f"{base}/errors.txt").decode()
        assert "machine config: " in errors and "etcd: " in errors  # no config, no etcd on this node
    assert "--output" in kosctl("support", "-O", str(out), kosconfig=node.kosconfig).stderr  # exists: refused
    tgz = tmp_path / "b.tar.gz"
    assert kosctl("support", "-O", str(tgz), kosconfig=node.kosconfig, timeout=120).returncode == 0
    with tarfile.open(tgz) as tar:
        assert f"{base}/version.txt" in tar.getnames()


# -- shell completion ---------------------------------------------------------------------------


def test_bash_completion_walks_the_command_tree(tmp_path: Path) -> None:
    script = tmp_path / "kosctl.bash"
    r = kosctl("completion", "bash")
    assert r.returncode == 0
    script.write_text(r.stdout)

    def complete(*words: str) -> list[str]:
        arr = " ".join(f"'{w}'" for w in ("kosctl", *words))
        p = subprocess.run(["bash", "-c", f'source {script}; COMP_WORDS=({arr}); COMP_CWORD={len(words)}; _kosctl; '
                            'printf "%s\\n" "${COMPREPLY[@]}"'], capture_output=True, text=True, check=True)
        return p.stdout.split()

    assert complete("et") == ["etcd"] and complete("ed") == ["edit"]
    assert complete("-n", "a,b", "etcd", "alarm", "") == ["--help", "-h", "disarm", "list"]
    assert complete("ls", "--r") == ["--recurse"]
    assert "machineconfig" in complete("patch", "")
    assert complete("wipe", "d") == ["disk"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (.ci/setup installs it)")
def test_zsh_completion_walks_the_command_tree(tmp_path: Path) -> None:
    script = tmp_path / "_kosctl"
    script.write_text(kosctl("completion", "zsh").stdout)

    def complete(*words: str) -> list[str]:
        arr = " ".join(f"'{w}'" for w in ("kosctl", *words))
        # compadd stubbed to print what the completion function offers
        p = subprocess.run(["zsh", "-f", "-c", f'source {script}; compadd() {{ shift; print -l -- "$@"; }}; '
                            f'words=({arr}); CURRENT={len(words) + 1}; _kosctl'], capture_output=True, text=True,
                           check=True)
        return p.stdout.split()

    assert {"etcd", "events", "ls", "support", "dashboard"} <= set(complete(""))
    assert {"list", "disarm"} <= set(complete("etcd", "alarm", ""))
    assert "--dry-run" in complete("edit", "mc", "")


# -- dashboard ----------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/setup installs it)")
def test_dashboard_in_a_terminal_switches_nodes_and_screens(node: Node) -> None:
    pytest.importorskip("textual")
    session = f"kosdash-{uuid.uuid4().hex[:6]}"
    other = socket.gethostname()  # the same machined, addressed by its host name: a second node label
    cmd = (f"KOSCONFIG={node.kosconfig} {sys.executable} -m kos.apis.kosctl.main dashboard "
           f"-n {node.endpoint},{other},127.0.0.1:1 --interval 0.5")  # the third refuses connections
    env_path = os.pathsep.join(sys.path)

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout

    def screen_shows(*texts: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = tmux("capture-pane", "-p", "-t", session)
            if all(t in shown for t in texts):
                return shown
            time.sleep(0.2)
        raise AssertionError(f"the dashboard did not show {texts}:\n{shown}")

    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "50", f"PYTHONPATH={env_path} {cmd}")
    try:
        first = screen_shows(f"NODE {node.endpoint} (1/3)", "[1] SUMMARY", "VERSION    kos ", "SERVICES", "MEMORY")
        assert f"of {os.cpu_count()} CPUs" in first and "load " in first
        tmux("send-keys", "-t", session, "Right")
        screen_shows(f"NODE {other} (2/3)", "HOST       ")
        tmux("send-keys", "-t", session, "2")
        procs = screen_shows("[2] PROCESSES", "PROCESSES (by CPU)", "COMMAND")
        assert "python" in procs  # machined itself
        tmux("send-keys", "-t", session, "3")
        screen_shows("[3] NETWORK", "LISTENING", f"127.0.0.1:{node.endpoint.rsplit(':', 1)[1]}")
        tmux("send-keys", "-t", session, "4")
        screen_shows("[4] LOGS", "MACHINED LOG", "KERNEL LOG")
        tmux("send-keys", "-t", session, "Left")
        screen_shows(f"NODE {node.endpoint} (1/3)", "[4] LOGS")
        tmux("send-keys", "-t", session, "Left")  # wraps to the unreachable node: its error, in time
        screen_shows("NODE 127.0.0.1:1 (3/3)", "UNAVAILABLE", timeout=15)
        tmux("send-keys", "-t", session, "1")
        screen_shows("NODE 127.0.0.1:1 (3/3)", "[1] SUMMARY")
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 10
        while subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, "q did not end the dashboard"
            time.sleep(0.2)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


# -- --help examples ----------------------------------------------------------------------------


def test_every_help_example_names_a_command_and_parses() -> None:
    import shlex

    from kos.apis.kosctl import examples
    from kos.apis.kosctl.main import build_parser

    parser = build_parser()
    for path, lines in examples.EXAMPLES.items():
        p = examples._find(parser, path.split())
        assert p is not None, f"no command {path!r}"
        assert p.epilog and "examples:" in p.epilog and lines[0] in p.epilog, path
        for line in lines:
            args = parser.parse_args(shlex.split(line)[1:])  # SystemExit on a bad example
            assert getattr(args, "func", None) is not None, line
    out = kosctl("logs", "--help").stdout
    assert "examples:\n  kosctl logs etcd\n" in out

