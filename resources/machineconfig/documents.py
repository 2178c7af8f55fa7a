"""Multi-document config: the non-v1alpha1 documents, keyed by ``apiVersion``/``kind`` (and
``name`` for named kinds), with the shapes Talos uses for its network documents:

* ``HostnameConfig`` (``hostname`` or ``auto: stable|off``);
* ``LinkConfig`` (``name``, ``up``, ``mtu``, ``addresses[].address``, ``routes[]``);
* ``ResolverConfig`` (``nameservers[].address``, ``searchDomains``);
* ``StaticHostConfig`` (``name`` = IP, ``hostnames``).

``DOCUMENT_KINDS`` maps a kind to its model class; add new kinds there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kos.resources.core.spec import spec_field
from kos.resources.machineconfig.schema import Model


@dataclass
class Document(Model):
    """Base of multi-doc documents: ``apiVersion``/``kind`` are fixed per class."""

    KIND: ClassVar[str] = ""
    API_VERSION: ClassVar[str] = "v1alpha1"
    NAMED: ClassVar[bool] = False

    api_version: str = spec_field(yaml="apiVersion", default="v1alpha1")
    kind: str = spec_field(default="")

    @property
    def doc_name(self) -> str:
        return str(getattr(self, "name", "")) if self.NAMED else ""

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity of the document within a config (two with one key conflict)."""
        return (self.api_version, self.kind, self.doc_name)

    def describe(self) -> str:
        return f"{self.kind} {self.doc_name!r}" if self.NAMED else self.kind


@dataclass
class HostnameConfig(Document):
    KIND: ClassVar[str] = "HostnameConfig"

    hostname: str = spec_field(default="")
    auto: str = spec_field(default="")


@dataclass
class AddressConfig(Model):
    address: str = spec_field(default="")
    route_priority: int = spec_field(default=0)


@dataclass
class RouteConfig(Model):
    destination: str = spec_field(default="")
    gateway: str = spec_field(default="")
    source: str = spec_field(default="")
    mtu: int = spec_field(default=0)
    metric: int = spec_field(default=0)
    table: str = spec_field(default="")


@dataclass
class LinkConfig(Document):
    KIND: ClassVar[str] = "LinkConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    up: bool | None = spec_field(default=None)
    mtu: int = spec_field(default=0)
    addresses: list[AddressConfig] = spec_field(default_factory=list)
    routes: list[RouteConfig] = spec_field(default_factory=list)


@dataclass
class NameserverConfig(Model):
    address: str = spec_field(default="")


@dataclass
class SearchDomains(Model):
    domains: list[str] = spec_field(default_factory=list)
    disable_default: bool | None = spec_field(default=None)


@dataclass
class ResolverConfig(Document):
    KIND: ClassVar[str] = "ResolverConfig"

    nameservers: list[NameserverConfig] = spec_field(default_factory=list)
    search_domains: SearchDomains = spec_field(default_factory=SearchDomains)


@dataclass
class StaticHostConfig(Document):
    KIND: ClassVar[str] = "StaticHostConfig"
    NAMED: ClassVar[bool] = True

    name: str = spec_field(default="")
    hostnames: list[str] = spec_field(default_factory=list)


DOCUMENT_KINDS: dict[str, type[Document]] = {
    cls.KIND: cls for cls in (HostnameConfig, LinkConfig, ResolverConfig, StaticHostConfig)
}


def is_v1alpha1(data: Any) -> bool:
    """A v1alpha1 document has no ``kind`` (it has ``version``/``machine``/``cluster``)."""
    return isinstance(data, dict) and "kind" not in data and "apiVersion" not in data
