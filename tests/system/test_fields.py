"""Every field of the config schema is either read by a controller or marked unsupported with
a reason (``kos.controllers.system.fields``); what a config sets but the node does not act on
is listed with its reason."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from kos.controllers.system import (
    FIELDS,
    SUBFIELDS,
    Host,
    Identity,
    Reads,
    Unsupported,
    entry,
    fields_reference,
    not_acted_on,
    schema_paths,
)
from kos.resources.machineconfig import ConfigContainer

ALL_PATHS = schema_paths()


def test_the_schema_is_walked() -> None:
    assert "machine.sysctls" in ALL_PATHS and "cluster.allowSchedulingOnControlPlanes" in ALL_PATHS
    assert "machine.files[].path" in ALL_PATHS and "LinkConfig.routes[].gateway" in ALL_PATHS
    assert len(ALL_PATHS) > 150


def test_every_schema_field_has_a_consumer_or_a_reason() -> None:
    missing = [p for p in ALL_PATHS if entry(p) is None]
    assert not missing, f"config fields neither read by a controller nor marked unsupported: {missing}"


def test_no_entry_for_a_field_that_does_not_exist() -> None:
    """(Entries of a document kind this tree does not define yet are allowed: they wait for it.)"""
    kinds = {p.split(".", 1)[0] for p in ALL_PATHS if p[:1].isupper()}
    stale = sorted(p for p in set(FIELDS) - set(ALL_PATHS) if not p[:1].isupper() or p.split(".", 1)[0] in kinds)
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


DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_the_docs_table_is_the_registry() -> None:
    table = fields_reference()
    assert "| `machine.sysctls` | acted on (`controllers.system.render`)" in table
    assert table in DOC.read_text(), "regenerate the table in docs/config.md from fields_reference()"


def test_talos_generated_configs_do_not_warn_about_host_dns() -> None:
    """Every ``talosctl gen config`` since 1.8 turns host DNS on (with forwardKubeDNSToHost): kos
    acts on it, so importing such a config reports nothing about it."""
    from kos.controllers.network.hostdns import host_dns_config
    from tests.machineconfig.talos_fixtures import talos_configs

    seen = 0
    for name, text in sorted(talos_configs().items()):
        c = load(text)
        assert not [p for p, _ in not_acted_on(c, Host(shared_kernel=True)) if "hostDNS" in p], name
        spec = host_dns_config(c, None)
        if name.split()[0] in ("v1.8", "v1.10", "v1.12", "v1.14"):
            assert spec is not None and spec.forward_kube_dns_to_host, name
            assert spec.listen_addresses == ["127.0.0.53:53", "169.254.116.108:53"]
            seen += 1
    assert seen >= 8
