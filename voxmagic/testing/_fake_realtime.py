"""The local server's realtime transcription WebSockets: Mistral's
``/v1/audio/transcriptions/realtime`` (dialect ``mistral``) and vLLM's ``/v1/realtime`` (dialect
``vllm``), with the message shapes ``voxmagic.realtime`` documents and cites (the ``mistralai``
SDK's realtime module; vLLM's ``entrypoints/speech_to_text/realtime``). Another dialect's server
has neither route: the handshake gets a 404, as from a server without the endpoint.

A session is admitted like any request (the key, then the rate limit: a 401 or 429 instead of
the WebSocket), logged (``RecordedRequest.prompt == "realtime"``, ``body`` with the path, the
model, the events received and the audio seconds) and takes the next fault matching "realtime":
``http_NNN`` refuses the handshake with that status (``http_403`` as an empty 403, what an
unrouted WebSocket gets from vLLM's uvicorn: an older vLLM, or one serving a model without realtime),
``error_chunk`` sends an ``error`` event after ``after_tokens`` deltas and closes (code 1011),
``reset_mid_stream`` resets the TCP connection after ``after_tokens`` deltas; others are ignored.

What it hears: the PCM appended (base64 of 16-bit little-endian mono at 16 kHz), transcribed as
``_fake_transcriptions`` transcribes a file — windows tiling the audio in order, each naming its
span and the digest of the bytes it heard — but in windows of ``PIECE_S``: one delta as soon as
each window has arrived (``segment 2 1.0-2.0 s heard 3fa9c1d2e4b5``, with a leading space after
the first), the rest at the end (Mistral's ``input_audio.flush`` / ``input_audio.end``, vLLM's
final commit), then ``transcription.done`` with the whole text and usage. Mistral's session ends
there (the server closes: the end is terminal); vLLM's stays open for another utterance.

Bad messages get the dialect's ``error`` event and the session goes on: Mistral
``{"type": "error", "error": {"message", "code"}}`` (the codes are this server's: 1500 for an
unknown model, as the batch endpoint's "Invalid model", else 3000 — Mistral documents only "an
internal error code"), vLLM ``{"type": "error", "error", "code"}`` with vLLM's own codes. With
``echo_key`` their messages quote the Authorization header, as careless servers do.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
import time
from typing import Any

from aiohttp import WSMsgType, web

from ._fake_admission import echoed
from ._fake_requests import MODELS, audio_tokens, decode_audio
from ._fake_streams import fault_error, reset_connection

__all__ = ["PATHS", "PIECE_S", "REALTIME_MODELS", "add_routes"]

RATE = 16_000
PIECE_S = 1.0  # a delta for each second of audio
PROMPT = "realtime"  # what the request log and fault matching call a session
PATHS = {"mistral": "/v1/audio/transcriptions/realtime", "vllm": "/v1/realtime"}
REALTIME_MODELS = {
    "mistral": ("voxtral-mini-transcribe-realtime-2602",),
    "vllm": (*MODELS["vllm"], "mistralai/Voxtral-Mini-4B-Realtime-2602"),
}
MISTRAL_MAX_APPEND = 262_144  # decoded bytes in one input_audio.append
NOT_VALIDATED = "Model not validated. Make sure to validate the model by sending a session.update event."


def add_routes(app: web.Application, server: Any) -> None:
    """Register both WebSocket routes on ``server``'s app (``server`` is the ``LocalServer``)."""
    for dialect, path in PATHS.items():
        app.router.add_get(path, _handler(server, dialect))


def _handler(server: Any, dialect: str) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await _session(server, dialect, request)

    return handle


