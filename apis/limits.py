"""What one API request may cost: every bound the server puts on a request, in one place
(documented in docs/api.md, "Request limits").

A request is checked against these before the work it asks for starts: its size when it is
received (``request_bytes``; over it: RESOURCE_EXHAUSTED), the shape of its label and id
queries after parsing (``check_query``; over a bound: INVALID_ARGUMENT naming the field, the
count and the limit). What stays proportional to the node's own data (matching a query
against every resource of a kind, encoding a long List) runs in slices that yield to the
event loop (``kos.resources.core.inmem``), and requests larger than ``INLINE_PARSE_BYTES``
are parsed in a worker thread, so no single request holds the event loop for long.
"""

from __future__ import annotations

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from kos.resources.core import echo

MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""Largest request message of any method (gRPC's default receive limit)."""

QUERY_REQUEST_BYTES = 64 * 1024
"""Largest request of the State methods that name or query resources (Get, List, Watch,
Destroy, Teardown, TeardownAndDestroy)."""

WRITE_REQUEST_BYTES = 1024 * 1024
"""Largest Create or Update request (one resource)."""

INLINE_PARSE_BYTES = 16 * 1024
"""Requests larger than this are parsed in a worker thread, not on the event loop."""

MAX_LABEL_QUERIES = 16
"""Label queries (ORed) in one List or Watch."""

MAX_LABEL_TERMS = 64
"""Label terms in one List or Watch, all its queries together."""

MAX_TERM_VALUES = 256
"""Values of one label term (``IN``)."""

MAX_LABEL_BYTES = 1024
"""Longest label key or value in a term (Kubernetes allows 317 for a key, 63 for a value)."""

MAX_REGEXP_BYTES = 4096
"""Longest ``id_query.regexp`` (UTF-8 bytes)."""

_STATE = "/cosi.resource.State/"
_PER_METHOD = {
    **{_STATE + m: QUERY_REQUEST_BYTES for m in ("Get", "List", "Watch", "Destroy", "Teardown", "TeardownAndDestroy")},
    **{_STATE + m: WRITE_REQUEST_BYTES for m in ("Create", "Update")},
}


def request_bytes(method: str) -> int:
    """The largest request ``method`` accepts."""
    return _PER_METHOD.get(method, MAX_REQUEST_BYTES)


def check_size(method: str, size: int) -> None:
    limit = request_bytes(method)
    if size > limit:
        raise GRPCError(
            Status.RESOURCE_EXHAUSTED,
            f"request of {size} bytes exceeds the limit of {limit} bytes for {method.rsplit('/', 1)[-1]}",
        )


def _invalid(where: str, what: str, count: int, limit: int) -> GRPCError:
    return GRPCError(Status.INVALID_ARGUMENT, f"{where}: {count} {what} exceed the limit of {limit}")


def check_query(label_queries: list[list[tuple[str, list[str]]]], regexp: str, where: str = "options") -> None:
    """Bounds of a List/Watch query: ``label_queries`` as [[(key, values), ...], ...]."""
    if len(label_queries) > MAX_LABEL_QUERIES:
        raise _invalid(f"{where}.label_query", "label queries", len(label_queries), MAX_LABEL_QUERIES)
    terms = sum(len(q) for q in label_queries)
    if terms > MAX_LABEL_TERMS:
        raise _invalid(f"{where}.label_query", "terms (all queries together)", terms, MAX_LABEL_TERMS)
    for qi, q in enumerate(label_queries):
        for ti, (key, values) in enumerate(q):
            at = f"{where}.label_query[{qi}].terms[{ti}]"
            if len(values) > MAX_TERM_VALUES:
                raise _invalid(f"{at}.value", "values", len(values), MAX_TERM_VALUES)
            for text, field in [(key, "key"), *((v, f"value[{vi}]") for vi, v in enumerate(values))]:
                if len(text.encode()) > MAX_LABEL_BYTES:
                    raise GRPCError(
                        Status.INVALID_ARGUMENT,
                        f"{at}.{field}: {echo(text)} is longer than {MAX_LABEL_BYTES} bytes",
                    )
    if len(regexp.encode()) > MAX_REGEXP_BYTES:
        raise GRPCError(
            Status.INVALID_ARGUMENT,
            f"{where}.id_query.regexp: {len(regexp.encode())} bytes exceed the limit of {MAX_REGEXP_BYTES}: "
            f"{echo(regexp)}",
        )
