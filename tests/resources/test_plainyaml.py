"""kos.resources.plainyaml.load gives what yaml.safe_load gives, on documents written the ways
kos writes YAML (PyYAML's dumper, kos's dump, the API's spec YAML) and on odd text; and the
documents kosctl reads on every call (kosconfig, specs) stay inside the fast subset."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kos.apis.yamlenc import spec_yaml_text
from kos.resources import plainyaml
from kos.resources.core import dump
from kos.resources.machineconfig import ClientConfig, Context

keys = st.one_of(st.text(min_size=1, max_size=12),
                 st.sampled_from(["a", "id", "yes", "on", "null", "10.5.0.2", "k: v", "-x", "1", "a#b"]))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**20, max_value=10**20),
    st.floats(allow_nan=False), st.text(max_size=20),
    st.sampled_from(["10.5.0.2", "10.5.0.2/24", "127.0.0.1:50000", "fd00::1", "de:fc:ca:ac:ab:45",
                     "00:00:00:00:00:00", "::1", "::1/128", "fd00::2/64", "1:2:3", "2001:0:1", "1::", "a:b",
                     "ab:cd:ef", "yes", "Off", "~", "0x1f", "1_000", "1.5", "2024-01-02", "1:30",
                     ".inf", "- a", "a # b", "a: b", "", " x", "x ", "LS0t+/=", "don't", "a  b", "v1.32.13"]),
)
docs = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(keys, inner, max_size=4)), max_leaves=20)


def _same(text: str) -> None:
    for c_loader, loader in ((False, yaml.SafeLoader), (True, getattr(yaml, "CSafeLoader", yaml.SafeLoader))):
        try:
            expected = yaml.load(text, Loader=loader)
        except yaml.YAMLError:
            with pytest.raises(yaml.YAMLError):
                plainyaml.load(text, c_loader=c_loader)
            continue
        assert plainyaml.load(text, c_loader=c_loader) == expected, text


@given(docs, st.sampled_from([2, 4]), st.booleans())
def test_pyyaml_dumps_read_alike(data: Any, indent: int, flow: bool) -> None:
    _same(yaml.safe_dump(data, indent=indent, default_flow_style=flow, sort_keys=False, allow_unicode=True))


@given(docs)
def test_kos_dumps_read_alike(data: Any) -> None:
    _same(dump(data))
    if isinstance(data, dict):
        _same(spec_yaml_text(_Spec(data)))


@given(st.text(alphabet="ab: -\n#'\"[]{}|>&*!01.\t\r~?,/", max_size=40))
def test_odd_text_reads_alike(text: str) -> None:
    _same(text)


class _Spec:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def to_yaml(self) -> dict[str, Any]:
        return self.data


def test_what_kosctl_reads_on_every_call_is_in_the_subset() -> None:
    cfg = ClientConfig(context="c", contexts={"c": Context(endpoints=["127.0.0.1:42091", "10.5.0.2"],
                                                           nodes=["10.5.0.2"], ca=b"-----BEGIN X-----\n" * 9,
                                                           crt=b"crt" * 99, key=b"key")})
    assert plainyaml.parse_subset(cfg.dump()) == yaml.safe_load(cfg.dump())
    spec = {"hostname": "cp-1", "machineType": "controlplane", "addresses": ["10.5.0.2", "fd00::2"],
            "operationalState": "up", "linkState": True, "mtu": 1500, "hardwareAddr": "de:fc:ca:ac:ab:45",
            "labels": {}, "routes": [{"gateway": "10.5.0.1", "metric": 1024, "none": None}]}
    text = spec_yaml_text(_Spec(spec))
    assert plainyaml.parse_subset(text) == yaml.safe_load(text) == spec


def test_outside_the_subset_is_left_to_pyyaml() -> None:
    for text in ('a: "esc\\tape"\n', "a: [1, 2]\n", "a: |\n  text\n", "a: &x 1\nb: *x\n", "a: 1.5\n",
                 "a: yes\n", "a: 1 # note\n", "--- a\n", "a: 0x10\n"):
        with pytest.raises(plainyaml.OutsideSubset):
            plainyaml.parse_subset(text)
        assert plainyaml.load(text) == yaml.safe_load(text)


@given(st.one_of(st.text(alphabet="0123456789abcdefxoEn:./-+_ '", max_size=16),
                 st.text(alphabet="0123456789aF:/", max_size=18), st.text(alphabet="0123456789abcdefEx_", max_size=8)))
def test_scalars_resolve_alike(value: str) -> None:
    _same(f"k: {value}\n")
    _same(f"- {value}\n")
