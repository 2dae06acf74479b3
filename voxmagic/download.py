"""Audio at a URL, fetched with a size cap and a total time limit, and stoppable at any moment.

The download is async (``httpx.AsyncClient`` streaming) because only a task can be stopped:
cancelling it — Ctrl-C through :meth:`voxmagic.loop.BackgroundLoop.run`, a stopped batch — leaves
the ``async with`` blocks, which close the socket at once. A sync stream on a worker thread could
only be abandoned, alive with its socket. Per-read timeouts do not bound a server that drips a
byte a second; the total limit does.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

from .errors import AudioError

MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 300.0  # the whole download, not one read
READ_TIMEOUT_S = 30.0  # connect / one read; never more than the total


def shown(url: str) -> str:
    """A URL as it may be shown and stored: without its query or user info (a presigned URL's
    ``X-Amz-Signature=…`` is a credential), ``?…`` standing for the query."""
    parts = urlsplit(url)
    if not (parts.query or parts.username or parts.password):
        return url
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


async def download(
    url: str, *, limit: int = MAX_DOWNLOAD_BYTES, timeout_s: float = DOWNLOAD_TIMEOUT_S, label: str | None = None
) -> bytes:
    """The body at ``url``, at most ``limit`` bytes, within ``timeout_s`` seconds in all.

    Every failure is an :class:`AudioError` naming the URL as :func:`shown` (or ``label``): HTTP
    status, connection error, over the cap, too slow. Cancelling the awaiting task closes the
    connection before it returns.
    """
    import httpx

    body, name = bytearray(), label or shown(url)
    try:
        await asyncio.wait_for(_stream_into(body, url, limit, timeout_s, name), timeout_s)
    except asyncio.TimeoutError:
        raise AudioError(
            name,
            f"download took longer than {timeout_s:g} s ({len(body):,} bytes so far); "
            "download the file yourself and pass its path, or raise download_timeout",
        ) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        said = str(exc).replace(url, name) or type(exc).__name__
        raise AudioError(name, f"could not download: {said}") from None
    return bytes(body)


async def _stream_into(body: bytearray, url: str, limit: int, timeout_s: float, name: str) -> None:
    """Append the response to ``body`` as it arrives (so a timeout can say how far it got)."""
    import httpx

    timeout = httpx.Timeout(min(READ_TIMEOUT_S, timeout_s))
    async with httpx.AsyncClient(follow_redirects=True, timeout=timeout) as client:
        async with client.stream("GET", url) as resp:
            if resp.status_code >= 400:
                raise AudioError(name, f"could not download: HTTP {resp.status_code} {resp.reason_phrase}")
            size = _content_length(resp.headers.get("content-length"))
            if size > limit:
                raise AudioError(
                    name,
                    f"download is {size:,} bytes, over the {limit:,}-byte cap; "
                    "download the file first and pass its path",
                )
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise AudioError(
                        name, f"download exceeds the {limit:,}-byte cap; download the file first and pass its path"
                    )


def _content_length(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:  # a malformed header: the running count still enforces the cap
        return 0
