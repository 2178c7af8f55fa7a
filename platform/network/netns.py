"""Open sockets inside a network namespace without moving the calling thread.

A socket belongs to the namespace it was created in, so ``socket_in(path, ...)`` switches a
short-lived helper thread into ``path`` (``setns``), creates the socket there and returns it;
the caller's threads never change namespace. ``path=None`` means the caller's namespace.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from kos.platform.linux.syscalls import CLONE_NEWNET, setns

T = TypeVar("T")


def run_in_netns(path: str | None, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread that has joined the network namespace ``path``. Blocking."""
    if path is None:
        return fn()
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            error.append(OSError(e.errno, f"network namespace {path!r}: {e.strerror}"))
            return
        try:
            setns(fd, CLONE_NEWNET)
            result.append(fn())
        except BaseException as e:  # handed to the caller
            error.append(e)
        finally:
            os.close(fd)

    t = threading.Thread(target=body, name=f"netns:{path}", daemon=True)
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


def socket_in(path: str | None, family: int, type: int, proto: int = 0) -> socket.socket:
    """A new socket created inside the network namespace ``path`` (blocking call)."""
    return run_in_netns(path, lambda: socket.socket(family, type, proto))
