"""The kos API client library: connections from a kosconfig context (mutual TLS 1.3), the
machine service calls, ``GrpcState``, a ``kos.resources.core.state.State`` over the
``cosi.resource.State`` API, and ``SyncConnection``, a synchronous client for one-shot reads
without grpclib or asyncio (what ``kosctl get`` uses).

    from kos.apis.client import Connection, GrpcState, ClientConfig
    cfg = ClientConfig.load()
    async with Connection.from_context(cfg.current()[1]) as conn:
        state = GrpcState(conn)
        r = await state.get(Pointer("meta", "Namespaces.meta.cosi.dev", "meta"))
"""

from typing import TYPE_CHECKING

from kos.resources.lazy import surface, table_of

if TYPE_CHECKING:
    from kos.apis.client.config import (
        DEFAULT_PORT,
        ClientConfig,
        ConfigError,
        Context,
        default_path,
    )
    from kos.apis.client.connection import Connection
    from kos.apis.client.errors import APIError, connect_error
    from kos.apis.client.state import (
        AccessDeniedError,
        EventDecoder,
        GrpcState,
        state_error,
    )
    from kos.apis.client.syncgrpc import Request, SyncConnection

__getattr__ = surface(
    __name__,
    globals(),
    table_of(
        {
            "config": (
                "DEFAULT_PORT",
                "ClientConfig",
                "ConfigError",
                "Context",
                "default_path",
            ),
            "connection": ("Connection",),
            "errors": ("APIError", "connect_error"),
            "state": (
                "AccessDeniedError",
                "EventDecoder",
                "GrpcState",
                "state_error",
            ),
            "syncgrpc": (
                "Request",
                "SyncConnection",
            ),
        }
    ),
)

__all__ = [
    "DEFAULT_PORT",
    "APIError",
    "AccessDeniedError",
    "ClientConfig",
    "ConfigError",
    "Connection",
    "Context",
    "EventDecoder",
    "GrpcState",
    "Request",
    "SyncConnection",
    "connect_error",
    "default_path",
    "state_error",
]
