"""The most expensive State queries the API limits allow, for the latency test and the
``bench.api_hostile`` figure.

``populate(state, n)`` fills the ``user`` namespace with ``n`` Namespace resources carrying
labels every term below is evaluated against; ``largest_query()`` builds ListOptions with the
maximum number of label queries and terms, each query failing only at its last term (so every
term runs for every resource), ``IN`` terms padded with values up to the request size limit,
and an id regexp of the maximum length that matches every id (so it filters nothing out).
"""

from __future__ import annotations

from kos.apis import limits
from kos.apis.gen.cosi import resource as rpb
from kos.resources.core import NamespaceSpec, Resource, State

NS_TYPE = "Namespaces.meta.cosi.dev"
NAMESPACE = "user"
LABELS = {"app": "web", "tier": "front", "zone": "a1"}


async def populate(state: State, n: int) -> None:
    for i in range(n):
        r = Resource.new(NamespaceSpec(description=f"resource {i}"), f"res-{i:05}-{'x' * 40}", namespace=NAMESPACE)
        r.metadata.labels.update(LABELS)
        await state.create(r)


def _regexp() -> str:
    words, size = [], 0
    i = 0
    while True:
        w = f"zq{i:05}y"
        if size + len(w) + 1 + 20 > limits.MAX_REGEXP_BYTES:
            break
        words.append(w)
        size += len(w) + 1
        i += 1
    return "(?:" + "|".join(words) + "|res-[0-9]+)"


def largest_query() -> rpb.ListOptions:
    per_query = limits.MAX_LABEL_TERMS // limits.MAX_LABEL_QUERIES
    queries = []
    for _ in range(limits.MAX_LABEL_QUERIES):
        terms = [rpb.LabelTerm(key=k, op=rpb.LabelTermOperation.IN, value=[v]) for k, v in
                 list(LABELS.items())[: per_query - 1]]
        terms.append(rpb.LabelTerm(key="app", op=rpb.LabelTermOperation.EQUAL, value=["no-such-app"]))
        queries.append(rpb.LabelQuery(terms=terms))
    opts = rpb.ListOptions(label_query=queries, id_query=rpb.IdQuery(regexp=_regexp()))
    # pad the IN terms with distinct values (none matching) up to the size limit: each costs
    # 9 bytes (tag, length, 7 characters); 512 bytes stay for namespace, type and length prefixes
    room = limits.QUERY_REQUEST_BYTES - 512 - len(bytes(list_request(opts)))
    in_terms = [t for q in queries for t in q.terms[:-1]]
    n = 0
    while room >= 9 and any(len(t.value) < limits.MAX_TERM_VALUES for t in in_terms):
        for t in in_terms:
            if room < 9:
                break
            if len(t.value) < limits.MAX_TERM_VALUES:
                t.value.append(f"v{n:06}")
                n += 1
                room -= 9
    assert len(bytes(list_request(opts))) <= limits.QUERY_REQUEST_BYTES
    return opts


def list_request(opts: rpb.ListOptions) -> rpb.ListRequest:
    return rpb.ListRequest(namespace=NAMESPACE, type=NS_TYPE, options=opts)


def watch_request(opts: rpb.ListOptions) -> rpb.WatchRequest:
    return rpb.WatchRequest(
        namespace=NAMESPACE, type=NS_TYPE, api_version=1,
        options=rpb.WatchOptions(bootstrap_contents=True, label_query=opts.label_query, id_query=opts.id_query,
                                 aggregated=True),
    )
