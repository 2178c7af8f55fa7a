"""``kosctl support``: one archive (zip or tar.gz) with what someone helping needs, per node:

* ``<node>/resources/<type>.yaml``: every resource of every type the node defines (in the
  type's default namespace); types marked sensitive (secrets, certificates, the machine
  config) are left out, and string values under secret-looking keys are redacted;
* ``<node>/machineconfig.yaml``: the machine config with its secrets redacted;
* ``<node>/logs/<service>.log`` and ``<node>/dmesg.log``;
* ``<node>/etcd-status.txt`` and ``etcd-members.txt`` (control planes), ``version.txt``,
  ``services.txt``, ``processes.txt``, ``mounts.txt``, ``netstat.txt``;
* ``<node>/errors.txt``: what could not be collected and why (a collector that fails does not
  stop the others).

Without ``-n`` every node of the cluster is collected, as the endpoint's ``Members`` list
them (the context's nodes, or the endpoint, when it knows no members).
Run it with an os:admin config for the logs and the redacted machine config (an os:reader
still gets resources, logs and status; what it may not read is listed in errors.txt).
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from typing import Any

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError

EXAMPLES = """examples:
  kosctl support                         support.zip with the context's nodes
  kosctl support -n 10.5.0.2,10.5.0.3 -O bundle.tar.gz
"""
REDACTED = "******"
SECRET_KEY = re.compile(r"(^|_|-)(key|token|secret|password|passwd|credentials?|privatekey)s?$", re.IGNORECASE)
M = "/kos.machine.MachineService/"
RD = "ResourceDefinitions.meta.cosi.dev"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("support", help="collect the nodes' state, logs and config (redacted) into one archive",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-O", "--output", default="support.zip",
                   help="archive to write: .zip (default support.zip) or .tar.gz/.tgz")
    p.add_argument("--force", action="store_true", help="overwrite the archive if it exists")
    common.add_target_args(p)
    p.set_defaults(func=run)


def redact(value: Any) -> Any:
    """Secret-looking keys' string values replaced (recursively)."""
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and SECRET_KEY.search(_snake(k)) and isinstance(v, str) and v
                else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


class Bundle:
    """The archive being written (zip or tar.gz), file by file."""

    def __init__(self, path: str) -> None:
        import tarfile
        import zipfile

        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.tar: tarfile.TarFile | None = None
        if path.endswith((".tar.gz", ".tgz")):
            self.tar = tarfile.open(path, "w:gz")  # noqa: SIM115 - closed by close()
        elif path.endswith(".zip"):
            self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        else:
            raise CLIError(f"--output {path!r}: expected a .zip, .tar.gz or .tgz file name")
        self.count = 0

    def add(self, name: str, data: bytes | str) -> None:
        import io
        import tarfile
        import time

        raw = data.encode() if isinstance(data, str) else data
        self.count += 1
        if self.zip is not None:
            self.zip.writestr(name, raw)
        elif self.tar is not None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(raw), int(time.time()), 0o644
            self.tar.addfile(info, io.BytesIO(raw))

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()
        if self.tar is not None:
            self.tar.close()


def _table(rows: list[list[str]]) -> str:
    import io

    out = io.StringIO()
    common.table(rows, out)
    return out.getvalue()


