"""Pure renders: the active machine config -> the specs the system controllers apply.

Each function takes a ``ConfigContainer`` and returns ``{id: spec}``; a config that cannot be
rendered raises ``ValueError`` naming the field, the value and what was expected (the config
controller then keeps the previous specs). No I/O here.

* ``kernel_params``: ``machine.sysctls`` and ``SysctlConfig.params`` (id = the key) and
  ``machine.sysfs`` (id ``sysfs.<key>``); ``kernel_params_with_defaults`` puts them over
  ``KERNEL_PARAM_DEFAULTS`` (a node with its own kernel, as Talos's KernelParamDefaults);
* ``machine_files``: ``machine.files`` (id = the path; only below ``/var/``, as Talos allows);
* ``environment``: ``machine.env`` (id ``machine``);
* ``registry_hosts(hosts_dir)``: ``machine.registries`` and the ``RegistryMirrorConfig``/
  ``RegistryAuthConfig``/``RegistryTLSConfig`` documents -> containerd ``hosts.toml`` per registry;
* ``log_destinations``: ``machine.logging.destinations``.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kos.platform.linux.kernelparams import KernelParamError, param_path
from kos.resources.core import Spec
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
    for where, params, sysfs in (("machine.sysctls", m.sysctls, False), ("machine.sysfs", m.sysfs, True)):
        for key, value in params.items():
            try:
                path = param_path(key, sysfs=sysfs)
            except KernelParamError as exc:
                raise ValueError(f"{where}.{key}: {exc}") from None
            out[f"sysfs.{key}" if sysfs else key] = KernelParamSpecSpec(value=str(value), path=path, source=where)
    for d in c.documents:  # SysctlConfig documents (Talos v1.12+), over machine.sysctls
        if d.kind != "SysctlConfig":
            continue
        for key, value in dict(getattr(d, "params", {})).items():
            try:
                path = param_path(key)
            except KernelParamError as exc:
                raise ValueError(f"SysctlConfig.params.{key}: {exc}") from None
            out[key] = KernelParamSpecSpec(value=str(value), path=path, source="SysctlConfig")
    return out


# What a Kubernetes node needs of its kernel, as Talos sets it on every machine with its own
# kernel: the kubelet (protectKernelDefaults: true) refuses to start unless the vm./kernel. ones
# hold; pods need forwarding and bridged traffic through iptables (kube-proxy, flannel). The
# config's machine.sysctls / SysctlConfig win over these.
KERNEL_PARAM_DEFAULTS: dict[str, str] = {
    "vm.overcommit_memory": "1",
    "vm.panic_on_oom": "0",
    "kernel.panic": "10",
    "kernel.panic_on_oops": "1",
    "kernel.keys.root_maxkeys": "1000000",
    "kernel.keys.root_maxbytes": "25000000",
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
}
DEFAULTS_SOURCE = "defaults"


def kernel_params_with_defaults(c: ConfigContainer) -> dict[str, Spec]:
    """``KERNEL_PARAM_DEFAULTS`` (source ``defaults``) with the config's own over them."""
    out: dict[str, Spec] = {key: KernelParamSpecSpec(value=value, path=param_path(key), source=DEFAULTS_SOURCE)
                            for key, value in KERNEL_PARAM_DEFAULTS.items()}
    out.update(kernel_params(c))
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
    """PEM text, or base64 of it (v1alpha1 writes base64; the multi-doc kinds write PEM)."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"{path}: expected a PEM block (or base64 of one)")
    if "-----BEGIN" in text:
        return text if text.endswith("\n") else text + "\n"
    try:
        pem = base64.b64decode(text.encode(), validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError(f"{path}: {text[:20]!r}... is not a PEM block or base64 of one") from None
    if "-----BEGIN" not in pem:
        raise ValueError(f"{path}: expected a PEM block (or base64 of one)")
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


@dataclass
class _HostSettings:
    """TLS and credentials of one registry host (PEM texts already decoded)."""

    path: str  # where it was configured, for errors
    ca: str = ""
    client: tuple[str, str] | None = None
    skip_verify: bool = False
    username: str = ""
    password: str = ""
    auth: str = ""


@dataclass
class _Registries:
    mirrors: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # name -> [(url, overridePath)]
    hosts: dict[str, _HostSettings] = field(default_factory=dict)  # endpoint host -> settings
    where: dict[str, str] = field(default_factory=dict)  # mirror name -> path of its endpoints, for errors


def _from_v1alpha1(c: ConfigContainer, out: _Registries) -> None:
    reg = _mapping("machine.registries", c.config.machine.registries)
    for name, m in _mapping("machine.registries.mirrors", reg.get("mirrors")).items():
        mpath = f"machine.registries.mirrors.{name}"
        mirror = _mapping(mpath, m)
        endpoints = mirror.get("endpoints") or []
        if not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
            raise ValueError(f"{mpath}.endpoints: {endpoints!r} is invalid, expected a list of URLs")
        override = bool(mirror.get("overridePath"))
        out.mirrors[str(name)] = [(e, override) for e in endpoints]
        out.where[str(name)] = f"{mpath}.endpoints[{{}}]"
    for host, cfg in _mapping("machine.registries.config", reg.get("config")).items():
        cpath = f"machine.registries.config.{host}"
        cfg = _mapping(cpath, cfg)
        tls = _mapping(f"{cpath}.tls", cfg.get("tls"))
        auth = _mapping(f"{cpath}.auth", cfg.get("auth"))
        s = _HostSettings(cpath, skip_verify=bool(tls.get("insecureSkipVerify")))
        if tls.get("ca"):
            s.ca = _pem(f"{cpath}.tls.ca", tls["ca"])
        ident = _mapping(f"{cpath}.tls.clientIdentity", tls.get("clientIdentity"))
        if ident:
            s.client = (_pem(f"{cpath}.tls.clientIdentity.crt", ident.get("crt")),
                        _pem(f"{cpath}.tls.clientIdentity.key", ident.get("key")))
        s.username, s.password = str(auth.get("username", "")), str(auth.get("password", ""))
        s.auth = str(auth.get("auth", ""))
        out.hosts[str(host)] = s


def _from_documents(c: ConfigContainer, out: _Registries) -> None:
    """RegistryMirrorConfig / RegistryAuthConfig / RegistryTLSConfig (Talos v1.12+ documents)."""
    for d in c.documents:
        name = str(getattr(d, "name", ""))
        where = f"{d.kind}[{name}]"
        if d.kind == "RegistryMirrorConfig":
            eps = [(str(getattr(e, "url", "")), bool(getattr(e, "override_path", False)))
                   for e in getattr(d, "endpoints", [])]
            out.mirrors[name] = eps
            out.where[name] = f"{where}.endpoints[{{}}].url"
        elif d.kind == "RegistryAuthConfig":
            s = out.hosts.setdefault(name, _HostSettings(where))
            s.username, s.password = str(getattr(d, "username", "")), str(getattr(d, "password", ""))
            s.auth = str(getattr(d, "auth", ""))
        elif d.kind == "RegistryTLSConfig":
            s = out.hosts.setdefault(name, _HostSettings(where))
            s.skip_verify = bool(getattr(d, "insecure_skip_verify", False))
            if getattr(d, "ca", ""):
                s.ca = _pem(f"{where}.ca", d.ca)  # type: ignore[attr-defined]
            ident = getattr(d, "client_identity", None)
            if ident is not None and (ident.crt or ident.key):
                s.client = (_pem(f"{where}.clientIdentity.crt", ident.crt),
                            _pem(f"{where}.clientIdentity.key", ident.key))


def _host_key(url: str, path: str) -> str:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ValueError(f"{path}: {url!r} is invalid, expected an http:// or https:// URL")
    return u.netloc


def _host_lines(ep: str, s: _HostSettings, files: dict[str, str], prefix: str, dir_path: str) -> list[str]:
    lines: list[str] = []
    if s.skip_verify:
        lines.append("  skip_verify = true")
    if s.ca:
        files[f"{prefix}ca.crt"] = s.ca
        lines.append(f"  ca = {_toml(posixpath.join(dir_path, prefix + 'ca.crt'))}")
    if s.client is not None:
        files[f"{prefix}client.crt"], files[f"{prefix}client.key"] = s.client
        crt, key = (posixpath.join(dir_path, prefix + n) for n in ("client.crt", "client.key"))
        lines.append(f"  client = [[{_toml(crt)}, {_toml(key)}]]")
    header = ""
    if s.username or s.password:
        header = "Basic " + base64.b64encode(f"{s.username}:{s.password}".encode()).decode()
    elif s.auth:
        header = f"Basic {s.auth}"
    if header:  # a sub-table: after every key of the host
        lines.append(f"  [host.{_toml(ep)}.header]\n    authorization = [{_toml(header)}]")
    return lines


def registry_hosts(hosts_dir: str) -> Render:
    """The renderer for hosts.toml files below ``hosts_dir`` (the CRI ``config_path``), from
    ``machine.registries`` and the RegistryMirrorConfig/AuthConfig/TLSConfig documents."""

    def render(c: ConfigContainer) -> dict[str, Spec]:
        reg = _Registries()
        _from_v1alpha1(c, reg)
        _from_documents(c, reg)
        out: dict[str, Spec] = {}
        for name in sorted({*reg.mirrors, *reg.hosts}, key=str):
            d = _registry_dir(name)
            dir_path = posixpath.join(hosts_dir, d)
            files: dict[str, str] = {}
            mirror = reg.mirrors.get(name, [])
            server = "" if name == "*" else _default_server(name)
            lines = [f"server = {_toml(server)}", ""] if server else []
            hosts = list(mirror)
            if name in reg.hosts and server and server not in [u for u, _ in hosts]:
                hosts.append((server, False))  # the registry's own TLS/auth settings apply to its server
            for i, (ep, override) in enumerate(hosts):
                key = _host_key(ep, reg.where.get(name, f"registry {name!r} endpoint [{{}}]").format(i))
                lines.append(f"[host.{_toml(ep)}]")
                lines.append('  capabilities = ["pull", "resolve"]')
                if override:
                    lines.append("  override_path = true")
                settings = reg.hosts.get(key) or reg.hosts.get(name)
                if settings is not None:
                    lines += _host_lines(ep, settings, files, f"{i}-", dir_path)
                lines.append("")
            out[d] = RegistryHostSpecSpec(server=server, endpoints=[u for u, _ in hosts],
                                          hosts_toml="\n".join(lines), files=files)
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
