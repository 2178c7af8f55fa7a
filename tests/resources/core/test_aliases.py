"""Resource type aliases are unique on a node (issue 15 item 11).

COSI's Fill() gives every type its aliases by itself, so across a node's ~80 types they
collide (``as``: AddressSpecs and AddressStatuses). The registry settles each collision the
same way whatever the registration order: an explicit alias wins; an automatic alias claimed
by several types is dropped from all of them, and resolving it names the candidates."""

from __future__ import annotations

import importlib
import itertools
import pkgutil
import re

import pytest

import kos.resources
from kos.resources.core import REGISTRY, AmbiguousTypeError, Registry, ResourceDefinition, automatic_aliases


def _registry(*decls: tuple[str, tuple[str, ...]]) -> Registry:
    reg = Registry()
    for type, aliases in decls:
        reg.register(ResourceDefinition.make(type, "n", aliases=aliases), object)
    return reg


def test_every_alias_of_the_catalogue_names_one_type() -> None:
    for m in pkgutil.walk_packages(kos.resources.__path__, "kos.resources."):
        importlib.import_module(m.name)
    owners: dict[str, set[str]] = {}
    for d in REGISTRY:
        owners.setdefault(d.id, set()).add(d.type)
        for a in d.all_aliases:
            owners.setdefault(a, set()).add(d.type)
    shared = {a: sorted(t) for a, t in owners.items() if len(t) > 1}
    assert shared == {}
    assert len(REGISTRY) >= 70
    # what the issue found colliding is now an error naming the candidates
    for alias, want in [("as", {"AddressSpecs.net.kos.dev", "AddressStatuses.net.kos.dev"}),
                        ("ecs", {"EtcdCerts.secrets.kos.dev", "EtcdConfigs.etcd.kos.dev"}),
                        ("kcs", {"KubeletConfigs.k8s.kos.dev", "KubernetesCerts.secrets.kos.dev"}),
                        ("hs", {"HostnameSpecs.net.kos.dev", "HostnameStatuses.net.kos.dev"}),
                        ("ls", {"LinkSpecs.net.kos.dev", "LinkStatuses.net.kos.dev"})]:
        with pytest.raises(AmbiguousTypeError) as info:
            REGISTRY.resolve(alias.upper())
        assert set(info.value.candidates) == want
        assert all(t in str(info.value) for t in want)
    # unique automatic aliases and the explicit ones still resolve
    assert REGISTRY.resolve("addressspec").type == "AddressSpecs.net.kos.dev"
    assert REGISTRY.resolve("ns").type == "Namespaces.meta.cosi.dev"


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_shared_automatic_alias_is_dropped_from_all_whatever_the_order(order: tuple[int, ...]) -> None:
    decls = [("AddressSpecs.net.kos.dev", ()), ("AddressStatuses.net.kos.dev", ()), ("Links.net.kos.dev", ())]
    reg = _registry(*(decls[i] for i in order))
    spec, status = reg.definition("AddressSpecs.net.kos.dev"), reg.definition("AddressStatuses.net.kos.dev")
    assert spec is not None and status is not None
    assert spec.aliases == ("addressspec",) and "as" not in spec.all_aliases
    assert status.aliases == ("addressstatus",) and "as" not in status.all_aliases
    assert reg.ambiguous() == {"as": ("AddressSpecs.net.kos.dev", "AddressStatuses.net.kos.dev")}
    with pytest.raises(AmbiguousTypeError, match=re.escape("AddressSpecs.net.kos.dev, AddressStatuses.net.kos.dev")):
        reg.resolve("as")
    with pytest.raises(LookupError, match="not registered"):
        reg.resolve("nothing")
    # Fill() itself is unchanged
    assert "as" in automatic_aliases("AddressSpecs.net.kos.dev")


def test_an_explicit_alias_wins_over_automatic_ones() -> None:
    reg = _registry(("NetworkStatuses.net.kos.dev", ()), ("Namespaces.meta.cosi.dev", ("ns",)))
    assert reg.resolve("ns").type == "Namespaces.meta.cosi.dev"
    net = reg.definition("NetworkStatuses.net.kos.dev")
    assert net is not None and "ns" not in net.all_aliases
    assert reg.ambiguous() == {}


def test_explicit_claims_that_collide_are_refused_at_registration() -> None:
    reg = _registry(("Namespaces.meta.cosi.dev", ("ns",)))
    with pytest.raises(ValueError, match=re.escape("alias 'ns' is already Namespaces.meta.cosi.dev's alias")):
        reg.register(ResourceDefinition.make("Nodes.xy.kos.dev", "n", aliases=["ns"]), object)
    with pytest.raises(ValueError, match="id"):
        reg.register(ResourceDefinition.make("Others.xy.kos.dev", "n", aliases=["namespaces.meta.cosi.dev"]), object)
