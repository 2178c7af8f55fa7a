"""``kosctl get TYPE [ID]``: read resources from the nodes' ``cosi.resource.State`` API.

The type is resolved on the node through its ``ResourceDefinitions`` (RD id or any alias,
case-insensitively: ``kosctl get rd``, ``kosctl get addresses``), which also supply the default
namespace and the table's print columns. ``-l`` label selectors (``k=v``, ``k!=v``, ``k``,
``!k``, ``k in (a,b)``, ``k notin (a,b)``, ``k<v``, ``k<=v``, ``k>v``, ``k>=v`` compared as
numbers) are sent to the server. ``-w`` streams the current resources and then every change.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from kos.apis.kosctl import common
from kos.apis.kosctl.errors import CLIError

if TYPE_CHECKING:
    from kos.apis.client import APIError, Connection, SyncConnection
    from kos.apis.kosctl.output import Printer
    from kos.resources.core import LabelQuery

RD_TYPE = "ResourceDefinitions.meta.cosi.dev"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "get",
        help="get resources (kosctl get TYPE [ID])",
        description="Get resources of TYPE (a resource type, RD id or alias; 'kosctl get rd' lists them).",
    )
    p.add_argument("type", metavar="TYPE", help="resource type or alias")
    p.add_argument("id", metavar="ID", nargs="?", help="resource id (default: all)")
    p.add_argument("--namespace", help="namespace (default: the type's default namespace)")
    p.add_argument("-o", "--output", default="table", help="table, yaml, json or jsonpath={...} (default table)")
    p.add_argument("-l", "--selector", action="append", default=[], help="label selector, e.g. a=b,c!=d (repeatable)")
    p.add_argument("-w", "--watch", action="store_true", help="watch: print the resources, then every change")
    p.add_argument("--insecure", action="store_true", help="maintenance mode: TLS without a client certificate")
    common.add_target_args(p)
    p.set_defaults(func=run)


def parse_output(text: str) -> tuple[str, str]:
    fmt, _, expr = text.partition("=")
    if fmt not in ("table", "yaml", "json", "jsonpath"):
        raise CLIError(f"--output {text!r}: expected table, yaml, json or jsonpath={{...}}")
    if fmt == "jsonpath" and not expr:
        raise CLIError("--output jsonpath: needs an expression, e.g. -o jsonpath='{.spec.addresses}'")
    if fmt != "jsonpath" and expr:
        raise CLIError(f"--output {text!r}: only jsonpath takes an expression")
    return fmt, expr


_SET = re.compile(r"^\s*([^\s!=<>,()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_CMP = re.compile(r"^\s*([^\s!=<>,()]+)\s*(==|=|!=|<=|>=|<|>)\s*([^\s,()=!<>]*)\s*$")
_KEY = re.compile(r"^\s*(!?)\s*([^\s!=<>,()]+)\s*$")


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def parse_selectors(selectors: list[str]) -> list[LabelQuery]:
    """All ``-l`` terms form one query (ANDed)."""
    if not selectors:
        return []
    from kos.resources.core import LabelOp, LabelQuery, LabelTerm, parse_number

    terms = []
    for sel in selectors:
        for part in _split_selector(sel):
            if m := _SET.match(part):
                values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
                if not values:
                    raise CLIError(f"--selector {part!r}: '{m.group(2)}' needs at least one value")
                terms.append(LabelTerm(m.group(1), LabelOp.IN, values, invert=m.group(2) == "notin"))
            elif m := _CMP.match(part):
                key, op, value = m.groups()
                if op in ("=", "=="):
                    terms.append(LabelTerm(key, LabelOp.EQUAL, (value,)))
                elif op == "!=":
                    terms.append(LabelTerm(key, LabelOp.EQUAL, (value,), invert=True))
                else:
                    if parse_number(value) is None:
                        raise CLIError(f"--selector {part!r}: {value!r} is not a number (expected e.g. 10, 5Ki, 2G)")
                    lop = LabelOp.LT_NUMERIC if op in ("<", ">=") else LabelOp.LTE_NUMERIC
                    terms.append(LabelTerm(key, lop, (value,), invert=op in (">", ">=")))
            elif m := _KEY.match(part):
                terms.append(LabelTerm(m.group(2), LabelOp.EXISTS, (), invert=m.group(1) == "!"))
            else:
                raise CLIError(
                    f"--selector {part!r}: expected key, !key, key=value, key!=value, key in (a,b), "
                    "key notin (a,b) or a numeric comparison key<N"
                )
    return [LabelQuery(terms)] if terms else []


def _rd_yaml(r: Any) -> dict[str, Any]:
    from kos.resources import plainyaml

    text = getattr(r.spec, "yaml", "") or ""
    data = plainyaml.load(text) if text else {}
    return data if isinstance(data, dict) else {}


CACHE_SECONDS = 600.0
"""How long the resource definitions read from a node answer alias look-ups from the client's
cache (``$XDG_CACHE_HOME/kos/kosctl``, like kubectl's discovery cache): listing every definition
costs a node ~100 ms on a busy machine, more than the rest of ``kosctl get``."""


def cache_file(endpoint: str, node: str | None, ca: bytes) -> Path:
    """Where the definitions of ``node`` (through ``endpoint``, trusted by ``ca``) are cached."""
    import hashlib
    import os

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kos" / "kosctl"
    key = hashlib.sha256(repr((endpoint, node, ca)).encode()).hexdigest()[:32]
    return base / f"definitions-{key}.json"


def _cached(cache: Path | None, name: str) -> dict[str, Any] | None:
    """The definition ``name`` names in a fresh cache (an exact id or one alias), else None."""
    import json
    import time

    if cache is None:
        return None
    try:
        data = json.loads(cache.read_text())
        if not 0 <= time.time() - float(data["time"]) <= CACHE_SECONDS:
            return None
        rds = [rd for rd in data["definitions"] if isinstance(rd, dict)]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    lower = name.lower()
    for candidate in (lower, lower + "s"):
        found = [rd for rd in rds if candidate == str(rd.get("type", "")).lower()
                 or candidate in [str(a).lower() for a in rd.get("allAliases") or []]]
        if len(found) == 1:
            return found[0]
        if found:
            return None  # ambiguous: the node says so
    return None


def _store(cache: Path | None, rds: list[dict[str, Any]]) -> None:
    import json
    import os
    import time

    if cache is None:
        return
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"time": time.time(), "definitions": rds}, default=str))
        tmp.replace(cache)
    except OSError:
        pass  # a read-only home: no cache


async def resolve(conn: Connection, node: str | None, name: str, cache: Path | None = None) -> dict[str, Any]:
    """The resource definition (its YAML spec as a dict) that ``name`` names on the node
    (from ``cache`` when it is fresh and names it; a listing refreshes the cache)."""
    from kos.apis.client import GrpcState
    from kos.resources.core import Kind, NotFoundError, Pointer

    if (hit := _cached(cache, name)) is not None:
        return hit
    st = GrpcState(conn, node=node, registry=None)
    try:
        return _rd_yaml(await st.get(Pointer("meta", RD_TYPE, name.lower())))
    except NotFoundError:
        pass
    rds = [_rd_yaml(r) for r in await st.list(Kind("meta", RD_TYPE))]
    _store(cache, rds)
    return match_definition(name, rds, node or conn.endpoint)


def match_definition(name: str, rds: list[dict[str, Any]], where: str) -> dict[str, Any]:
    """The definition among ``rds`` that ``name`` names (not an exact type id: the node
    answers those), else APIError NOT_FOUND / INVALID_ARGUMENT (ambiguous)."""
    from grpclib.const import Status

    from kos.apis.client import APIError

    lower = name.lower()
    # an alias, else the singular of a plural alias ("rd" for "rds", as talosctl users type);
    # a name several types claim is an error naming them, never the first one found
    for candidate in (lower, lower + "s"):
        found = [rd for rd in rds if candidate in [str(a).lower() for a in rd.get("allAliases") or []]]
        if len(found) == 1:
            return found[0]
        if found:
            raise APIError(where, Status.INVALID_ARGUMENT, _ambiguous(name, [str(rd.get("type")) for rd in found]))
    # an automatic alias the node dropped because several types share it (kos.resources.core.definition)
    from kos.resources.core import automatic_aliases

    shared = []
    for rd in rds:
        try:
            if lower in automatic_aliases(str(rd.get("type"))):
                shared.append(str(rd.get("type")))
        except ValueError:  # a type name Fill() would refuse: it has no automatic aliases
            continue
    if len(shared) > 1:
        raise APIError(where, Status.INVALID_ARGUMENT, _ambiguous(name, shared))
    raise APIError(where, Status.NOT_FOUND, f"resource type {name!r} not found (list them with 'kosctl get rd')")


def _ambiguous(name: str, types: list[str]) -> str:
    return f"resource type {name!r} is ambiguous: it may mean {', '.join(sorted(types))} (name one of them)"


def run(args: argparse.Namespace) -> int:
    fmt, expr = parse_output(args.output)
    queries = parse_selectors(args.selector)
    if args.id is not None and (queries or args.selector) and not args.watch:
        raise CLIError("--selector cannot be combined with an ID")
    t = common.target(args, insecure=args.insecure)
    if fmt == "table" and not args.watch and not queries:
        return run_sync(args, t)
    return run_async(args, t, fmt, expr, queries)


def run_async(args: argparse.Namespace, t: common.Target, fmt: str, expr: str, queries: list[LabelQuery]) -> int:
    """Every format, watches and selectors: grpclib's ``Connection`` and ``GrpcState``."""
    from kos.apis.kosctl import output

    async def main() -> int:
        conn = t.connect()  # one connection (one TLS handshake) for the type lookup and the get
        try:
            return await fetch(conn)
        finally:
            conn.close()

    async def fetch(conn: Connection) -> int:
        from kos.resources.core import StateError

        node = t.labels()[0]
        cache = None if args.insecure else cache_file(t.endpoint, node, t.context.ca)
        try:
            rd = await resolve(conn, node, args.type, cache)
        except StateError as exc:
            raise _api_error(exc, t.label(node)) from None
        printer = _printer(output, args, t, fmt, expr, rd)
        namespace = args.namespace or str(rd.get("defaultNamespace") or "")
        rtype = str(rd.get("type"))
        if args.watch:
            printer.start()
            rc = await common.fan_out(t, lambda c, n: _watch(c, n, t, printer, namespace, rtype, args.id, queries),
                                      timeout=None)
        else:
            rc = await common.fan_out(t, lambda c, n: _get(c, n, t, printer, namespace, rtype, args.id, queries),
                                      conn=conn)
            printer.flush(failed=rc != 0)
        return rc

    return common.run(main)


def _printer(output: Any, args: argparse.Namespace, t: common.Target, fmt: str, expr: str,
             rd: dict[str, Any]) -> Printer:
    cols = [(str(c.get("name", "")).upper(), output.parse_jsonpath(str(c.get("jsonPath", ""))))
            for c in rd.get("printColumns") or []]
    printer: Printer = output.Printer(
        fmt, cols if fmt == "table" else [], watch=args.watch, display=str(rd.get("displayType") or ""),
        jsonpath=output.parse_jsonpath(expr) if expr else [], order=[t.label(n) for n in t.labels()],
    )
    return printer


# -- the synchronous path: a table of what is there now (no watch, no selector) ------------------
# kosctl's most frequent command, so it runs without grpclib, asyncio, PyYAML or the resource
# model (kos.apis.client.SyncConnection, kos.resources.plainyaml): tests/apis/test_kosctl_lean.py
# pins which modules it must not import, bench/kosctl_speed.py times it.

STATE = "/cosi.resource.State/"  # kos.apis.auth.STATE (not imported: auth loads the resource model)


def _kind_request(namespace: str, rtype: str, id: str | None = None) -> bytes:
    """``cosi.resource.{Get,List}Request``: namespace = 1, type = 2, id = 3."""
    from kos.apis.protowire import length_delimited, string_field

    return (string_field(b"\x0a", namespace) + string_field(b"\x12", rtype)
            + (length_delimited(b"\x1a", id.encode()) if id is not None else b""))


class _Metadata(NamedTuple):
    namespace: str
    type: str
    id: str
    version: int | None


class _Spec(NamedTuple):
    yaml: str


class _Resource(NamedTuple):
    """What the table shows of a resource: its metadata and spec YAML, as the node sent them."""

    metadata: _Metadata
    spec: _Spec


def light_resource(data: bytes) -> _Resource | None:
    """A ``Get``/``List`` response's resource, decoded only as far as a table needs it."""
    from kos.apis.protowire import WireError, fields

    body = next((v for n, _, v in fields(data) if n == 1 and isinstance(v, bytes)), None)
    if body is None:
        return None
    md = spec = b""
    for n, _, v in fields(body):
        if n == 1 and isinstance(v, bytes):
            md = v
        elif n == 2 and isinstance(v, bytes):
            spec = v
    text = {1: "", 2: "", 3: "", 4: ""}
    for n, _, v in fields(md):
        if n in text and isinstance(v, bytes):
            text[n] = v.decode("utf-8", "replace")
    version = None if text[4] in ("", "undefined") else int(text[4]) if text[4].isdigit() else None
    if text[4] not in ("", "undefined") and version is None:
        raise WireError(f"metadata.version: invalid version {text[4]!r}")
    yaml_text = next((v.decode("utf-8", "replace") for n, _, v in fields(spec) if n == 2 and isinstance(v, bytes)), "")
    return _Resource(_Metadata(text[1], text[2], text[3], version), _Spec(yaml_text))


def resolve_sync(conn: SyncConnection, node: str | None, name: str, cache: Path | None, label: str) -> dict[str, Any]:
    """``resolve`` over the synchronous connection."""
    from grpclib.const import Status

    from kos.apis.client import APIError, Request

    if (hit := _cached(cache, name)) is not None:
        return hit
    # the Get (an RD id) and the List (for aliases) at once: one round trip
    get, listed = conn.calls([Request(STATE + "Get", _kind_request("meta", RD_TYPE, name.lower()), node),
                              Request(STATE + "List", _kind_request("meta", RD_TYPE), node)])
    if isinstance(get, APIError) and get.status != Status.NOT_FOUND:
        raise _sync_error(get, "Get", "meta", RD_TYPE, name.lower(), label)
    if isinstance(listed, list):
        rds = [_rd_yaml(r) for r in map(light_resource, listed) if r is not None]
        _store(cache, rds)
    found = light_resource(get[0]) if isinstance(get, list) and get else None
    if found is not None:
        return _rd_yaml(found)
    if isinstance(listed, APIError):
        raise _sync_error(listed, "List", "meta", RD_TYPE, None, label)
    return match_definition(name, rds, node or conn.endpoint)


def _sync_error(exc: APIError, method: str, namespace: str, rtype: str, id: str | None, label: str) -> Exception:
    """A failed call's error as the asynchronous path reports it (through the State errors)."""
    from kos.apis.client import state_error
    from kos.resources.core import Pointer

    return _api_error(state_error(exc, method, Pointer(namespace, rtype, id) if id is not None else None), label)


def run_sync(args: argparse.Namespace, t: common.Target) -> int:
    """A table of what is there now, over ``SyncConnection``: the type lookup (unless the
    definition cache answers it), then one Get/List per node, all at once."""
    from kos.apis.client import APIError, Request, SyncConnection
    from kos.apis.kosctl import output

    ctx = t.context
    with SyncConnection.to(t.endpoint, ca=ctx.ca, crt=ctx.crt, key=ctx.key, insecure=t.insecure) as conn:
        first = t.labels()[0]
        cache = None if args.insecure else cache_file(t.endpoint, first, ctx.ca)
        try:
            rd = resolve_sync(conn, first, args.type, cache, t.label(first))
        except APIError as exc:
            raise CLIError(str(exc)) from None
        printer = _printer(output, args, t, "table", "", rd)
        namespace = args.namespace or str(rd.get("defaultNamespace") or "")
        rtype = str(rd.get("type"))
        method = "List" if args.id is None else "Get"
        body = _kind_request(namespace, rtype, args.id)
        # one stream per node, all at once on the one connection (the -n fan-out)
        replies = conn.calls([Request(STATE + method, body, node) for node in t.labels()])
    failed = 0
    for node, reply in zip(t.labels(), replies, strict=True):
        label = t.label(node)
        items = [r for r in map(light_resource, reply) if r is not None] if isinstance(reply, list) else []
        error: Exception | None = None
        if isinstance(reply, APIError):
            error = _sync_error(reply, method, namespace, rtype, args.id, label)
        elif args.id is not None and not items:
            from kos.resources.core import NotFoundError, Pointer

            error = _api_error(NotFoundError(Pointer(namespace, rtype, args.id)), label)
        if error is not None:
            if not isinstance(error, APIError):
                raise error
            failed += 1
            msg = str(error) if node is None or error.node == node else f"{node}: {error}"
            print(f"error: {msg}", file=sys.stderr, flush=True)
            continue
        for r in items:
            printer.add(label, r)
    printer.flush(failed=failed != 0)
    return 1 if failed else 0


def _api_error(exc: Exception, label: str) -> Exception:
    """State errors from GrpcState -> the CLI's one-line API error."""
    from grpclib.const import Status

    from kos.apis.client import AccessDeniedError, APIError
    from kos.resources.core import NotFoundError, StateError

    if isinstance(exc, AccessDeniedError):
        return APIError(label, Status.PERMISSION_DENIED, str(exc).split(": ", 1)[-1])
    if isinstance(exc, NotFoundError):
        return APIError(label, Status.NOT_FOUND, str(exc))
    if isinstance(exc, StateError):
        return APIError(label, Status.INVALID_ARGUMENT, str(exc))
    return exc


async def _get(conn: Connection, node: str | None, t: common.Target, printer: Printer, namespace: str,
               rtype: str, id: str | None, queries: list[LabelQuery]) -> None:
    from kos.apis.client import GrpcState
    from kos.resources.core import Kind, Pointer, StateError

    st = GrpcState(conn, node=node, registry=None)
    label = t.label(node)
    try:
        if id is not None:
            items = [await st.get(Pointer(namespace, rtype, id))]
        else:
            items = await st.list(Kind(namespace, rtype), label_queries=queries)
    except StateError as exc:
        raise _api_error(exc, label) from None
    for r in items:
        printer.add(label, r)


async def _watch(conn: Connection, node: str | None, t: common.Target, printer: Printer, namespace: str,
                 rtype: str, id: str | None, queries: list[LabelQuery]) -> None:
    from grpclib.const import Status

    from kos.apis.client import APIError, GrpcState
    from kos.resources.core import EventType, Kind, Pointer, StateError

    st = GrpcState(conn, node=node, registry=None)
    label = t.label(node)
    names = {EventType.CREATED: "created", EventType.UPDATED: "updated", EventType.DESTROYED: "destroyed"}
    try:
        if id is not None:
            stream = st.watch(Pointer(namespace, rtype, id))
        else:
            stream = st.watch_kind(Kind(namespace, rtype), bootstrap_contents=True, label_queries=queries)
        async with stream as events:
            async for ev in events:
                if ev.type == EventType.ERRORED:
                    raise APIError(label, Status.ABORTED, f"watch failed: {ev.error}")
                if ev.type not in names or ev.resource is None:
                    continue
                if ev.type == EventType.DESTROYED and ev.resource.metadata.version is None:
                    continue  # watching one id that does not exist (yet)
                printer.add(label, ev.resource, names[ev.type])
    except StateError as exc:
        raise _api_error(exc, label) from None
