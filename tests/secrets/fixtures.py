"""Generated configs shared by the secrets tests (generated once per process: key generation
is the slow part)."""

from __future__ import annotations

import functools

from kos.resources.machineconfig import ConfigContainer
from kos.resources.machineconfig.generate import GenOptions, generate
from kos.resources.machineconfig.secrets import SecretsBundle


@functools.cache
def bundle() -> SecretsBundle:
    return SecretsBundle.generate()


@functools.cache
def configs() -> tuple[ConfigContainer, ConfigContainer]:
    g = generate(GenOptions(cluster_name="demo", endpoint="https://10.5.0.10:6443", additional_sans=["api.example"]),
                 bundle())
    return g.controlplane, g.worker
