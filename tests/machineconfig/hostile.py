"""Hostile config inputs for the fuzz test and bench/config_hostile.py: hypothesis strategies
for raw bytes, random YAML trees, alias graphs (fan-out bombs, self references), deep
nesting, huge scalars and type-confused mutations of a valid generated config; and
``exercise(data)``, which drives every config entry point (load, validate in all modes,
output, redaction, views, diff, patches) and lets only the config error types escape."""

from __future__ import annotations

import functools
from typing import Any

import yaml
from hypothesis import strategies as st

from kos.resources import machineconfig as mc
from kos.resources.machineconfig import views

CONFIG_ERRORS = (mc.ConfigErrors, mc.PatchError)


@functools.cache
def base_configs() -> tuple[str, str]:
    g = mc.generate(mc.GenOptions("fuzz", "https://10.5.0.2:6443"), mc.SecretsBundle.generate())
    return g.controlplane.to_yaml(), g.worker.to_yaml()


# -- strategies -----------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", "0o644", "10.0.0.1/24", "https://x:6443", "eth0", "yes", "~", "1e999", "0x1F",
                     "2001-12-14", "!!binary", "controlplane", "worker", "v1alpha1", "LinkConfig", "$patch",
                     "delete", "replace", ".nan", "-.inf", "9" * 50]),
)
_keys = st.one_of(st.text(max_size=12), st.sampled_from(
    ["version", "machine", "cluster", "type", "network", "interfaces", "kind", "apiVersion", "name", "$patch",
     "addresses", "routes", "mtu", "hostname", "kubelet", "extraArgs", "sysctls", "install", "disk", "vip", "ip",
     "podSubnets", "admissionControl", "auditPolicy", "apiServer", "certSANs", "files", "<<", "1", "true"]),
    st.integers(-5, 5), st.booleans())
trees = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(_keys, inner, max_size=5)), max_leaves=30)


@st.composite
def yaml_trees(draw: st.DrawFn) -> str:
    """A random tree dumped as YAML, sometimes inside a v1alpha1 or multi-doc envelope."""
    tree = draw(trees)
    envelope = draw(st.sampled_from(["bare", "machine", "cluster", "kind", "multi"]))
    if envelope == "machine":
        tree = {"version": "v1alpha1", "machine": tree}
    elif envelope == "cluster":
        tree = {"version": "v1alpha1", "machine": {"type": "worker"}, "cluster": tree}
    elif envelope == "kind":
        tree = {"apiVersion": "v1alpha1", "kind": draw(st.sampled_from(sorted(mc.DOCUMENT_KINDS))), "name": "x",
                **(tree if isinstance(tree, dict) else {"value": tree})}
    if envelope == "multi":
        return yaml.safe_dump_all([tree, draw(trees)], allow_unicode=True)
    return yaml.safe_dump(tree, allow_unicode=True)


@st.composite
def alias_graphs(draw: st.DrawFn) -> str:
    """Anchors referring to earlier anchors (fan-out bombs) or to themselves."""
    n = draw(st.integers(1, 12))
    fan = draw(st.integers(1, 12))
    lines = [f"a0: &a0 [{', '.join(['lol'] * fan)}]"]
    for i in range(1, n):
        refs = [f"*a{draw(st.integers(0, i))}" for _ in range(fan)]  # i itself: self reference
        lines.append(f"a{i}: &a{i} [{', '.join(refs)}]")
    body = "\n".join(lines)
    if draw(st.booleans()):
        indented = "\n".join("      " + line for line in body.splitlines())
        return f"version: v1alpha1\nmachine:\n  type: worker\n  kubelet:\n    extraConfig:\n{indented}\n"
    return body + "\n"


@st.composite
def deep_nesting(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 3000))
    style = draw(st.sampled_from(["flow-list", "flow-map", "block"]))
    if style == "flow-list":
        return "a: " + "[" * depth + "]" * depth + "\n"
    if style == "flow-map":
        return "a: " + "{b: " * depth + "1" + "}" * depth + "\n"
    return "".join("  " * i + f"k{i}:\n" for i in range(min(depth, 400))) + "  " * min(depth, 400) + "v\n"


