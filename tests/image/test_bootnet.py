"""The boot prelude's rtnetlink set-up (``kos.platform.image.bootnet`` through ``boot._network``)
against the real kernel, in a private network namespace with a veth pair: the first link by
name gets the address and the default route, lo comes up, a refusal names the operation;
and the prelude imports neither pyroute2 nor dataclasses (thrown away by the exec)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.network.netns import kernel, needs_netns, netns, nsenter

pytestmark = [needs_netns]

SETUP = "import sys; from kos.platform.image import boot; boot._network(boot.parse_cmdline(sys.argv[1]))"


def boot_network(path: str, cmdline: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return nsenter(path, sys.executable, "-c", SETUP, cmdline, check=check)


def test_first_link_gets_address_and_default_route() -> None:
    with netns("bootnet") as path:
        nsenter(path, "ip", "link", "add", "b0", "type", "veth", "peer", "name", "a0")
        out = boot_network(path, "kos.ip=10.77.0.2/24 kos.gw=10.77.0.1").stdout
        assert out.strip() == "kos: a0 10.77.0.2/24 via 10.77.0.1"  # a0 sorts before b0
        links = {link["ifname"]: link for link in kernel(path, "link show")}
        assert "UP" in links["a0"]["flags"] and "UP" not in links["b0"]["flags"]
        assert "UP" in links["lo"]["flags"]
        addrs = {(a["ifname"], f"{i['local']}/{i['prefixlen']}") for a in kernel(path, "addr show")
                 for i in a["addr_info"] if i["family"] == "inet"}
        assert addrs == {("lo", "127.0.0.1/8"), ("a0", "10.77.0.2/24")}
        routes = kernel(path, "route show default")
        assert [(r["gateway"], r["dev"], r.get("protocol", "boot")) for r in routes] == [("10.77.0.1", "a0", "boot")]


def test_ipv6_address_and_route() -> None:
    with netns("bootnet6") as path:
        nsenter(path, "ip", "link", "add", "a0", "type", "veth", "peer", "name", "b0")
        boot_network(path, "kos.ip=fd00:77::2/64 kos.gw=fd00:77::1")
        addrs = {f"{i['local']}/{i['prefixlen']}" for a in kernel(path, "addr show dev a0") for i in a["addr_info"]
                 if i["family"] == "inet6" and i.get("scope") == "global"}
        assert addrs == {"fd00:77::2/64"}
        assert [r["gateway"] for r in kernel(path, "-6 route show default")] == ["fd00:77::1"]


def test_refusal_names_the_operation() -> None:
    with netns("bootnet-err") as path:
        nsenter(path, "ip", "link", "add", "a0", "type", "veth", "peer", "name", "b0")
        boot_network(path, "kos.ip=10.77.0.2/24")
        again = boot_network(path, "kos.ip=10.77.0.2/24", check=False)
        assert again.returncode != 0
        assert "add address 10.77.0.2/24: File exists" in again.stderr


def test_without_links_kos_ip_is_an_error() -> None:
    with netns("bootnet-none") as path:
        proc = boot_network(path, "kos.ip=10.77.0.2/24", check=False)
        assert "kos.ip given but the machine has no network link" in proc.stderr
        assert "UP" in kernel(path, "link show lo")[0]["flags"]


@pytest.mark.parametrize("module", ["kos.platform.image.boot", "kos.platform.image.bootnet"])
def test_prelude_does_not_import_heavy_modules(module: str) -> None:
    heavy = ("pyroute2", "anyio", "dataclasses")
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
