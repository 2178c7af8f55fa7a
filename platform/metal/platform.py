"""The metal platform: ``kos.config=URL`` on the kernel command line.

The URL may hold ``${hostname}``, ``${mac}`` (of the first non-loopback interface, colon
separated) and ``${uuid}`` (SMBIOS product UUID), substituted before fetching; ``http``,
``https`` and ``file`` URLs are fetched. ``kos.hostname=`` sets the hostname. Without
``kos.config=`` the node has no platform config (it boots into maintenance mode).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

VARIABLE = re.compile(r"\$\{([a-z]+)\}")


def parse_cmdline(text: str) -> dict[str, str]:
    """``a=b c "d=e f"`` -> {"a": "b", "c": "", "d": "e f"}; the last occurrence wins."""
    out: dict[str, str] = {}
    for m in re.finditer(r'(?:[^\s"]+|"[^"]*")+', text):
        word = m.group(0).replace('"', "")
        key, _, value = word.partition("=")
        out[key] = value
    return out


def substitute(url: str, values: dict[str, str]) -> str:
    """Replace ``${name}``; an unknown variable or one without a value is a ValueError."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in ("hostname", "mac", "uuid"):
            raise ValueError(f"kos.config={url!r}: unknown variable ${{{name}}}, expected hostname, mac or uuid")
        value = values.get(name)
        if not value:
            raise ValueError(f"kos.config={url!r}: ${{{name}}} has no value on this machine")
        return value

    return VARIABLE.sub(one, url)


def first_mac(sys_class_net: Path = Path("/sys/class/net")) -> str | None:
    if not sys_class_net.is_dir():
        return None
    for dev in sorted(sys_class_net.iterdir()):
        if dev.name == "lo":
            continue
        try:
            mac = (dev / "address").read_text().strip()
        except OSError:
            continue
        if mac and mac != "00:00:00:00:00:00":
            return mac
    return None


def product_uuid(path: Path = Path("/sys/class/dmi/id/product_uuid")) -> str | None:
    try:
        return path.read_text().strip().lower() or None
    except OSError:
        return None


def fetch(url: str, *, timeout: float = 30.0) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data: bytes = resp.read()
            return data
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ValueError(f"kos.config={url!r}: cannot fetch: {exc}") from None


class MetalPlatform:
    name = "metal"
    mode = "metal"

    def __init__(self, cmdline: str | None = None) -> None:
        if cmdline is None:
            try:
                cmdline = Path("/proc/cmdline").read_text()
            except OSError:
                cmdline = ""
        self.args = parse_cmdline(cmdline)

    def hostname(self) -> str | None:
        return self.args.get("kos.hostname") or None

    def config_url(self) -> str | None:
        url = self.args.get("kos.config")
        if not url:
            return None
        values = {"hostname": self.hostname() or "", "mac": first_mac() or "", "uuid": product_uuid() or ""}
        url = substitute(url, values)
        if not url.startswith(("http://", "https://", "file://")):
            raise ValueError(f"kos.config={url!r}: expected an http://, https:// or file:// URL")
        return url

    def config(self) -> bytes | None:
        url = self.config_url()
        return fetch(url) if url else None


PLATFORM_CLASS = MetalPlatform
