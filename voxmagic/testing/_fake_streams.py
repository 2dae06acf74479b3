"""How the local server's answers go on the wire: SSE chunks, whole bodies, error bodies, faults.

OpenRouter's streams have habits a client must survive (keep-alive comments, a usage-only last
chunk after the finish chunk, mid-stream error chunks); they are written here once, together
with the faults that break them, so the HTTP handler in ``server.py`` only decides *what* to say.

``echo`` arguments carry the request's Authorization header when the server runs with
``echo_key`` (else None): careless servers quote it back in errors, and voxmagic must never
show, log or store what they quote.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

from aiohttp import web

from ._fake_answers import Answer, usage

KEEPALIVE = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
MALFORMED = b'data: {"choices": [{"delta": \n\n'


def error_body(status: int, message: str, metadata: dict | None = None, headers: dict | None = None) -> web.Response:
    """OpenRouter's error body: {"error": {"code", "message", "metadata"?}}."""
    error: dict[str, Any] = {"code": status, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return web.json_response({"error": error}, status=status, headers=headers)


def key_refused(echo: str) -> web.Response:
    """The 401 of a server that quotes the Authorization header it got (echo_key).

    OpenAI's real 401 does this, e.g. "Incorrect API key provided: sk-abc12***...wxyz. You can find
    your API key at https://platform.openai.com/account/api-keys." (OpenAI masks the middle of the
    key; careless servers and proxies quote all of it, scheme included)."""
    return error_body(401, f"Invalid API key provided: {echo}")


def provider_refused(echo: str, metadata: dict | None = None, reason: str | None = None) -> web.Response:
    """A 400 as OpenRouter relays an upstream provider's refusal: "Provider returned error" with the
    provider's own body as a string in ``metadata.raw`` — here one that quotes the request's
    Authorization header (echo_key). ``reason`` (the local check's message) goes into raw too."""
    raw: dict[str, str] = {"detail": f"bad request from client with headers Authorization: {echo}"}
    if reason:
        raw["error"] = reason
    return error_body(
        400, "Provider returned error", {**(metadata or {}), "raw": json.dumps(raw), "provider_name": "Mistral"}
    )


def refusal(status: int, message: str, metadata: dict | None = None, echo: str | None = None) -> web.Response:
    """The error body of a request refused by a check; with echo a 400 is the provider's raw error."""
    if echo and status == 400:
        return provider_refused(echo, metadata, message)
    return error_body(status, message, metadata)


def seconds_header(value: float) -> str:
    """Retry-After value: whole seconds as an integer, else up to millisecond precision."""
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0")


def fault_error(fault: Any, model: str, prompt: str, echo: str | None = None) -> web.Response:
    """The error response of an injected http_NNN fault, shaped like OpenRouter's (http_400 and
    http_401 quote the Authorization header when given `echo`)."""
    if echo and fault.name == "http_401":
        return key_refused(echo)
    if echo and fault.name == "http_400":
        return provider_refused(echo, {"error_type": "invalid_request"})
    table: dict[str, tuple[int, str, dict | None]] = {
        "http_400": (
            400,
            "Provider returned error: invalid request (injected fault)",
            {"error_type": "invalid_request", "provider_name": "Mistral"},
        ),
        "http_401": (401, "User not found.", None),
        "http_402": (
            402,
            "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
            {"error_type": "payment_required"},
        ),
        "http_403": (
            403,
            f'{model} requires moderation on Mistral. Your input was flagged for "harassment". '
            "No credits were charged.",
            {
                "reasons": ["harassment"],
                "flagged_input": prompt[:100],
                "provider_name": "Mistral",
                "model_slug": model,
                "error_type": "content_policy_violation",
            },
        ),
        "http_408": (408, "Request timed out upstream (injected fault)", {"error_type": "timeout"}),
        "http_413": (413, "Request payload too large (injected fault)", {"error_type": "payload_too_large"}),
        "http_429": (
            429,
            "Rate limit exceeded: too many requests (injected fault)",
            {"error_type": "rate_limit_exceeded"},
        ),
        "http_500": (500, "Internal Server Error (injected fault)", {"error_type": "server"}),
        "http_502": (
            502,
            "Provider returned error (injected fault)",
            {"provider_name": "Mistral", "raw": "upstream connection closed", "error_type": "server"},
        ),
        "http_503": (
            503,
            "No allowed providers are available for the selected model.",
            {"error_type": "provider_unavailable"},
        ),
    }
    status, message, metadata = table[fault.name]
    headers = None
    if status == 429:
        headers = {"Retry-After": seconds_header(1 if fault.retry_after is None else fault.retry_after)}
    return error_body(status, message, metadata, headers)


class ChunkMaker:
    """Builds the JSON objects of one generation; provider fields only in the openrouter dialect.
    With `echo` (echo_key) error objects quote the request's Authorization header."""

    def __init__(self, gid: str, model: str, created: int, dialect: str, echo: str | None = None):
        self.gid, self.model, self.created = gid, model, created
        self.openrouter = dialect == "openrouter"
        self.error_message = (
            f"upstream rejected credentials {echo} mid-stream" if echo else "Provider disconnected unexpectedly"
        )

    def _head(self, obj: str) -> dict:
        head = {"id": self.gid, "model": self.model, "object": obj, "created": self.created}
        if self.openrouter:
            head["provider"] = "Mistral"
        return head

    def _finish(self, choice: dict, reason: str | None) -> dict:
        choice["finish_reason"] = reason
        if self.openrouter:
            choice["native_finish_reason"] = reason
        return choice

    @staticmethod
    def sse(obj: dict) -> bytes:
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    def delta(self, delta: dict, finish: str | None = None) -> bytes:
        choice = self._finish({"index": 0, "delta": delta}, finish)
        choice["logprobs"] = None
        return self.sse({**self._head("chat.completion.chunk"), "choices": [choice]})

    def piece(self, answer: Answer, piece: str) -> bytes:
        if answer.kind == "tool":
            return self.delta({"role": "assistant", "tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        return self.delta({"role": "assistant", "content": piece})

    def tool_start(self, answer: Answer) -> bytes:
        return self.delta(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": answer.tool_call_id,
                        "type": "function",
                        "function": {"name": answer.tool_name, "arguments": ""},
                    }
                ],
            }
        )

    def usage(self, usage_obj: dict) -> bytes:
        return self.sse({**self._head("chat.completion.chunk"), "choices": [], "usage": usage_obj})

    def error(self) -> bytes:
        choice = self._finish({"index": 0, "delta": {"content": ""}}, "error")
        return self.sse(
            {
                **self._head("chat.completion.chunk"),
                "choices": [choice],
                "error": {"code": "server_error", "message": self.error_message},
            }
        )

    def reply(self, answer: Answer, n: int, usage_obj: dict, error: bool = False) -> dict:
        """Non-streaming body with the first n pieces; error=True gives OpenRouter's 200-with-error."""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": answer.content(n),
            "refusal": None,
            "reasoning": None,
        }
        if answer.kind == "tool" and not error:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": answer.tool_call_id,
                    "type": "function",
                    "function": {"name": answer.tool_name, "arguments": answer.content(n)},
                }
            ]
        choice = self._finish({"index": 0, "logprobs": None}, "error" if error else answer.finish_reason)
        choice["message"] = message
        if error:
            choice["error"] = {"code": 502, "message": self.error_message}
        return {**self._head("chat.completion"), "system_fingerprint": None, "choices": [choice], "usage": usage_obj}


