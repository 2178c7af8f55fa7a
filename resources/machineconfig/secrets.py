"""The secrets bundle of a cluster (``secrets.yaml``): cluster id and secret, bootstrap
token, secretbox key, trustd (machine) token, and the OS, etcd, Kubernetes and aggregator
CAs plus the service-account key. Field names follow Talos's secrets bundle."""

from __future__ import annotations

import base64
import datetime
import secrets as _secrets
import string
from dataclasses import dataclass

from kos.resources.core import spec_field
from kos.resources.machineconfig import yamlio
from kos.resources.machineconfig.schema import Decoder, Model
from kos.resources.machineconfig.v1alpha1 import PEMEncodedCertificateAndKey, PEMEncodedKey
from kos.resources.pki import generate_ca, generate_private_key, private_key_pem

_TOKEN_ALPHABET = string.ascii_lowercase + string.digits


def random_token() -> str:
    """A token of the form ``[a-z0-9]{6}.[a-z0-9]{16}`` (Kubernetes bootstrap token shape)."""
    pick = _secrets.choice
    return "".join(pick(_TOKEN_ALPHABET) for _ in range(6)) + "." + "".join(pick(_TOKEN_ALPHABET) for _ in range(16))


def random_b64(n: int = 32) -> str:
    return base64.b64encode(_secrets.token_bytes(n)).decode()


@dataclass
class ClusterSecrets(Model):
    id: str = spec_field(default="")
    secret: str = spec_field(default="", sensitive=True)


@dataclass
class Secrets(Model):
    bootstrap_token: str = spec_field(yaml="bootstraptoken", default="", sensitive=True)
    secretbox_encryption_secret: str = spec_field(yaml="secretboxencryptionsecret", default="", sensitive=True)
    aescbc_encryption_secret: str = spec_field(yaml="aescbcencryptionsecret", default="", sensitive=True)


@dataclass
class TrustdInfo(Model):
    token: str = spec_field(default="", sensitive=True)


@dataclass
class Certs(Model):
    etcd: PEMEncodedCertificateAndKey = spec_field(default_factory=PEMEncodedCertificateAndKey)
    k8s: PEMEncodedCertificateAndKey = spec_field(default_factory=PEMEncodedCertificateAndKey)
    k8s_aggregator: PEMEncodedCertificateAndKey = spec_field(yaml="k8saggregator",
                                                             default_factory=PEMEncodedCertificateAndKey)
    k8s_service_account: PEMEncodedKey = spec_field(yaml="k8sserviceaccount", default_factory=PEMEncodedKey)
    os: PEMEncodedCertificateAndKey = spec_field(default_factory=PEMEncodedCertificateAndKey)


@dataclass
class SecretsBundle(Model):
    cluster: ClusterSecrets = spec_field(default_factory=ClusterSecrets)
    secrets: Secrets = spec_field(default_factory=Secrets)
    trustd_info: TrustdInfo = spec_field(yaml="trustdinfo", default_factory=TrustdInfo)
    certs: Certs = spec_field(default_factory=Certs)

    @classmethod
    def generate(cls, *, key_type: str = "ecdsa", ttl: datetime.timedelta = datetime.timedelta(days=3650)) -> \
            SecretsBundle:
        """Fresh random secrets and CAs (ECDSA P-256 by default)."""
        pem = PEMEncodedCertificateAndKey.from_pair
        return cls(
            cluster=ClusterSecrets(id=random_b64(32), secret=random_b64(32)),
            secrets=Secrets(bootstrap_token=random_token(), secretbox_encryption_secret=random_b64(32)),
            trustd_info=TrustdInfo(token=random_token()),
            certs=Certs(
                etcd=pem(generate_ca("etcd", organization="etcd", ttl=ttl, key_type=key_type)),
                k8s=pem(generate_ca("kubernetes", organization="kubernetes", ttl=ttl, key_type=key_type)),
                k8s_aggregator=pem(generate_ca("front-proxy", ttl=ttl, key_type=key_type)),
                k8s_service_account=PEMEncodedKey(
                    base64.b64encode(private_key_pem(generate_private_key(key_type))).decode()
                ),
                os=pem(generate_ca("kos", organization="kos", ttl=ttl, key_type=key_type)),
            ),
        )

    @classmethod
    def load(cls, text: str | bytes) -> SecretsBundle:
        """Parse ``secrets.yaml`` strictly; raises ``ConfigErrors`` naming missing parts."""
        docs = yamlio.load_all(text, what="secrets bundle")
        dec = Decoder(strict=True)
        if len(docs) != 1:
            dec.error("", f"{len(docs)} documents", "exactly one YAML document")
            dec.raise_if_errors("secrets bundle")
        bundle = cls.decode(docs[0], "", dec)
        for path, value in bundle.required_fields():
            if not value:
                dec.error(path, None, "a non-empty value")
        dec.raise_if_errors("secrets bundle")
        return bundle

    def required_fields(self) -> list[tuple[str, str]]:
        c = self.certs
        return [
            ("cluster.id", self.cluster.id), ("cluster.secret", self.cluster.secret),
            ("secrets.bootstraptoken", self.secrets.bootstrap_token),
            ("secrets.secretboxencryptionsecret", self.secrets.secretbox_encryption_secret),
            ("trustdinfo.token", self.trustd_info.token),
            ("certs.etcd.crt", c.etcd.crt), ("certs.etcd.key", c.etcd.key),
            ("certs.k8s.crt", c.k8s.crt), ("certs.k8s.key", c.k8s.key),
            ("certs.k8saggregator.crt", c.k8s_aggregator.crt), ("certs.k8saggregator.key", c.k8s_aggregator.key),
            ("certs.k8sserviceaccount.key", c.k8s_service_account.key),
            ("certs.os.crt", c.os.crt), ("certs.os.key", c.os.key),
        ]

    def to_yaml(self) -> str:
        return yamlio.dump(self.encode())
