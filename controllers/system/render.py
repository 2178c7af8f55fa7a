"""Pure renders: the active machine config -> the specs the system controllers apply.

Each function takes a ``ConfigContainer`` and returns ``{id: spec}``; a config that cannot be
rendered raises ``ValueError`` naming the field, the value and what was expected (the config
controller then keeps the previous specs). No I/O here.

* ``kernel_params``: ``machine.sysctls`` (id = the key) and ``machine.sysfs`` (id ``sysfs.<key>``);
* ``machine_files``: ``machine.files`` (id = the path; only below ``/var/``, as Talos allows);
* ``environment``: ``machine.env`` (id ``machine``);
* ``registry_hosts(hosts_dir)``: ``machine.registries`` -> containerd ``hosts.toml`` per registry;
* ``log_destinations``: ``machine.logging.destinations``.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from kos.platform.linux.kernelparams import KernelParamError, param_path
from kos.resources.core.spec import Spec
from kos.resources.machineconfig import ConfigContainer
from kos.resources.runtime import (
    EnvironmentSpecSpec,
    KernelParamSpecSpec,
    LogDestinationSpecSpec,
    MachineFileSpecSpec,
    RegistryHostSpecSpec,
)

Render = Callable[[ConfigContainer], dict[str, Spec]]

ENVIRONMENT_ID = "machine"
FILE_ROOTS = ("/var/",)
LOG_FORMATS = ("json_lines",)
LOG_SCHEMES = ("tcp", "udp")


def kernel_params(c: ConfigContainer) -> dict[str, Spec]:
    out: dict[str, Spec] = {}
    m = c.config.machine
    for field, params, sysfs in (("machine.sysctls", m.sysctls, False), ("machine.sysfs", m.sysfs, True)):
        for key, value in params.items():
            try:
                path = param_path(key, sysfs=sysfs)
            except KernelParamError as exc:
                raise ValueError(f"{field}.{key}: {exc}") from None
            out[f"sysfs.{key}" if sysfs else key] = KernelParamSpecSpec(value=str(value), path=path, source=field)
    return out


def _file_path(i: int, path: str) -> str:
    norm = posixpath.normpath(path) if path else ""
    if not path.startswith("/") or norm != path.rstrip("/") or not any(norm.startswith(r) for r in FILE_ROOTS):
        raise ValueError(f"machine.files[{i}].path: {path!r} is invalid, expected a normalised absolute path "
                         f"below {', '.join(FILE_ROOTS)} (the rest of the file system is read-only)")
    return norm


def machine_files(c: ConfigContainer) -> dict[str, Spec]:
    out: dict[str, Spec] = {}
    for i, f in enumerate(c.config.machine.files):
        path = _file_path(i, f.path)
        if path in out:
            raise ValueError(f"machine.files[{i}].path: {path!r} is listed twice")
        if f.op not in ("create", "append", "overwrite"):
            raise ValueError(f"machine.files[{i}].op: {f.op!r} is invalid, expected create, append or overwrite")
        out[path] = MachineFileSpecSpec(path=path, content=f.content, permissions=f.permissions or 0o644, op=f.op,
                                        source=f"machine.files[{i}]")
    return out


def environment(c: ConfigContainer) -> dict[str, Spec]:
    env = c.config.machine.env
    return {ENVIRONMENT_ID: EnvironmentSpecSpec(variables=dict(env))} if env else {}


# -- registries ------------------------------------------------------------------------------

def _toml(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _pem(path: str, text: Any) -> str:
    if not isinstance(text, str) or not text:
        raise ValueError(f"{path}: expected base64 of a PEM block")
    try:
        pem = base64.b64decode(text.encode(), validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError(f"{path}: {text[:20]!r}... is not base64 of a PEM block") from None
    if "-----BEGIN" not in pem:
        raise ValueError(f"{path}: expected base64 of a PEM block")
    return pem


def _mapping(path: str, v: Any) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ValueError(f"{path}: {v!r} is invalid, expected a mapping")
    return v


def _registry_dir(name: str) -> str:
    if name == "*":
        return "_default"
    if not name or "/" in name or name in (".", "..") or not all(ch.isalnum() or ch in ".-:_[]" for ch in name):
        raise ValueError(f"machine.registries: {name!r} is invalid, expected a registry host such as docker.io "
                         "or registry.local:5000")
    return name


def _default_server(name: str) -> str:
    return "https://registry-1.docker.io" if name == "docker.io" else f"https://{name}"


class _HostBlock:
    """The settings of one host (a mirror endpoint or the registry itself) from ``config``."""

    def __init__(self, cfg_path: str, cfg: dict[str, Any], files: dict[str, str], prefix: str, dir_path: str):
        self.lines: list[str] = []
        tls = _mapping(f"{cfg_path}.tls", cfg.get("tls"))
        auth = _mapping(f"{cfg_path}.auth", cfg.get("auth"))
        if tls.get("insecureSkipVerify"):
            self.lines.append("  skip_verify = true")
        if tls.get("ca"):
            files[f"{prefix}ca.crt"] = _pem(f"{cfg_path}.tls.ca", tls["ca"])
            self.lines.append(f"  ca = {_toml(posixpath.join(dir_path, prefix + 'ca.crt'))}")
        ident = _mapping(f"{cfg_path}.tls.clientIdentity", tls.get("clientIdentity"))
        if ident:
            files[f"{prefix}client.crt"] = _pem(f"{cfg_path}.tls.clientIdentity.crt", ident.get("crt"))
            files[f"{prefix}client.key"] = _pem(f"{cfg_path}.tls.clientIdentity.key", ident.get("key"))
            crt, key = (posixpath.join(dir_path, prefix + n) for n in ("client.crt", "client.key"))
            self.lines.append(f"  client = [[{_toml(crt)}, {_toml(key)}]]")
        header = ""
        if auth.get("username") or auth.get("password"):
            user, pw = str(auth.get("username", "")), str(auth.get("password", ""))
            header = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
        elif auth.get("auth"):
            header = f"Basic {auth['auth']}"
        if header:
            self.lines.append(f"  [host.{{}}.header]\n    authorization = [{_toml(header)}]")


def _host_key(url: str, path: str) -> str:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ValueError(f"{path}: {url!r} is invalid, expected an http:// or https:// URL")
    return u.netloc


def registry_hosts(hosts_dir: str) -> Render:
    """The renderer for hosts.toml files below ``hosts_dir`` (the CRI ``config_path``)."""

    def render(c: ConfigContainer) -> dict[str, Spec]:
        reg = _mapping("machine.registries", c.config.machine.registries)
        mirrors = _mapping("machine.registries.mirrors", reg.get("mirrors"))
        configs = _mapping("machine.registries.config", reg.get("config"))
        out: dict[str, Spec] = {}
        for name in sorted({*mirrors, *configs}, key=str):
            d = _registry_dir(str(name))
            dir_path = posixpath.join(hosts_dir, d)
            files: dict[str, str] = {}
            mpath = f"machine.registries.mirrors.{name}"
            mirror = _mapping(mpath, mirrors.get(name))
            endpoints = mirror.get("endpoints") or []
            if not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
                raise ValueError(f"{mpath}.endpoints: {endpoints!r} is invalid, expected a list of URLs")
            server = "" if name == "*" else _default_server(str(name))
            lines = [f"server = {_toml(server)}", ""] if server else []
            hosts = list(endpoints)
            if name in configs and server and server not in hosts:
                hosts.append(server)  # the registry's own TLS/auth settings apply to its server
            for i, ep in enumerate(hosts):
                key = _host_key(ep, f"{mpath}.endpoints[{i}]")
                cfg_name = next((k for k in (key, name) if k in configs), None)
                lines.append(f"[host.{_toml(ep)}]")
                lines.append('  capabilities = ["pull", "resolve"]')
                if mirror.get("overridePath") and ep in endpoints:
                    lines.append("  override_path = true")
                if cfg_name is not None:
                    cpath = f"machine.registries.config.{cfg_name}"
                    block = _HostBlock(cpath, _mapping(cpath, configs[cfg_name]), files, f"{i}-", dir_path)
                    lines += [ln.replace("{}", _toml(ep)) for ln in block.lines]
                lines.append("")
            out[d] = RegistryHostSpecSpec(server=server, endpoints=hosts, hosts_toml="\n".join(lines), files=files)
        return out

    return render


# -- logging ---------------------------------------------------------------------------------

def log_destinations(c: ConfigContainer) -> dict[str, Spec]:
    logging = _mapping("machine.logging", c.config.machine.logging)
    dests = logging.get("destinations") or []
    if not isinstance(dests, list):
        raise ValueError(f"machine.logging.destinations: {dests!r} is invalid, expected a list")
    out: dict[str, Spec] = {}
    for i, d in enumerate(dests):
        p = f"machine.logging.destinations[{i}]"
        d = _mapping(p, d)
        endpoint = d.get("endpoint")
        u = urlsplit(endpoint) if isinstance(endpoint, str) else None
        try:
            port = u.port if u is not None else None
        except ValueError:
            port = None
        if u is None or u.scheme not in LOG_SCHEMES or not u.hostname or not port:
            raise ValueError(f"{p}.endpoint: {endpoint!r} is invalid, expected tcp://host:port or udp://host:port")
        fmt = d.get("format", "json_lines")
        if fmt not in LOG_FORMATS:
            raise ValueError(f"{p}.format: {fmt!r} is invalid, expected one of {', '.join(LOG_FORMATS)}")
        tags = _mapping(f"{p}.extraTags", d.get("extraTags"))
        out[str(endpoint)] = LogDestinationSpecSpec(endpoint=str(endpoint), format=fmt,
                                                    extra_tags={str(k): str(v) for k, v in tags.items()})
    return out