def _unsent_bytes(sock: Any) -> int:
    """Bytes the kernel still holds for the peer (Linux TIOCOUTQ); 0 where that cannot be asked."""
    try:
        import fcntl
        import termios

        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
    except (ImportError, AttributeError, OSError):
        return 0


async def reset_connection(request: web.Request) -> None:
    """Abort with SO_LINGER (1, 0) so the peer gets a TCP RST, not a clean end of the body.

    What was written before must reach the peer first (a RST discards unsent data), so that
    "reset after N tokens" really delivers N tokens; wait up to 0.5 s for the buffers to drain."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    for _ in range(100):
        if not transport.get_write_buffer_size() and (sock is None or not _unsent_bytes(sock)):
            break
        await asyncio.sleep(0.005)
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _keepalives(resp: web.StreamResponse, latency: float, interval: float) -> None:
    """At least one keep-alive comment, then one every `interval` until `latency` has passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + latency
    while True:
        await resp.write(KEEPALIVE)
        left = deadline - loop.time()
        if left <= 0:
            return
        await asyncio.sleep(min(max(interval, 0.001), left))


async def _inject(request: web.Request, resp: web.StreamResponse, fault: Any, chunks: ChunkMaker) -> bool:
    """Play a stream fault; True when the stream is over."""
    if fault.name == "stall":
        await asyncio.sleep(fault.seconds)
        return False
    if fault.name == "reset_mid_stream":
        await reset_connection(request)
    elif fault.name == "malformed_sse":
        await resp.write(MALFORMED)
        await resp.write_eof()
    elif fault.name == "error_chunk":
        await resp.write(chunks.error())
        await resp.write(DONE)
    return True


