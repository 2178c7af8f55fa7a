"""The client configuration file (``kosconfig``): ``ClientConfig``, ``Context``, ``ConfigError``, ...

The implementation lives in ``kos.resources.machineconfig.clientconfig`` (the config
generator writes kosconfig files too, and resources is below apis); this module keeps the
client library's name for it.
"""

from kos.resources.machineconfig.clientconfig import DEFAULT_PORT, ClientConfig, ConfigError, Context, default_path

__all__ = ["DEFAULT_PORT", "ClientConfig", "ConfigError", "Context", "default_path"]
