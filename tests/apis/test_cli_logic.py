"""Properties of kosctl's pure logic: label selectors mean what Kubernetes selectors mean (as
COSI label queries), the JSONPath subset indexes like Python, endpoints and durations parse
back what was written, and bad input is refused naming the option."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kos.apis.endpoint import split_endpoint
from kos.apis.kosctl.commands.get import parse_output, parse_selectors
from kos.apis.kosctl.common import parse_duration
from kos.apis.kosctl.errors import CLIError
from kos.apis.kosctl.output import evaluate, parse_jsonpath, render

KEYS = st.sampled_from(["env", "tier", "kos.dev/role", "size"])
VALUES = st.sampled_from(["a", "b", "prod", "dev-1"])
LABELS = st.dictionaries(KEYS, VALUES, max_size=4)


@st.composite
def selector_terms(draw: st.DrawFn) -> tuple[str, Any]:
    """(selector text, reference predicate over a label dict)."""
    k = draw(KEYS)
    kind = draw(st.sampled_from(["eq", "ne", "exists", "absent", "in", "notin"]))
    if kind in ("eq", "ne"):
        v = draw(VALUES)
        if kind == "eq":
            return f"{k}={v}", lambda labels: labels.get(k) == v
        return f"{k}!={v}", lambda labels: labels.get(k) != v
    if kind == "exists":
        return k, lambda labels: k in labels
    if kind == "absent":
        return f"!{k}", lambda labels: k not in labels
    vs = draw(st.lists(VALUES, min_size=1, max_size=3, unique=True))
    text = f"{k} {kind} ({', '.join(vs)})"
    if kind == "in":
        return text, lambda labels: labels.get(k) in vs
    return text, lambda labels: labels.get(k) not in vs


@given(st.lists(selector_terms(), min_size=1, max_size=4), LABELS, st.booleans())
def test_selectors_match_like_kubernetes(terms: list[tuple[str, Any]], labels: dict[str, str], one: bool) -> None:
    texts = [t for t, _ in terms]
    queries = parse_selectors([",".join(texts)] if one else texts)
    assert len(queries) == 1
    assert queries[0].matches(labels) == all(pred(labels) for _, pred in terms)


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.sampled_from(["<", "<=", ">", ">="]))
def test_numeric_selectors(label: int, bound: int, op: str) -> None:
    (q,) = parse_selectors([f"size{op}{bound}"])
    expected = {"<": label < bound, "<=": label <= bound, ">": label > bound, ">=": label >= bound}[op]
    assert q.matches({"size": str(label)}) == expected
    assert not q.matches({})  # a missing key never satisfies a numeric comparison


@pytest.mark.parametrize("bad", ["a=b=c", "k in ()", "size<lots", "(", "a b"])
def test_bad_selectors_name_the_option(bad: str) -> None:
    with pytest.raises(CLIError, match="--selector"):
        parse_selectors([bad])


JSON = st.recursive(
    st.one_of(st.integers(), st.text(max_size=5), st.booleans()),
    lambda inner: st.one_of(st.lists(inner, min_size=1, max_size=3),
                            st.dictionaries(st.sampled_from(["a", "b", "c-d", "e_f"]), inner, min_size=1, max_size=3)),
    max_leaves=10,
)


@st.composite
def paths_into(draw: st.DrawFn, data: Any) -> tuple[str, Any]:
    """A JSONPath into ``data`` and the value it names."""
    text = ""
    while isinstance(data, dict | list) and draw(st.booleans()):
        if isinstance(data, dict):
            k = draw(st.sampled_from(sorted(data)))
            text += f".{k}"
            data = data[k]
        else:
            i = draw(st.integers(0, len(data) - 1))
            text += f"[{i}]"
            data = data[i]
    return "{" + (text or ".") + "}", data


@given(st.data())
def test_jsonpath_indexes_like_python(data: st.DataObject) -> None:
    doc = {"spec": data.draw(JSON)}
    path, value = data.draw(paths_into(doc))
    (parsed,) = parse_jsonpath(path)
    assert isinstance(parsed, list)
    assert evaluate(parsed, doc) == [value]


def test_jsonpath_wildcards_quotes_and_literal_text() -> None:
    doc = {"spec": {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "k.with.dots": 1}}
    assert render(parse_jsonpath("{.spec.addresses[*].ip}"), doc) == "10.0.0.1 10.0.0.2"
    assert render(parse_jsonpath("x={.spec['k.with.dots']}!"), doc) == "x=1!"
    assert render(parse_jsonpath("{.spec.addresses[-1].ip}"), doc) == "10.0.0.2"
    assert render(parse_jsonpath("{.spec.missing}"), doc) == ""
    with pytest.raises(CLIError, match="jsonpath"):
        parse_jsonpath("{.spec[}")


def test_output_formats() -> None:
    assert parse_output("yaml") == ("yaml", "")
    assert parse_output("jsonpath={.metadata.id}") == ("jsonpath", "{.metadata.id}")
    for bad in ("xml", "jsonpath", "yaml=x"):
        with pytest.raises(CLIError, match="--output"):
            parse_output(bad)


HOSTS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,5}){0,2}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)


@given(HOSTS, st.one_of(st.none(), st.integers(0, 65535)))
def test_endpoints_round_trip(host: str, port: int | None) -> None:
    v6 = ":" in host
    if port is None:
        text = host  # a bare IPv6 address needs no brackets
        assert split_endpoint(text, 50000) == (host, 50000)
    else:
        text = f"[{host}]:{port}" if v6 else f"{host}:{port}"
        got_host, got_port = split_endpoint(text, 50000)
        assert got_port == port
        assert (ipaddress.ip_address(got_host) == ipaddress.ip_address(host)) if v6 else got_host == host


@pytest.mark.parametrize("bad", ["", ":50000", "host:99999", "host:port", "[::1]:x"])
def test_bad_endpoints(bad: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        split_endpoint(bad, 50000)


@given(st.integers(0, 3), st.integers(0, 59), st.integers(1, 59))
def test_durations(h: int, m: int, s: int) -> None:
    text = (f"{h}h" if h else "") + (f"{m}m" if m else "") + f"{s}s"
    assert parse_duration(text, "--x") == h * 3600 + m * 60 + s
    assert parse_duration(str(s), "--x") == s


@pytest.mark.parametrize("bad", ["", "0", "5x", "1h-2m", "-3s", "m"])
def test_bad_durations_name_the_option(bad: str) -> None:
    with pytest.raises(CLIError, match="--crt-ttl"):
        parse_duration(bad, "--crt-ttl")


@pytest.mark.parametrize("grouped", [False, True])
def test_cluster_bring_up_api_errors_become_cli_errors(monkeypatch: pytest.MonkeyPatch, grouped: bool) -> None:
    """A node that goes away while `cluster create` waits ends the command with a message
    naming the node and the status, not a traceback (plain or inside a task group)."""
    from grpclib.const import Status

    from kos.apis.client import APIError
    from kos.apis.kosctl.commands import cluster

    gone = APIError("10.5.0.3", Status.UNAVAILABLE, "lost in the middle of the call: the node went away")

    async def bring_up(*_: Any) -> bool:
        raise ExceptionGroup("checks", [gone]) if grouped else gone

    monkeypatch.setattr(cluster, "_bring_up", bring_up)
    with pytest.raises(CLIError, match=r"bringing the cluster up: 10\.5\.0\.3: UNAVAILABLE: lost"):
        cluster._run_bring_up(Any, None, {}, "")  # type: ignore[arg-type]
