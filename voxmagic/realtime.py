"""Realtime transcription over a WebSocket: 16 kHz mono int16 PCM goes in as it is recorded, text
comes back as it is heard — Mistral's ``/v1/audio/transcriptions/realtime`` and vLLM's
``/v1/realtime`` (OpenRouter has no such endpoint). The live captions of a recording
(:mod:`voxmagic.recording`) come from here where the provider has one.

One :class:`RealtimeSession` per recording: :meth:`~RealtimeSession.open` (handshake, then the
session's first event), :meth:`~RealtimeSession.append` blocks as they arrive,
:meth:`~RealtimeSession.finish` (the audio is over: the last words and the whole text), and
:meth:`~RealtimeSession.close`. :func:`transcribe_stream` does all four over an async iterable.
The key travels in the handshake's ``Authorization`` header only; whatever the server says
(error events, close reasons, a refused handshake's body, the text) passes the client's
:class:`~voxmagic.redact.Redactor` first. Foreign exceptions (websockets', OSError, timeouts)
become :mod:`voxmagic.errors` in one place, :func:`_translated`.

The messages relied on, as sent and read here:

Mistral — docs.mistral.ai/capabilities/audio_transcription/realtime_transcription ("The ``model``
query parameter is required"; realtime model ``voxtral-mini-transcribe-realtime-2602``) and the
``mistralai`` SDK 2.5 (mistralai/client-python ``src/mistralai/extra/realtime/transcription.py``,
``connection.py``; ``client/models/realtimetranscription*.py``, ``transcriptionstream*.py``):

* connect ``wss://api.mistral.ai/v1/audio/transcriptions/realtime?model=M`` with
  ``Authorization: Bearer KEY``; the server speaks first: ``{"type": "session.created", "session":
  {"request_id", "model", "audio_format": {"encoding", "sample_rate"}, "target_streaming_delay_ms"}}``
  (the SDK reads until it, and fails the connect on an ``error`` before it);
* ``{"type": "session.update", "session": {"audio_format": {"encoding": "pcm_s16le", "sample_rate":
  16000}}}`` — "set before sending audio" — answered by ``session.updated``;
* ``{"type": "input_audio.append", "audio": BASE64}``, at most 262,144 decoded bytes each;
* at the end ``{"type": "input_audio.flush"}`` then ``{"type": "input_audio.end"}``, as the SDK's
  ``transcribe_stream`` does (the end also releases the words the model holds back, and makes the
  session terminal: mistralai/client-python#357);
* from the server ``transcription.language`` ``{audio_language}``, ``transcription.text.delta``
  ``{text}``, ``transcription.segment`` ``{text, start, end}``, ``transcription.done`` ``{model,
  text, usage, language, segments}``, and ``error`` ``{"error": {"message": str | {"detail"},
  "code": int}}``.

vLLM — vllm-project/vllm ``vllm/entrypoints/speech_to_text/realtime/api_router.py``,
``connection.py``, ``protocol.py`` (earlier ``entrypoints/openai/realtime/``) and
``examples/online_serving/openai_realtime_client.py``:

* ``ws://HOST/v1/realtime``, routed only when the served model supports the ``realtime`` task
  (``speech_to_text/factories.py``); elsewhere, and in versions before it, the handshake is
  refused (an unrouted WebSocket is closed before it is accepted: HTTP 403, or 404 behind a proxy);
* the server speaks first: ``{"type": "session.created", "id", "created"}``;
* ``{"type": "session.update", "model": M}`` (required before a commit; no answer unless an
  error), ``{"type": "input_audio_buffer.commit"}`` (starts the generation),
  ``{"type": "input_audio_buffer.append", "audio": BASE64}`` (PCM16, 16 kHz, mono) …, and
  ``{"type": "input_audio_buffer.commit", "final": true}`` when the audio is over;
* from the server ``{"type": "transcription.delta", "delta"}``, ``{"type": "transcription.done",
  "text", "usage"}`` and ``{"type": "error", "error": str, "code": str}`` (``invalid_json``,
  ``invalid_audio``, ``unknown_event``, ``invalid_event``, ``model_not_found``,
  ``model_not_validated``, ``processing_error``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from .cost import LedgerEntry
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    BadRequestError,
    ConfigError,
    ServerError,
    error_for_status,
)
from .http_errors import error_body
from .providers import REALTIME_MODEL, REALTIME_PATHS, is_loopback, transcription_price
from .redact import Redactor
from .runner import advise, ledger

if TYPE_CHECKING:
    from .settings import Settings

SAMPLE_RATE = 16_000
MAX_APPEND_BYTES = 262_144  # Mistral's limit on one input_audio.append (decoded)
MAX_MESSAGE_BYTES = 4 * 2**20  # what the server may send in one message
_BAD_REQUEST_CODES = {"invalid_json", "invalid_audio", "unknown_event", "invalid_event", "model_not_found"}
_BAD_REQUEST_CODES |= {"model_not_validated"}
OnText = Callable[[str], None]


def realtime_url(settings: Settings) -> str | None:
    """The WebSocket URL of the provider's realtime transcription endpoint; None where it has none."""
    dialect = settings.effective_dialect
    path = REALTIME_PATHS.get(dialect)
    if path is None:
        return None
    scheme, netloc, base, _, _ = urlsplit(settings.base_url.rstrip("/"))
    query = urlencode({"model": REALTIME_MODEL}) if dialect == "mistral" else ""
    return urlunsplit(({"https": "wss", "http": "ws"}.get(scheme, scheme), netloc, f"{base}/{path}", query, ""))