async def _session(server: Any, dialect: str, request: web.Request) -> web.StreamResponse:
    """Admit, log and fault the handshake like a request; then speak the dialect."""
    with server._lock:
        cfg = server._config
    if cfg.dialect != dialect:
        raise web.HTTPNotFound()
    rec = server._record(request, f"rt-{secrets.token_hex(12)}", PROMPT)
    model = request.query.get("model") if dialect == "mistral" else None
    rec.body = {"websocket": request.path, "model": model, "events": {}, "audio_seconds": 0.0}
    refused = server._admission.refusal(request.headers, cfg)
    fault = None if refused is not None else server._faults.take(PROMPT)
    rec.fault = fault.name if fault else None
    echo = echoed(request.headers, cfg)
    if refused is None and fault is not None and fault.name.startswith("http_"):
        refused = (
            web.Response(status=403) if fault.name == "http_403" else fault_error(fault, model or "", PROMPT, echo)
        )
    ws = web.WebSocketResponse(heartbeat=None, max_msg_size=4 * 2**20)
    if refused is None and not ws.can_prepare(request).ok:
        refused = web.json_response(
            {"error": {"code": 426, "message": "a WebSocket handshake is expected"}}, status=426
        )
    if refused is not None:
        rec.status = refused.status
        return refused
    await ws.prepare(request)
    rec.status = 101
    talk = _Talk(dialect, ws, request, rec, fault, echo)
    await (talk.mistral(model) if dialect == "mistral" else talk.vllm())
    if not ws.closed:
        await ws.close()
    return ws


