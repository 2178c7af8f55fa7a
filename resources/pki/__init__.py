"""kos PKI: X.509 certificate authorities, issued certificates, CSRs and their inspection.

Everything here is real X.509 from ``cryptography``; ECDSA P-256 is the default key type,
Ed25519 and RSA are available. API roles (``os:admin``, ``os:reader``...) are carried in the
certificate subject's Organization (O) attributes, as Talos does.

Public API::

    CertificateAndKey(cert_pem, key_pem)      # .certificate(), .private_key(), from_files/to_files
    generate_ca(common_name, organization=..., ttl=..., key_type="ecdsa")
    issue_certificate(ca, common_name=..., organizations=..., dns_names=..., ip_addresses=...,
                      server=..., client=..., ttl=..., key_type=...)
    generate_private_key(key_type) / private_key_pem / load_private_key
    create_csr(key_pem, common_name=..., ...) / sign_csr(ca, csr_pem, ...)
    verify_chain(cert, ca) / certificate_sans(cert) / certificate_organizations(cert) / ...
    certificate_validity(cert) / needs_renewal(cert, remaining_fraction=0.5)
    render_kubeconfig(...) / admin_kubeconfig(...) / check_kubeconfig(text, ca_pem)  # kubeconfig files
"""

from typing import TYPE_CHECKING

from kos.resources.lazy import surface, table_of

if TYPE_CHECKING:
    from kos.resources.pki.keys import (
        KEY_TYPES,
        generate_private_key,
        load_private_key,
        private_key_pem,
        public_key_pem,
    )
    from kos.resources.pki.kubeconfig import (
        ADMIN_CN,
        ADMIN_ORG,
        KubeconfigInfo,
        admin_kubeconfig,
        check_kubeconfig,
        issue_client,
        render_kubeconfig,
    )
    from kos.resources.pki.verify import (
        CertificateSANs,
        PKIError,
        certificate_common_name,
        certificate_extended_usages,
        certificate_key_usages,
        certificate_organizations,
        certificate_sans,
        certificate_validity,
        is_ca,
        load_certificate,
        needs_renewal,
        verify_chain,
    )
    from kos.resources.pki.x509 import (
        CLOCK_SKEW,
        CertificateAndKey,
        create_csr,
        generate_ca,
        issue_certificate,
        sign_csr,
    )

__getattr__ = surface(
    __name__,
    globals(),
    table_of(
        {
            "keys": (
                "KEY_TYPES",
                "generate_private_key",
                "load_private_key",
                "private_key_pem",
                "public_key_pem",
            ),
            "kubeconfig": (
                "ADMIN_CN",
                "ADMIN_ORG",
                "KubeconfigInfo",
                "admin_kubeconfig",
                "check_kubeconfig",
                "issue_client",
                "render_kubeconfig",
            ),
            "verify": (
                "CertificateSANs",
                "PKIError",
                "certificate_common_name",
                "certificate_extended_usages",
                "certificate_key_usages",
                "certificate_organizations",
                "certificate_sans",
                "certificate_validity",
                "is_ca",
                "load_certificate",
                "needs_renewal",
                "verify_chain",
            ),
            "x509": (
                "CLOCK_SKEW",
                "CertificateAndKey",
                "create_csr",
                "generate_ca",
                "issue_certificate",
                "sign_csr",
            ),
        }
    ),
)

__all__ = [
    "ADMIN_CN",
    "ADMIN_ORG",
    "CLOCK_SKEW",
    "KEY_TYPES",
    "CertificateAndKey",
    "CertificateSANs",
    "KubeconfigInfo",
    "PKIError",
    "admin_kubeconfig",
    "certificate_common_name",
    "certificate_extended_usages",
    "certificate_key_usages",
    "certificate_organizations",
    "certificate_sans",
    "certificate_validity",
    "check_kubeconfig",
    "create_csr",
    "generate_ca",
    "generate_private_key",
    "is_ca",
    "issue_certificate",
    "issue_client",
    "load_certificate",
    "load_private_key",
    "needs_renewal",
    "private_key_pem",
    "public_key_pem",
    "render_kubeconfig",
    "sign_csr",
    "verify_chain",
]
