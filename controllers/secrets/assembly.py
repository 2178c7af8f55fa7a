"""The secrets controllers a node registers::

    for c in secrets_controllers(extra_names=[...], remote=TrustdSigner(...)):
        runtime.register(c)

``remote`` (workers) signs the API certificate on a control plane; ``ttl`` and
``renew_fraction`` set issued-certificate lifetimes and renewal point (tests use seconds).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from kos.controllers.runtime import Controller
from kos.controllers.secrets.certs import (
    APICertsController,
    EtcdCertsController,
    KubernetesCertsController,
    RemoteSigner,
)
from kos.controllers.secrets.certsans import CertSANsController
from kos.controllers.secrets.issue import DEFAULT_RENEW_FRACTION, DEFAULT_TTL
from kos.controllers.secrets.root import RootSecretsController


def secrets_controllers(*, extra_names: Sequence[str] = (), remote: RemoteSigner | None = None,
                        ttl: datetime.timedelta = DEFAULT_TTL, renew_fraction: float = DEFAULT_RENEW_FRACTION,
                        retry_interval: float = 5.0) -> list[Controller]:
    return [
        RootSecretsController(),
        CertSANsController(extra_names),
        APICertsController(remote=remote, retry_interval=retry_interval, ttl=ttl, renew_fraction=renew_fraction),
        EtcdCertsController(extra_names=extra_names, ttl=ttl, renew_fraction=renew_fraction),
        KubernetesCertsController(ttl=ttl, renew_fraction=renew_fraction),
    ]