@st.composite
def huge_scalars(draw: st.DrawFn) -> str:
    n = draw(st.integers(1, 20000))
    kind = draw(st.sampled_from(["int", "negint", "octal", "float", "str", "key", "hex"]))
    value = {"int": "9" * n, "negint": "-" + "1" * n, "octal": "0o" + "7" * n, "float": "1." + "5" * n + "e5",
             "str": "x" * n, "key": "k" * n, "hex": "0x" + "f" * n}[kind]
    where = draw(st.sampled_from(["machine.token", "machine.install.disk", "machine.kubelet.extraConfig.v",
                                  "machine.files", "cluster.network.dnsDomain", "cluster.clusterName"]))
    if kind == "key":
        return f"version: v1alpha1\nmachine:\n  type: worker\n  {value}: 1\n"
    head, *rest = where.split(".")
    text, indent = f"version: v1alpha1\n{head}:\n", "  "
    for part in rest[:-1]:
        text += f"{indent}{part}:\n"
        indent += "  "
    return text + f"{indent}{rest[-1]}: {value}\n"


def _set_path(data: Any, path: list[Any], value: Any) -> Any:
    if not path:
        return value
    head, *rest = path
    if isinstance(data, dict) and data:
        key = list(data)[head % len(data)]
        data[key] = _set_path(data[key], rest, value)
    elif isinstance(data, list) and data:
        data[head % len(data)] = _set_path(data[head % len(data)], rest, value)
    return data


@st.composite
def mutated_configs(draw: st.DrawFn) -> str:
    """A valid generated config with one value somewhere replaced by a random tree."""
    cp, wk = base_configs()
    docs = list(yaml.safe_load_all(draw(st.sampled_from([cp, wk]))))
    path = draw(st.lists(st.integers(0, 40), min_size=1, max_size=6))
    docs[0] = _set_path(docs[0], path, draw(trees))
    return yaml.safe_dump_all(docs, allow_unicode=True)


hostile_inputs = st.one_of(
    st.binary(max_size=300), st.text(max_size=300), yaml_trees(), alias_graphs(), deep_nesting(), huge_scalars(),
    mutated_configs(), mutated_configs(),
)


# -- the entry points ---------------------------------------------------------------------------


def exercise(data: str | bytes) -> str:
    """Drive every config entry point with ``data``; returns how far it got ("rejected at
    load", ...). Any exception other than the config error types propagates."""
    cp, _ = base_configs()
    base = mc.ConfigContainer.load(cp)
    try:
        c = mc.ConfigContainer.load(data)
    except mc.ConfigErrors as exc:
        assert str(exc)  # the message renders (bounded)
        outcome = "rejected at load"
    else:
        lenient = mc.ConfigContainer.load(data, strict=False)
        for mode in mc.MODES:
            try:
                c.validate(mode)
            except mc.ConfigErrors as exc:
                assert str(exc)
        text = c.to_yaml()
        assert mc.ConfigContainer.load(text, strict=False) is not None
        c.redacted().to_yaml()
        lenient.to_yaml()
        mc.config_diff(base, c)
        mc.changed_paths(base, c)
        mc.reboot_required(base, c)
        views.links(c), views.hostname(c), views.nameservers(c), views.search_domains(c)
        views.static_hosts(c), views.time_servers(c)
        outcome = "loaded"
    # the same input as a patch on a valid config
    try:
        patch = mc.parse_patch(data)
        patched = mc.apply_patches(base.to_data(), [patch])
        mc.ConfigContainer.from_data(patched, strict=False)
    except CONFIG_ERRORS:
        pass
    return outcome


def worst_inputs() -> dict[str, str]:
    """The most expensive inputs the limits let through to full decoding and validation (each
    is rejected), plus the classic attacks, for the event-loop test and the bench."""
    from kos.resources.machineconfig import yamlio

    cp, _ = base_configs()
    room = yamlio.MAX_EXPANDED - 4 * len(cp)
    n_ints = room // (yamlio.NODE_COST + 2)
    n_addr = room // (yamlio.NODE_COST * 3 + 40)
    links = "".join(
        f"---\napiVersion: v1alpha1\nkind: LinkConfig\nname: eth{d}\naddresses:\n"
        + "".join(f"  - address: bad-{d}-{i}\n" for i in range(n_addr // 200)) for d in range(200))
    laughs = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi",
                                                                                     strict=True))
    bomb = "".join("      " + line + "\n" for line in laughs.splitlines())
    return {
        "wrong types (most values allowed)": cp.replace("certSANs:", "certSANs: [" + ", ".join(["1"] * n_ints)
                                                + "]\n  oldCertSANs:", 1),
        "bad addresses (200 docs)": cp + links,
        "alias bomb": cp.replace("  kubelet:\n", "  kubelet:\n    extraConfig:\n" + bomb, 1),
        "deep nesting": cp + "---\n" + "a: " + "[" * 100000 + "]" * 100000 + "\n",
        "100k documents": "---\n".join(["apiVersion: v1alpha1\nkind: Nope\n"] * 100000),
    }
