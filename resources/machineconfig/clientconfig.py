"""The kosctl client config (``kosconfig``): named contexts, each with API endpoints, default
target nodes, the OS CA and a client certificate and key; ``context`` names the current one.
Same shape as ``talosconfig``.

One implementation serves everything that reads or writes these files: the classes live in
``kos.apis.client.config`` (the API client library) and are re-exported here for the config
generator (``kosctl gen config``).
"""

from kos.apis.client.config import ClientConfig, ConfigError, Context

__all__ = ["ClientConfig", "ConfigError", "Context"]
