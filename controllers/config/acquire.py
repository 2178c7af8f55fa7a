"""Where a machine config comes from at boot (before any ApplyConfiguration).

``kos.controllers.config.manager.ConfigManager.acquire`` tries, in order:

1. the STATE volume: ``<state>/config.yaml`` (a staged ``<state>/config.staged.yaml`` is
   promoted over it first: a staged apply takes effect at the next start);
2. the platform's source (``platform_source``: an async callable the platform fills, e.g.
   nocloud user-data or a container's mounted file; ``None`` when it has nothing);
3. the kernel command line ``kos.config=URL`` (``http://``, ``https://`` or ``file://``),
   fetched with retries;
4. otherwise maintenance: the node waits for ApplyConfiguration.

This module holds the pure/side-effect-light pieces: cmdline parsing and URL fetching.
"""

from __future__ import annotations

import shlex
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

import anyio

CMDLINE_KEY = "kos.config"
MAX_CONFIG_BYTES = 4 * 1024 * 1024


class AcquireError(Exception):
    """The config could not be obtained from a source (the message names the source)."""


def config_url(cmdline: str) -> str | None:
    """The value of ``kos.config=`` on a kernel command line (the last one wins), or None.
    ``kos.config=`` with an empty value is treated as absent."""
    url: str | None = None
    try:
        words = shlex.split(cmdline)
    except ValueError:
        words = cmdline.split()
    for w in words:
        key, sep, value = w.partition("=")
        if sep and key == CMDLINE_KEY:
            url = value or None
    return url


def check_url(url: str) -> str:
    """The URL's scheme if supported; AcquireError naming the value and expectation."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise AcquireError(f"{CMDLINE_KEY}: {url!r} is invalid, expected an http://, https:// or file:// URL")
    if scheme in ("http", "https") and not parts.hostname:
        raise AcquireError(f"{CMDLINE_KEY}: {url!r} is invalid, expected a host in the URL")
    return scheme


def _fetch_once(url: str, timeout: float) -> bytes:
    scheme = check_url(url)
    if scheme == "file":
        path = Path(unquote(urlsplit(url).path))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise AcquireError(f"{CMDLINE_KEY}: {url}: {exc.strerror or exc}") from None
    else:
        req = urllib.request.Request(url, headers={"User-Agent": "kos-machined"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                data = resp.read(MAX_CONFIG_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise AcquireError(f"{CMDLINE_KEY}: {url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AcquireError(f"{CMDLINE_KEY}: {url}: unreachable ({reason})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise AcquireError(f"{CMDLINE_KEY}: {url}: larger than {MAX_CONFIG_BYTES} bytes")
    if not data.strip():
        raise AcquireError(f"{CMDLINE_KEY}: {url}: the document is empty")
    return data


async def fetch(url: str, *, attempts: int = 5, delay: float = 1.0, timeout: float = 10.0) -> bytes:
    """Fetch ``url`` (blocking I/O in a worker thread), retrying ``attempts`` times with a
    doubling delay; AcquireError with the last failure and the number of attempts."""
    check_url(url)
    last: AcquireError | None = None
    for i in range(max(1, attempts)):
        try:
            return await anyio.to_thread.run_sync(_fetch_once, url, timeout)
        except AcquireError as exc:
            last = exc
        if i + 1 < attempts:
            await anyio.sleep(delay * (2**i))
    assert last is not None
    raise AcquireError(f"{last} (after {max(1, attempts)} attempts)")