async def collect(conn: common.Connection, node: str | None, label: str, bundle: Bundle) -> list[str]:
    """Everything of one node into ``bundle`` under ``<label>/``; returns the errors."""
    import yaml

    from kos.apis.client import GrpcState
    from kos.apis.etcd import machine as etcd_api
    from kos.apis.gen.kos import machine as pb
    from kos.resources.core import Kind

    from .edit import current_config
    from .get import _rd_yaml

    base = label.replace(":", "_").replace("/", "_")
    errors: list[str] = []

    async def step(what: str, fn: Any) -> None:
        try:
            await fn()
        except Exception as exc:  # one collector failing must not stop the bundle
            msg = str(exc) if not isinstance(exc, CLIError) else exc.args[0]
            errors.append(f"{what}: {msg}")

    st = GrpcState(conn, node=node, registry=None)

    async def resources() -> None:
        rds = [_rd_yaml(r) for r in await st.list(Kind("meta", RD))]
        for rd in rds:
            typ, ns = str(rd.get("type", "")), str(rd.get("defaultNamespace", ""))
            if not typ:
                continue
            if str(rd.get("sensitivity", "")).lower() in ("sensitive", "1", "true"):
                bundle.add(f"{base}/resources/{typ}.yaml", "# sensitive: left out of the support bundle\n")
                continue

            async def one(typ: str = typ, ns: str = ns) -> None:
                docs = []
                for r in await st.list(Kind(ns, typ)):
                    spec = yaml.safe_load(getattr(r.spec, "yaml", "") or "") or {}
                    docs.append({"metadata": {"namespace": r.metadata.namespace, "type": r.metadata.type,
                                              "id": r.metadata.id, "version": str(r.metadata.version),
                                              "phase": str(r.metadata.phase)},
                                 "spec": redact(spec)})
                bundle.add(f"{base}/resources/{typ}.yaml", yaml.safe_dump_all(docs, sort_keys=False))

            await step(f"resources {typ}", one)

    async def machineconfig() -> None:
        from kos.resources.machineconfig import ConfigContainer

        text = await current_config(conn, node)
        bundle.add(f"{base}/machineconfig.yaml", ConfigContainer.load(text, strict=False).redacted().to_yaml())

    async def services() -> None:
        r = pb.ServiceListResponse().parse(await conn.unary(M + "ServiceList", b"", node=node))
        rows = [["SERVICE", "STATE", "HEALTH", "LAST EVENT"]]
        for s in r.services:
            health = "?" if s.health.unknown else ("OK" if s.health.healthy else "FAIL")
            rows.append([s.id, s.state, health, s.events[-1].msg if s.events else ""])
        bundle.add(f"{base}/services.txt", _table(rows))
        for s in r.services:
            async def log(sid: str = s.id) -> None:
                data = b""
                req = pb.LogsRequest(id=sid, follow=False)
                async with conn.stream(M + "Logs", bytes(req), node=node) as it:
                    async for msg in it:
                        data += pb.Data().parse(msg).bytes
                bundle.add(f"{base}/logs/{sid}.log", data)

            await step(f"logs {s.id}", log)

    async def dmesg() -> None:
        data = b""
        async with conn.stream(M + "Dmesg", bytes(pb.DmesgRequest()), node=node) as it:
            async for msg in it:
                data += pb.Data().parse(msg).bytes
        bundle.add(f"{base}/dmesg.log", data)

    async def version() -> None:
        v = pb.VersionResponse().parse(await conn.unary(M + "Version", b"", node=node))
        bundle.add(f"{base}/version.txt", f"tag: {v.version.tag}\npython: {v.version.python_version}\n"
                   f"os: {v.version.os}/{v.version.arch}\nplatform: {v.platform.name} ({v.platform.mode})\n")

    async def processes() -> None:
        r = pb.ProcessesResponse().parse(await conn.unary(M + "Processes", b"", node=node))
        rows = [["PID", "PPID", "STATE", "THREADS", "CPU-TIME", "RSS", "COMMAND"]]
        rows += [[str(p.pid), str(p.ppid), p.state, str(p.threads), f"{p.cpu_time:.2f}", str(p.resident_memory),
                  p.args or p.command] for p in r.processes]
        bundle.add(f"{base}/processes.txt", _table(rows))

    async def mounts() -> None:
        r = pb.MountsResponse().parse(await conn.unary(M + "Mounts", b"", node=node))
        rows = [["FILESYSTEM", "TYPE", "SIZE", "AVAILABLE", "MOUNTED ON"]]
        rows += [[m.filesystem, m.type, str(m.size), str(m.available), m.mounted_on] for m in r.stats]
        bundle.add(f"{base}/mounts.txt", _table(rows))

    async def netstat() -> None:
        r = pb.NetstatResponse().parse(await conn.unary(M + "Netstat", bytes(pb.NetstatRequest()), node=node))
        rows = [["PROTO", "LOCAL", "REMOTE", "STATE"]]
        rows += [[c.l4_proto, f"{c.localip}:{c.localport}", f"{c.remoteip}:{c.remoteport}", c.state]
                 for c in r.records]
        bundle.add(f"{base}/netstat.txt", _table(rows))

    async def etcd() -> None:
        s = await etcd_api.status(conn, node=node)
        bundle.add(f"{base}/etcd-status.txt", str(s.to_dict()) + "\n")
        members = await etcd_api.member_list(conn, node=node)
        rows = [["ID", "HOSTNAME", "PEER URLS", "CLIENT URLS", "LEARNER"]]
        rows += [[f"{m.id:x}", m.hostname, ",".join(m.peer_urls), ",".join(m.client_urls), str(m.is_learner)]
                 for m in members]
        bundle.add(f"{base}/etcd-members.txt", _table(rows))

    for what, fn in (("version", version), ("resources", resources), ("machine config", machineconfig),
                     ("services", services), ("dmesg", dmesg), ("processes", processes), ("mounts", mounts),
                     ("netstat", netstat), ("etcd", etcd)):
        await step(what, fn)
    bundle.add(f"{base}/errors.txt", "".join(e + "\n" for e in errors))
    return errors


async def _cluster_nodes(t: common.Target) -> list[str]:
    """Every node of the cluster (control planes first) from the endpoint's Members; none (the
    endpoint alone) when discovery gives nothing."""
    from kos.apis.client.health import DiscoveryError, discovered_nodes

    async with t.connect() as conn:
        try:
            nodes = await discovered_nodes(conn, None)
        except DiscoveryError:
            return []
    return [*nodes.control_planes, *nodes.workers]


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    out = Path(args.output)
    if out.exists() and not args.force:
        raise CLIError(f"--output {args.output!r} exists: remove it or pass --force")
    t = common.target(args)
    if not getattr(args, "nodes", None):  # no -n: the whole cluster, else the context's nodes
        t.nodes = common.run(lambda: _cluster_nodes(t)) or t.nodes
    bundle = Bundle(args.output)
    summary: list[str] = []

    async def call(conn: common.Connection, node: str | None) -> None:
        label = t.label(node)
        errors = await collect(conn, node, label, bundle)
        summary.append(f"{label}: collected" + (f", {len(errors)} part(s) missing (see errors.txt)" if errors else ""))

    try:
        # one node after another: the archive is written in order, and nodes are not hammered
        for node in t.labels():
            one = common.Target(t.context, t.endpoint, [node] if node else [], t.insecure)
            common.run(functools.partial(common.fan_out, one, call, timeout=60))
    finally:
        bundle.close()
    for line in summary:
        print(line, file=sys.stderr)
    print(f"wrote {args.output} ({bundle.count} files)")
    return 0