ENDING_FAULTS = ("no_done", "no_usage")  # faults that change how a whole stream ends, not a token


async def stream_answer(
    request: web.Request, rec: Any, req: Any, answer: Answer, fault: Any, cfg: Any, chunks: ChunkMaker
) -> web.StreamResponse:
    """Stream one answer as OpenRouter does, playing `fault` after `fault.after_tokens` pieces.

    The ending faults act after the finish chunk, whatever `after_tokens`: ``no_usage`` stops
    there, ``no_done`` after the usage chunk; both end the chunked body cleanly, with no [DONE].
    ``rec.completed`` (and ``rec.usage``/``rec.cost``) say whether the usage chunk — the bill —
    went out: True for no_done, False for no_usage."""
    ending = fault.name if fault is not None and fault.name in ENDING_FAULTS else None
    at = fault.after_tokens if fault is not None and not ending else None
    if fault is not None and fault.name == "stall" and at == 0:
        await asyncio.sleep(fault.seconds)  # before any byte, status line included
        at = None
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Generation-Id": rec.id}
    )
    resp.enable_chunked_encoding()
    try:
        await resp.prepare(request)
        rec.status = 200
        await _keepalives(resp, cfg.latency, cfg.keepalive_interval)
        if answer.kind == "tool":
            await resp.write(chunks.tool_start(answer))
        for i, piece in enumerate(answer.pieces):
            if i == at and await _inject(request, resp, fault, chunks):
                return resp
            if cfg.token_rate:
                await asyncio.sleep(1.0 / cfg.token_rate)
            await resp.write(chunks.piece(answer, piece))
            rec.tokens_sent += 1
        if at is not None and at >= len(answer.pieces) and await _inject(request, resp, fault, chunks):
            return resp
        await resp.write(chunks.delta({"role": "assistant", "content": ""}, answer.finish_reason))
        if ending == "no_usage":
            await resp.write_eof()
            return resp
        usage_obj = usage(req, rec.tokens_sent, cfg.dialect)
        await resp.write(chunks.usage(usage_obj))
        rec.usage, rec.cost, rec.completed = usage_obj, usage_obj.get("cost"), True
        if ending == "no_done":
            await resp.write_eof()
            return resp
        await resp.write(DONE)
    except ConnectionError:
        pass  # the client went away (timeout, cancel): the log keeps completed=False
    return resp


async def reply_answer(
    request: web.Request, rec: Any, req: Any, answer: Answer, fault: Any, cfg: Any, chunks: ChunkMaker
) -> web.StreamResponse:
    """Non-streaming answer; faults act before the single response is written.

    ``no_usage`` leaves the ``usage`` key out of the body (rec.completed False: nothing billed to
    the client); ``no_done`` has nothing to leave out of a single body and answers normally."""
    name = fault.name if fault else None
    if name == "reset_mid_stream":
        await reset_connection(request)
        return web.Response()  # never reaches the peer
    if name == "stall":
        await asyncio.sleep(fault.seconds)
    await asyncio.sleep(cfg.latency + (len(answer.pieces) / cfg.token_rate if cfg.token_rate else 0.0))
    rec.status = 200
    headers = {"X-Generation-Id": rec.id}
    if name == "malformed_sse":  # the whole-body analogue: JSON cut short
        return web.Response(
            body=f'{{"id": "{rec.id}", "choices": [{{"message": '.encode(),
            content_type="application/json",
            headers=headers,
        )
    n = min(fault.after_tokens, len(answer.pieces)) if name == "error_chunk" else len(answer.pieces)
    rec.tokens_sent = n
    body = chunks.reply(answer, n, usage(req, n, cfg.dialect), error=name == "error_chunk")
    if name == "no_usage":
        del body["usage"]
    rec.usage = body.get("usage")
    rec.cost = rec.usage.get("cost") if rec.usage else None
    rec.completed = name in (None, "stall", "no_done")
    return web.json_response(body, headers=headers)
