"""Platforms: where the machine config and hostname come from (container env/file, metal
kernel command line with ${hostname}/${mac}/${uuid} substitution fetched over real HTTP,
nocloud SMBIOS serial, qemu fw_cfg) and clear errors naming the source."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kos.machined.platforms import load_platform
from kos.platform.container.platform import ContainerPlatform
from kos.platform.metal.platform import MetalPlatform, parse_cmdline, substitute
from kos.platform.nocloud.platform import parse_serial
from kos.platform.qemu.platform import QemuPlatform


def test_container_config_inline_file_and_errors(tmp_path: Path) -> None:
    assert ContainerPlatform({"KOS_CONFIG": "version: v1alpha1\n"}).config() == b"version: v1alpha1\n"
    f = tmp_path / "c.yaml"
    f.write_text("x: 1\n")
    assert ContainerPlatform({"KOS_CONFIG_FILE": str(f)}).config() == b"x: 1\n"
    assert ContainerPlatform({}).config() is None
    assert ContainerPlatform({"KOS_HOSTNAME": "cp-1"}).hostname() == "cp-1"
    with pytest.raises(ValueError, match=r"KOS_CONFIG_FILE='/nope/c.yaml': No such file"):
        ContainerPlatform({"KOS_CONFIG_FILE": "/nope/c.yaml"}).config()


def test_cmdline_parsing() -> None:
    args = parse_cmdline('console=ttyS0 kos.config=http://h/c?x=1 quiet "kos.hostname=a b" ro')
    assert args["kos.config"] == "http://h/c?x=1" and args["kos.hostname"] == "a b" and args["quiet"] == ""


@given(st.text(alphabet="abcdef0123456789:-", min_size=1, max_size=20))
def test_substitution_replaces_every_variable(value: str) -> None:
    url = "http://10.0.0.1/${hostname}/${mac}?u=${uuid}"
    got = substitute(url, {"hostname": value, "mac": value, "uuid": value})
    assert got == f"http://10.0.0.1/{value}/{value}?u={value}" and "${" not in got


def test_substitution_errors_name_the_variable() -> None:
    with pytest.raises(ValueError, match=r"unknown variable \$\{serial\}"):
        substitute("http://h/${serial}", {})
    with pytest.raises(ValueError, match=r"\$\{uuid\} has no value"):
        substitute("http://h/${uuid}", {"uuid": ""})


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "node-7.yaml").write_text("version: v1alpha1\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(tmp_path), **kw)  # type: ignore[arg-type]

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()


def test_metal_fetches_the_substituted_url(http_server: str) -> None:
    p = MetalPlatform(f"ro kos.hostname=node-7 kos.config={http_server}/configs/${{hostname}}.yaml")
    assert p.hostname() == "node-7"
    assert p.config() == b"version: v1alpha1\n"
    missing = MetalPlatform(f"kos.config={http_server}/configs/none.yaml")
    with pytest.raises(ValueError, match=r"cannot fetch: HTTP Error 404"):
        missing.config()
    with pytest.raises(ValueError, match="expected an http://, https:// or file:// URL"):
        MetalPlatform("kos.config=ftp://x/c").config()
    assert MetalPlatform("ro quiet").config() is None


def test_qemu_prefers_fw_cfg(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.write_bytes(b"from fw_cfg\n")
    assert QemuPlatform("kos.config=http://unused/", fw_cfg=raw).config() == b"from fw_cfg\n"
    assert QemuPlatform("quiet", fw_cfg=tmp_path / "absent").config() is None


def test_nocloud_serial() -> None:
    assert parse_serial("ds=nocloud;s=http://10.0.0.1/c") == "http://10.0.0.1/c/"
    assert parse_serial("ds=nocloud-net;s=http://h/x/") == "http://h/x/"
    assert parse_serial("ds=other;s=http://h/") is None and parse_serial("VMware-42") is None


def test_load_platform_by_name() -> None:
    assert load_platform("container").name == "container"
    assert load_platform("qemu").name == "qemu"
    assert load_platform("process").config() is None


def test_container_network_feeds_the_platform_layer() -> None:
    net = ContainerPlatform({"KOS_ADDRESS": "10.5.0.3/24", "KOS_GATEWAY": "10.5.0.1", "KOS_HOSTNAME": "w-1"}).network()
    assert [(a.address, a.link_name) for a in net.addresses] == [("10.5.0.3/24", "eth0")]
    assert [(r.gateway, r.out_link_name) for r in net.routes] == [("10.5.0.1", "eth0")]
    assert [(link.name, link.up) for link in net.links] == [("eth0", True)] and net.hostname == "w-1"
    assert ContainerPlatform({}).network() is None
    with pytest.raises(ValueError, match=r"KOS_ADDRESS='10.5.0.3': expected an address with prefix"):
        ContainerPlatform({"KOS_ADDRESS": "10.5.0.3"}).network()
    with pytest.raises(ValueError, match=r"KOS_GATEWAY='gw': expected an IP address"):
        ContainerPlatform({"KOS_ADDRESS": "10.5.0.3/24", "KOS_GATEWAY": "gw"}).network()


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop device, mount)")
def test_nocloud_reads_a_cidata_volume(tmp_path: Path) -> None:
    """A real filesystem labelled cidata on a loop device, with user-data and meta-data."""
    from kos.platform.nocloud.platform import NoCloudPlatform, read_cidata

    img = tmp_path / "cidata.img"
    with open(img, "wb") as f:
        f.truncate(8 * 2**20)
    subprocess.run(["mkfs.ext4", "-q", "-L", "cidata", str(img)], check=True)
    dev = subprocess.run(["losetup", "--find", "--show", str(img)], check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        subprocess.run(["mount", dev, str(mnt)], check=True)
        (mnt / "user-data").write_text("version: v1alpha1\n")
        (mnt / "meta-data").write_text("instance-id: i-1\nlocal-hostname: node-9\n")
        subprocess.run(["umount", str(mnt)], check=True)
        user, meta = read_cidata(dev)
        assert user == b"version: v1alpha1\n" and meta["local-hostname"] == "node-9"
        assert not [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines() if "kos-cidata-" in ln]
        # no SMBIOS serial here: the platform finds the volume by its label
        p = NoCloudPlatform(serial_path=tmp_path / "no-serial")
        assert p.config() == b"version: v1alpha1\n" and p.hostname() == "node-9"
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
