"""Audio at a URL, fetched with a size cap and a total time limit, and stoppable at any moment.

The download is async (``httpx.AsyncClient`` streaming) because only a task can be stopped:
cancelling it — Ctrl-C through :meth:`voxmagic.loop.BackgroundLoop.run`, a stopped batch — leaves
the ``async with`` blocks, which close the socket at once. A sync stream on a worker thread could
only be abandoned, alive with its socket. Per-read timeouts do not bound a server that drips a
byte a second; the total limit does.
"""

from __future__ import annotations

import asyncio

from .errors import AudioError

MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 300.0  # the whole download, not one read
READ_TIMEOUT_S = 30.0  # connect / one read; never more than the total


async def download(url: str, *, limit: int = MAX_DOWNLOAD_BYTES, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """The body at ``url``, at most ``limit`` bytes, within ``timeout_s`` seconds in all.

    Every failure is an :class:`AudioError` naming the URL: HTTP status, connection error, over
    the cap, too slow. Cancelling the awaiting task closes the connection before it returns.
    """
    import httpx

    body = bytearray()
    try:
        await asyncio.wait_for(_stream_into(body, url, limit, timeout_s), timeout_s)
    except asyncio.TimeoutError:
        raise AudioError(
            url,
            f"download took longer than {timeout_s:g} s ({len(body):,} bytes so far); "
            "download the file yourself and pass its path, or raise download_timeout",
        ) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise AudioError(url, f"could not download: {exc or type(exc).__name__}") from exc
    return bytes(body)


async def _stream_into(body: bytearray, url: str, limit: int, timeout_s: float) -> None:
    """Append the response to ``body`` as it arrives (so a timeout can say how far it got)."""
    import httpx

    timeout = httpx.Timeout(min(READ_TIMEOUT_S, timeout_s))
    async with httpx.AsyncClient(follow_redirects=True, timeout=timeout) as client:
        async with client.stream("GET", url) as resp:
            if resp.status_code >= 400:
                raise AudioError(url, f"could not download: HTTP {resp.status_code} {resp.reason_phrase}")
            size = _content_length(resp.headers.get("content-length"))
            if size > limit:
                raise AudioError(
                    url,
                    f"download is {size:,} bytes, over the {limit:,}-byte cap; "
                    "download the file first and pass its path",
                )
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise AudioError(
                        url, f"download exceeds the {limit:,}-byte cap; download the file first and pass its path"
                    )


def _content_length(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:  # a malformed header: the running count still enforces the cap
        return 0