class _Talk:
    """One session: the audio heard so far, and what was said about it."""

    def __init__(self, dialect: str, ws: web.WebSocketResponse, request: web.Request, rec: Any, fault: Any, echo: Any):
        self.dialect, self.ws, self.request, self.rec, self.fault, self.echo = dialect, ws, request, rec, fault, echo
        self.audio = bytearray()
        self.said = 0  # bytes of audio already put into deltas
        self.deltas: list[str] = []
        self.model: str | None = None

    # -- Mistral ---------------------------------------------------------------------------
    async def mistral(self, model: str | None) -> None:
        if model not in REALTIME_MODELS["mistral"]:
            await self.error(f"Invalid model: {model}" if model else "The model query parameter is required", 1500)
            return
        self.model = model
        audio_format = {"encoding": "pcm_s16le", "sample_rate": RATE}
        session = {"request_id": self.rec.id, "model": model, "audio_format": audio_format}
        await self.ws.send_json({"type": "session.created", "session": session | {"target_streaming_delay_ms": None}})
        async for event in self.events():
            kind = event.get("type")
            if kind == "session.update":
                update = event.get("session") if isinstance(event.get("session"), dict) else {}
                wanted = update.get("audio_format", audio_format)
                if self.audio:
                    await self.error("Audio format updates are rejected after audio starts", 3000)
                elif wanted != audio_format:
                    await self.error(f"the local server takes pcm_s16le at {RATE} Hz only, not {wanted}", 3000)
                else:
                    await self.ws.send_json({"type": "session.updated", "session": session})
            elif kind == "input_audio.append":
                pcm = _pcm(event.get("audio"), MISTRAL_MAX_APPEND)
                if pcm is None:
                    await self.error(
                        f"audio must be base64 of whole int16 samples, 1 to {MISTRAL_MAX_APPEND} bytes", 3000
                    )
                elif not await self.hear(pcm):
                    return
            elif kind in ("input_audio.flush", "input_audio.end"):
                if not await self.say(final=True):
                    return
                if kind == "input_audio.end":
                    await self.done()
                    return
            else:
                await self.error(f"Unknown message type: {str(kind)[:40]!r}", 3000)

    # -- vLLM ------------------------------------------------------------------------------
    async def vllm(self) -> None:
        await self.ws.send_json(
            {"type": "session.created", "id": f"sess-{secrets.token_hex(16)}", "created": int(time.time())}
        )
        generating = False
        async for event in self.events():
            kind = event.get("type")
            if kind == "session.update":
                model = event.get("model")
                if model is None:
                    await self.error("Missing required field: model", "invalid_event")
                elif model not in REALTIME_MODELS["vllm"]:
                    await self.error(f"The model `{model}` does not exist.", "model_not_found")
                else:
                    self.model = self.rec.body["model"] = model
            elif kind == "input_audio_buffer.append":
                pcm = _pcm(event.get("audio"))
                if pcm is None:
                    await self.error("Invalid audio data", "invalid_audio")
                elif not await self.hear(pcm, say=generating):
                    return
            elif kind == "input_audio_buffer.commit":
                if self.model is None:
                    await self.error(NOT_VALIDATED, "model_not_validated")
                elif not event.get("final"):
                    generating = True
                    if not await self.say():
                        return
                elif generating:  # the audio is over: the rest, the whole, and a fresh utterance
                    if not await self.say(final=True):
                        return
                    await self.done()
                    generating, self.audio, self.said, self.deltas = False, bytearray(), 0, []
            else:
                await self.error(f"Unknown event type: {kind}", "unknown_event")

    # -- both ------------------------------------------------------------------------------
    async def events(self) -> Any:
        """The client's JSON objects, counted in the log; anything else gets the dialect's error."""
        async for msg in self.ws:
            if msg.type != WSMsgType.TEXT:
                if self.dialect == "vllm":  # vLLM reads text only; a binary frame ends its session
                    await self.ws.close(code=1003, message=b"text messages only")
                    return
                await self.error("Expected a text message with a JSON object", 3000)
                continue
            try:
                event = json.loads(msg.data)
            except ValueError:
                await self.error("Invalid JSON", "invalid_json" if self.dialect == "vllm" else 3000)
                continue
            if not isinstance(event, dict):
                await self.error("Expected a JSON object", "invalid_event" if self.dialect == "vllm" else 3000)
                continue
            counts = self.rec.body["events"]
            kind = str(event.get("type"))[:40]
            counts[kind] = counts.get(kind, 0) + 1
            yield event

    async def hear(self, pcm: bytes, say: bool = True) -> bool:
        self.audio += pcm
        self.rec.body["audio_seconds"] = round(len(self.audio) / 2 / RATE, 3)
        return await self.say() if say else True

    async def say(self, final: bool = False) -> bool:
        """A delta for each whole window not yet said (and the rest when ``final``); False when a
        fault ended the session."""
        step = round(PIECE_S * RATE) * 2
        while len(self.audio) - self.said >= step or (final and len(self.audio) > self.said):
            if self.fault is not None and len(self.deltas) >= self.fault.after_tokens:
                if self.fault.name == "error_chunk":
                    await self.error("Internal server error (injected fault)", "processing_error", fatal=True)
                    return False
                if self.fault.name == "reset_mid_stream":
                    await reset_connection(self.request)
                    return False
            end = min(self.said + step, len(self.audio))
            heard = decode_audio(bytes(self.audio[self.said : end]), "pcm16", 1).sha256[:12]
            text = f"segment {len(self.deltas) + 1} {self.said / 2 / RATE:.1f}-{end / 2 / RATE:.1f} s heard {heard}"
            delta = (" " if self.deltas else "") + text
            self.deltas.append(delta)
            self.said, self.rec.tokens_sent = end, len(self.deltas)
            kind, field = (
                ("transcription.text.delta", "text") if self.dialect == "mistral" else ("transcription.delta", "delta")
            )
            await self.ws.send_json({"type": kind, field: delta})
        return True

    async def done(self) -> None:
        text, seconds = "".join(self.deltas), len(self.audio) / 2 / RATE
        prompt_tokens, completion_tokens = audio_tokens(seconds), len(text.split())
        usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
        usage["total_tokens"] = prompt_tokens + completion_tokens
        if self.dialect == "mistral":
            usage = {"prompt_audio_seconds": max(1, math.ceil(seconds - 1e-9))} | usage
            body: dict[str, Any] = {"model": self.model, "text": text, "usage": usage, "language": None}
            await self.ws.send_json(body | {"segments": [], "type": "transcription.done"})
        else:
            await self.ws.send_json({"type": "transcription.done", "text": text, "usage": usage})
        self.rec.usage, self.rec.completed = usage, True
        if self.dialect == "mistral":
            await self.ws.close()

    async def error(self, message: str, code: Any, fatal: bool = False) -> None:
        """The dialect's error event (quoting the Authorization header with echo_key)."""
        if self.echo:
            message += f" (bad request from client with headers Authorization: {self.echo})"
        if self.dialect == "mistral":
            await self.ws.send_json({"type": "error", "error": {"message": message, "code": code}})
        else:
            await self.ws.send_json({"type": "error", "error": message, "code": code})
        if fatal:
            await self.ws.close(code=1011, message=b"internal error")


def _pcm(audio: Any, limit: int | None = None) -> bytes | None:
    """The bytes of a base64 ``audio`` field when they are whole int16 samples (and within ``limit``)."""
    if not isinstance(audio, str):
        return None
    try:
        pcm = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not pcm or len(pcm) % 2 or (limit is not None and len(pcm) > limit):
        return None
    return pcm
