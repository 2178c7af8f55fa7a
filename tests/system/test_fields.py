"""Every field of the config schema is either read by a controller or marked unsupported with
a reason (``kos.controllers.system.fields``); what a config sets but the node does not act on
is listed with its reason."""

from __future__ import annotations

import ast
import importlib
import inspect
import typing

import pytest

from kos.controllers.system import FIELDS, SUBFIELDS, Host, Identity, Reads, Unsupported, entry, not_acted_on
from kos.resources.machineconfig import DOCUMENT_KINDS, Config, ConfigContainer
from kos.resources.machineconfig.schema import Model


def schema_paths(cls: type[Model], prefix: str = "") -> list[str]:
    """Every leaf of a config model: nested models are walked, list items get ``[]``."""
    out: list[str] = []
    hints = typing.get_type_hints(cls)
    for key, attr in cls.yaml_keys().items():
        tp = hints[attr]
        path = f"{prefix}.{key}" if prefix else key
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if isinstance(tp, type) and issubclass(tp, Model):
            out += schema_paths(tp, path)
        elif typing.get_origin(tp) is list and isinstance(args[0], type) and issubclass(args[0], Model):
            out += schema_paths(args[0], path + "[]")
        else:
            out.append(path)
    return out


ALL_PATHS = schema_paths(Config) + [p for kind, cls in DOCUMENT_KINDS.items() for p in schema_paths(cls, kind)]


def test_the_schema_is_walked() -> None:
    assert "machine.sysctls" in ALL_PATHS and "cluster.allowSchedulingOnControlPlanes" in ALL_PATHS
    assert "machine.files[].path" in ALL_PATHS and "LinkConfig.routes[].gateway" in ALL_PATHS
    assert len(ALL_PATHS) > 150


def test_every_schema_field_has_a_consumer_or_a_reason() -> None:
    missing = [p for p in ALL_PATHS if entry(p) is None]
    assert not missing, f"config fields neither read by a controller nor marked unsupported: {missing}"


def test_no_entry_for_a_field_that_does_not_exist() -> None:
    stale = sorted(set(FIELDS) - set(ALL_PATHS))
    assert not stale, f"registry entries for fields the schema does not have: {stale}"


def test_unsupported_fields_say_why() -> None:
    for path, e in [*FIELDS.items(), *SUBFIELDS.items()]:
        if isinstance(e, Unsupported | Identity):
            assert len(e.reason) > 15, path


def _names_read(module_name: str) -> set[str]:
    """Attribute names, string constants and keyword/argument names used by a module."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
        elif isinstance(node, ast.Name):
            names.add(node.id)
    return names


@pytest.mark.parametrize("path", sorted(p for p, e in FIELDS.items() if isinstance(e, Reads)))
def test_the_consumer_reads_the_field(path: str) -> None:
    e = FIELDS[path]
    assert isinstance(e, Reads)
    assert e.name in _names_read(e.module), f"{path}: {e.module} does not read {e.name!r}"


def load(text: str) -> ConfigContainer:
    return ConfigContainer.load(text, strict=False)


def test_set_but_unsupported_fields_are_listed_with_reasons() -> None:
    c = load("""
version: v1alpha1
machine:
  type: worker
  sysctls: {net.ipv4.ip_forward: "1", kernel.pid_max: "65536"}
  sysfs: {kernel.mm.transparent_hugepage.enabled: never}
  udev: {rules: ['SUBSYSTEM=="drm", GROUP="video"']}
  kernel: {modules: [{name: br_netfilter}]}
  features: {kubePrism: {enabled: true, port: 7445}, rbac: true}
  install: {extraKernelArgs: [console=ttyS0]}
  registries:
    mirrors: {docker.io: {endpoints: ["http://127.0.0.1:5000"], skipFallback: true}}
cluster: {}
""")
    namespace = dict(not_acted_on(c, Host(shared_kernel=True)))
    assert "kernel.pid_max" in namespace["machine.sysctls"] and "net.ipv4" not in namespace["machine.sysctls"]
    assert "host's kernel" in namespace["machine.sysfs"]
    for p in ("machine.udev", "machine.kernel", "machine.install.extraKernelArgs",
              "machine.registries.mirrors.*.skipFallback"):
        assert namespace[p], p
    assert "machine.features.rbac" not in namespace  # true is what kos does anyway
    assert "machine.features.kubePrism.enabled" not in namespace  # kos runs it
    vm = dict(not_acted_on(c, Host(shared_kernel=False)))
    assert "machine.sysctls" not in vm and "machine.sysfs" not in vm
    assert "machine.udev" in vm


def test_a_config_of_supported_fields_lists_nothing() -> None:
    c = load("""
version: v1alpha1
machine:
  type: worker
  sysctls: {net.ipv4.ip_forward: "1"}
  env: {HTTP_PROXY: "http://proxy:3128"}
  files: [{path: /var/etc/x.conf, content: x, op: create, permissions: 0o644}]
  logging: {destinations: [{endpoint: "udp://127.0.0.1:5514/", format: json_lines}]}
  features: {rbac: true}
cluster: {}
""")
    assert not_acted_on(c, Host(shared_kernel=True)) == []