class RealtimeSession:
    """One realtime transcription (async, one event loop). ``text`` grows with every delta and
    ``on_text(text)`` is called with it; ``final`` is the server's whole text once done."""

    def __init__(self, settings: Settings, *, language: str | None = None, on_text: OnText | None = None):
        url = realtime_url(settings)
        if url is None:
            raise ConfigError(f"{settings.provider} has no realtime transcription endpoint")
        self.settings, self.url, self.language, self.on_text = settings, url, language, on_text
        self.mistral = settings.effective_dialect == "mistral"
        self.model = REALTIME_MODEL if self.mistral else settings.transcription_model or settings.model
        self.where = f"{'Mistral' if self.mistral else 'vLLM'}'s realtime endpoint {url.split('?')[0]}"
        self.redactor = Redactor.for_key(settings.api_key)
        self._deltas = self.redactor.stream()
        self.text = ""
        self.sent_bytes = 0  # of PCM: 32,000 a second
        self.usage: dict[str, Any] = {}  # transcription.done's, when it says what was billed
        self.final: str | None = None
        self.error: APIError | None = None
        self._ws: Any = None
        self._reader: asyncio.Task | None = None
        self._done = asyncio.Event()

    async def open(self) -> None:
        """Connect, read the server's first event, configure the session; raises a VoxmagicError."""
        try:
            from websockets.asyncio.client import connect
        except ImportError:  # a dependency of voxmagic; an environment may still lack it
            raise ConfigError("realtime transcription needs the websockets package: pip install websockets") from None
        headers = {"Authorization": f"Bearer {self.settings.api_key}"} if self.settings.api_key else {}
        options: dict[str, Any] = dict(additional_headers=headers, open_timeout=self.settings.timeout)
        options |= dict(user_agent_header="voxmagic", max_size=MAX_MESSAGE_BYTES, proxy=True)
        if is_loopback(self.url):
            options["proxy"] = None  # never through a proxy to this machine
        elif self.url.startswith("wss:"):
            from .client import tls_context

            options["ssl"] = tls_context()
        try:
            with self._translated():
                self._ws = await connect(self.url, **options)
                await self._begin()
        except BaseException:
            await self.close()
            raise
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _begin(self) -> None:
        """The server's first event must be ``session.created``; then the session is configured."""
        first = self._parse(await asyncio.wait_for(self._ws.recv(), self.settings.timeout))
        if first.get("type") == "error":
            raise self._event_error(first)
        if first.get("type") != "session.created":
            raise APIConnectionError(f"{self.where} began with {str(first.get('type'))[:40]!r}, not session.created")
        for message in self._opening():
            await self._ws.send(json.dumps(message))

    def _opening(self) -> list[dict[str, Any]]:
        if self.mistral:
            audio_format = {"encoding": "pcm_s16le", "sample_rate": SAMPLE_RATE}
            return [{"type": "session.update", "session": {"audio_format": audio_format}}]
        update: dict[str, Any] = {"type": "session.update", "model": self.model}
        if self.language:
            update["language"] = self.language
        return [update, {"type": "input_audio_buffer.commit"}]

    async def append(self, pcm: bytes) -> None:
        """Send a block of little-endian int16 samples (split where Mistral's limit asks)."""
        kind = "input_audio.append" if self.mistral else "input_audio_buffer.append"
        for i in range(0, len(pcm), MAX_APPEND_BYTES):
            self._raise_if_failed()
            piece = pcm[i : i + MAX_APPEND_BYTES]
            audio = base64.b64encode(piece).decode("ascii")
            with self._translated():
                await self._ws.send(json.dumps({"type": kind, "audio": audio}))
            self.sent_bytes += len(piece)

    async def finish(self, timeout: float | None = None) -> str:
        """The audio is over: wait for the whole text (at most ``timeout``, default the settings'
        timeout), close, and return it."""
        self._raise_if_failed()
        ends = [{"type": "input_audio.flush"}, {"type": "input_audio.end"}]
        with self._translated():
            for message in ends if self.mistral else [{"type": "input_audio_buffer.commit", "final": True}]:
                await self._ws.send(json.dumps(message))
        wait = self.settings.timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(self._done.wait(), wait)
        except asyncio.TimeoutError:
            raise APITimeoutError(f"{self.where} sent no transcription.done within {wait:g} s") from None
        finally:
            await self.close()
        if self.error is not None:
            raise self.error
        if self.final is None:
            raise APIConnectionError(f"{self.where} closed the session before transcription.done")
        return self.final

    async def close(self) -> None:
        """Stop reading and close the socket (a clean close, code 1000); safe to call twice."""
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if self._ws is not None:
            ws, self._ws = self._ws, None
            await asyncio.gather(ws.close(), return_exceptions=True)

    def cost_entry(self) -> LedgerEntry:
        """What the session cost, for the session's ledger (``%voxtral_cost``): billed per second
        of audio sent — the seconds ``transcription.done`` reports, else those sent — at the
        model's price; unknown for a model without one (a self-hosted vLLM)."""
        reported = self.usage.get("prompt_audio_seconds")
        seconds = float(reported) if isinstance(reported, (int, float)) else self.sent_bytes / (2 * SAMPLE_RATE)
        price = transcription_price(self.model)
        return LedgerEntry(
            time.time(),
            "microphone (realtime captions)",
            self.model,
            None if price is None else price * seconds,
            None,
            None,
            seconds,
            "unknown" if price is None else "estimated",
            None,
            "answered" if self.final is not None else "failed",
        )

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error
        if self._ws is None:
            raise APIConnectionError(f"{self.where}: the session is not open")

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in self._ws:
                self._handle(self._parse(raw))
        except ConnectionClosed as exc:
            if self.final is None and self.error is None:
                self.error = self._closed(exc)
        except APIError as exc:
            self.error = exc
        finally:
            if self.final is None and self.error is None:
                self.error = APIConnectionError(f"{self.where} closed the session before transcription.done")
            self._done.set()

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind in ("transcription.text.delta", "transcription.delta"):
            piece = event.get("text" if self.mistral else "delta")
            if isinstance(piece, str) and piece:
                self._grow(self._deltas.feed(piece))
        elif kind == "transcription.done":
            self._grow(self._deltas.flush())
            text = event.get("text")
            self.final = self.redactor.text(text) if isinstance(text, str) else self.text
            usage = event.get("usage")
            self.usage = usage if isinstance(usage, dict) else {}
            self._done.set()
        elif kind == "error":
            self.error = self._event_error(event)
            self._done.set()

    def _grow(self, shown: str) -> None:
        if shown:
            self.text += shown
            if self.on_text:
                self.on_text(self.text)

    def _parse(self, raw: str | bytes) -> dict[str, Any]:
        text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
        try:
            event = json.loads(text)
        except ValueError:
            raise APIConnectionError(f"{self.where} sent a message that is not JSON") from None
        if not isinstance(event, dict):
            raise APIConnectionError(f"{self.where} sent a message that is not a JSON object")
        return self.redactor.value(event)

    def _event_error(self, event: dict[str, Any]) -> APIError:
        """An ``error`` event in either dialect's shape as one typed line."""
        error, code = event.get("error"), event.get("code")
        message: Any = error
        if isinstance(error, dict):  # Mistral: {"message": str | {"detail": ...}, "code": int}
            message, code = error.get("message"), error.get("code", code)
            if isinstance(message, dict):
                message = message.get("detail") or json.dumps(message)[:200]
        line = " ".join(str(message or "unknown error").split())[:300]
        cls = BadRequestError if code in _BAD_REQUEST_CODES else ServerError
        return cls(f"{self.where}: {line}" + (f" (code {code})" if code not in (None, "") else ""), code=code)

    def _closed(self, exc: Any) -> APIConnectionError:
        received = getattr(exc, "rcvd", None)
        code = getattr(received, "code", None)
        reason = self.redactor.text(str(getattr(received, "reason", "") or ""))[:200]
        said = f" (code {code}{': ' + reason if reason else ''})" if code is not None else ""
        return APIConnectionError(f"{self.where} closed the connection before transcription.done{said}")

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """websockets' exceptions, OSError and timeouts as voxmagic errors, each one line."""
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

        try:
            yield
        except APIError:
            raise
        except InvalidStatus as exc:
            raise self._refused(exc.response.status_code, exc.response.body) from exc
        except InvalidURI as exc:
            raise ConfigError(f"not a WebSocket URL: {self.url.split('?')[0]} (check the base URL)") from exc
        except ConnectionClosed as exc:
            raise (self.error or self._closed(exc)) from exc
        except InvalidHandshake as exc:
            raise APIConnectionError(f"{self.where}: the WebSocket handshake failed ({exc})") from exc
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise APITimeoutError(f"{self.where} did not open a session within {self.settings.timeout:g} s") from exc
        except OSError as exc:
            error = APIConnectionError(f"could not connect to {self.where} ({exc.strerror or exc})")
            if is_loopback(self.url):
                error.advice = "nothing is listening there: start the server, or check the port in the base URL"
            raise error from exc

    def _refused(self, status: int, body: bytes | bytearray | None) -> APIError:
        """A handshake answered with an HTTP status instead of a WebSocket."""
        said = str(error_body(self.redactor.text((body or b"").decode("utf-8", "replace")))[1] or "")[:200]
        message = f"{self.where} refused the WebSocket" + (f": {said}" if said else "")
        unrouted = status in (403, 404, 405)  # vLLM without a realtime model, or an older one: 403
        error = (BadRequestError if unrouted else error_for_status(status))(message, status=status)
        advise(error, self.settings)
        if unrouted:
            error.advice = "no realtime transcription there: an older server, or a model without it"
        return error


async def transcribe_stream(
    settings: Settings,
    blocks: AsyncIterable[bytes],
    *,
    language: str | None = None,
    on_text: OnText | None = None,
    finish_timeout: float | None = None,
) -> str:
    """Open a session, send each block as it comes, and return the whole text once the blocks end;
    ``on_text`` sees the text grow. Raises a :class:`~voxmagic.errors.VoxmagicError` (ConfigError
    where the provider has no realtime endpoint)."""
    session = RealtimeSession(settings, language=language, on_text=on_text)
    await session.open()
    try:
        async for block in blocks:
            await session.append(block)
        return await session.finish(finish_timeout)
    finally:
        await session.close()
        if session.sent_bytes:
            ledger.add(session.cost_entry())
