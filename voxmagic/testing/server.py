"""A local HTTP server that behaves like OpenRouter's chat-completions API, for tests and offline demos.

Tests must never reach the internet, yet voxmagic's client has to meet everything the real
service does: SSE keep-alive comments, a usage-only last chunk, 4xx/5xx error bodies, streams
that stall or break. This server does all of that over a real socket, answers deterministically
from the audio it really decoded, injects faults on demand and logs every request.

Run from Python (``with LocalServer() as srv: ... srv.base_url``) or from a shell:
``python -m voxmagic.testing.server --port 8765`` and drive it through ``/_control/*``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._fake_admission import Admission, echoed
from ._fake_answers import build_answer
from ._fake_faults import FAULTS, FaultQueue
from ._fake_models import models_payload
from ._fake_realtime import add_routes as add_realtime_routes
from ._fake_requests import DIALECTS, AudioInfo, BadRequest, prompt_text, redact, validate
from ._fake_streams import ChunkMaker, error_body, fault_error, refusal, reply_answer, stream_answer

__all__ = ["LocalServer", "RecordedRequest", "AudioInfo", "FAULTS", "main"]

_MAX_BODY = 256 * 1024 * 1024  # bodies above this get OpenRouter's 413


@dataclass
class RecordedRequest:
    """One POST to chat/completions (or audio/transcriptions) as the server saw and answered it.

    Audio bytes are left out and the Authorization header reads "Bearer ***". ``completed`` says
    whether the server billed the client: the usage went out (``usage``/``cost`` hold what was
    sent) and the answer was whole — so True for ``no_done``, False for ``no_usage``."""

    id: str
    received_at: float
    headers: dict
    body: Any = None
    prompt: str = ""
    audio: list[AudioInfo] = field(default_factory=list)
    status: int | None = None
    fault: str | None = None
    usage: dict | None = None
    cost: float | None = None
    completed: bool = False
    tokens_sent: int = 0  # answer tokens written to the socket (or returned, when not streaming)


@dataclass(frozen=True)
class _Config:
    latency: float = 0.0
    token_rate: float = 0.0
    answer_tokens: int = 0
    api_key: str | None = None
    rate_limit: float | None = None
    dialect: str = "openrouter"
    keepalive_interval: float = 0.05
    words_per_second: float = 0.0
    model_prices: dict | None = None  # {model: {"prompt"|"completion"|"audio": USD}} over the defaults
    echo_key: bool = False  # quote the Authorization header back in refusals and error chunks


class LocalServer:
    """OpenRouter look-alike on 127.0.0.1, run on its own daemon thread and event loop.

    latency: seconds before the first token (keep-alive comments meanwhile); token_rate: tokens
    per second (0 = unthrottled); answer_tokens: pad answers with filler up to this length;
    api_key: the only key accepted (None = any); rate_limit: requests per second per key;
    words_per_second: make text answers as long as a transcript of the audio at this speech rate;
    model_prices: ``{model: {"prompt": USD/token, "completion": USD/token, "audio": USD/second}}``
    listed by GET /models instead of the defaults (partial entries merge; unknown ids are added as
    audio models). Billing (usage.cost) keeps Voxtral Small's prices.
    echo_key: quote the Authorization header as received in 401s, 400s (chat: ``metadata.raw``;
    transcriptions: the message) and error chunks, as careless servers do — to test that voxmagic
    never shows, logs or stores it. The server's own request log still masks it.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        latency: float = 0.0,
        token_rate: float = 0.0,
        answer_tokens: int = 0,
        api_key: str | None = None,
        rate_limit: float | None = None,
        dialect: str = "openrouter",
        keepalive_interval: float = 0.05,
        host: str = "127.0.0.1",
        words_per_second: float = 0.0,
        model_prices: dict | None = None,
        echo_key: bool = False,
    ):
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
        self.host, self.port = host, port
        self._config = _Config(
            latency,
            token_rate,
            answer_tokens,
            api_key,
            rate_limit,
            dialect,
            keepalive_interval,
            words_per_second,
            model_prices,
            bool(echo_key),
        )
        self._models_requests = 0
        self._lock = threading.Lock()
        self._faults = FaultQueue()
        self._log: list[RecordedRequest] = []
        self._admission = Admission()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._in_flight = 0  # chat and transcription requests being answered now, and the most at once
        self._peak_in_flight = 0

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + ("/api/v1" if self._config.dialect == "openrouter" else "/v1")

    def start(self) -> LocalServer:
        """Start serving; returns once the socket listens (port 0 becomes the port picked)."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True, name="voxmagic-local-server")
        self._thread.start()
        ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._thread, error, self._startup_error = None, self._startup_error, None
            raise error
        return self

    def stop(self) -> None:
        """Close the socket, cancel in-flight answers and join the thread."""
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(ready))
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            self._loop = None
            ready.set()

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self._make_app(), access_log=None, shutdown_timeout=0.2)
        try:
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = runner.addresses[0][1]
        except BaseException as exc:  # e.g. port in use: hand it to start()
            self._startup_error = exc
            await runner.cleanup()
            return
        finally:
            ready.set()
        await self._stopping.wait()
        await runner.cleanup()

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_BODY, middlewares=[self._counted])
        for prefix in ("/api/v1", "/v1"):
            app.router.add_post(prefix + "/chat/completions", self._completions)
            app.router.add_post(prefix + "/audio/transcriptions", self._transcriptions)
            app.router.add_get(prefix + "/models", self._models)
        add_realtime_routes(app, self)  # the realtime WebSockets (GET /v1/...): _fake_realtime
        app.router.add_post("/_control/faults", self._control_faults)
        app.router.add_post("/_control/config", self._control_config)
        app.router.add_post("/_control/reset", self._control_reset)
        app.router.add_get("/_control/requests", self._control_requests)
        return app

    @web.middleware
    async def _counted(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Count a chat or transcription request in flight from its arrival until its answer is
        written (a stream) or handed over (a whole reply): the peak is what clients let through."""
        if request.method != "POST" or request.path.startswith("/_control/"):
            return await handler(request)
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            return await handler(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        """Chat and transcription requests being answered right now."""
        with self._lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most chat and transcription requests answered at once since the start (or reset)."""
        with self._lock:
            return self._peak_in_flight

    # -- control ---------------------------------------------------------------------------
    def add_fault(
        self,
        fault: str,
        *,
        times: int = 1,
        after_tokens: int = 0,
        seconds: float = 0.0,
        retry_after: float | None = None,
        match: str | None = None,
    ) -> None:
        """Queue a fault for the next `times` valid requests whose user text contains `match` (any if None).

        Faults are taken in the order they were added; `after_tokens` says how many answer tokens
        go out first (stream faults; no_done and no_usage ignore it), `seconds` how long a stall
        lasts (default 5 s), `retry_after` the Retry-After of http_429 (default 1). See FAULTS."""
        self._faults.add(
            fault, times=times, after_tokens=after_tokens, seconds=seconds, retry_after=retry_after, match=match
        )

    def configure(self, **config: Any) -> None:
        """Change latency, token_rate, answer_tokens, words_per_second, api_key, rate_limit,
        model_prices, echo_key (or keepalive_interval) live."""
        allowed = {
            "latency",
            "token_rate",
            "answer_tokens",
            "words_per_second",
            "api_key",
            "rate_limit",
            "keepalive_interval",
            "model_prices",
            "echo_key",
        }
        unknown = set(config) - allowed
        if unknown:
            raise TypeError(f"unknown setting(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        if not isinstance(config.get("echo_key", False), bool):
            raise ValueError("echo_key must be true or false")
        with self._lock:
            self._config = dataclasses.replace(self._config, **config)
        self._admission.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._log)

    @property
    def models_requests(self) -> int:
        """How many GET /models this server has answered."""
        with self._lock:
            return self._models_requests

    def reset(self) -> None:
        """Forget queued faults, the request log, the peak in flight and rate-limit state."""
        with self._lock:
            self._log.clear()
            self._peak_in_flight = self._in_flight
        self._faults.clear()
        self._admission.clear()

    def _record(self, request: web.Request, gid: str, prompt: str = "") -> RecordedRequest:
        """Log a request as it arrives, its Authorization header masked."""
        headers = {k: ("Bearer ***" if k.lower() == "authorization" else v) for k, v in request.headers.items()}
        rec = RecordedRequest(id=gid, received_at=time.time(), headers=headers, prompt=prompt)
        with self._lock:
            self._log.append(rec)
        return rec

    async def _control_faults(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            for kwargs in spec if isinstance(spec, list) else [spec]:
                self.add_fault(**kwargs)
        except (ValueError, TypeError) as exc:
            return error_body(400, f"bad fault: {exc}")
        return web.json_response({"ok": True, "queued": len(self._faults)})

    async def _control_config(self, request: web.Request) -> web.Response:
        try:
            self.configure(**await request.json())
        except (ValueError, TypeError) as exc:
            return error_body(400, f"bad config: {exc}")
        return web.json_response({"ok": True, "config": dataclasses.asdict(self._config)})

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _control_requests(self, request: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(r) for r in self.requests])

    # -- chat completions ------------------------------------------------------------------
    async def _completions(self, request: web.Request) -> web.StreamResponse:
        """Log, then check in OpenRouter's order: auth, rate limit, JSON, request shape and audio.

        Only a request that passes all of these takes the next matching fault, so a queued fault
        always hits a request that would otherwise have succeeded."""
        arrived = time.monotonic()
        with self._lock:
            cfg = self._config
        gid = f"gen-{int(time.time())}-{secrets.token_hex(10)}"
        rec = self._record(request, gid)

        def fail(resp: web.Response) -> web.Response:
            rec.status = resp.status
            resp.headers["X-Generation-Id"] = gid
            return resp

        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return fail(error_body(413, "Request payload too large", {"error_type": "payload_too_large"}))
        try:  # parsing and decoding megabytes of audio must not stall the other connections
            body = await asyncio.to_thread(json.loads, raw)
        except ValueError:
            body = None
        rec.body, rec.prompt = redact(body), prompt_text(body)
        refused = self._admission.refusal(request.headers, cfg)
        if refused is not None:
            return fail(refused)
        echo = echoed(request.headers, cfg)
        if body is None:
            return fail(refusal(400, "Request body is not valid JSON", {"error_type": "invalid_request"}, echo))
        try:
            req = await asyncio.to_thread(validate, body, cfg.dialect)
        except BadRequest as exc:
            return fail(refusal(exc.status, exc.message, exc.metadata, echo))
        rec.audio = req.audio
        fault = self._faults.take(rec.prompt)
        rec.fault = fault.name if fault else None
        if fault is not None and fault.name.startswith("http_"):
            return fail(fault_error(fault, req.model, rec.prompt, echo))
        answer = build_answer(req, cfg.answer_tokens, gid, cfg.words_per_second)
        chunks = ChunkMaker(gid, req.model, int(rec.received_at), cfg.dialect, echo)
        # `latency` runs from arrival, as a provider's would: reading and decoding are part of it
        cfg = dataclasses.replace(cfg, latency=max(0.0, cfg.latency - (time.monotonic() - arrived)))
        if req.stream:
            return await stream_answer(request, rec, req, answer, fault, cfg, chunks)
        return await reply_answer(request, rec, req, answer, fault, cfg, chunks)

    # -- audio transcriptions --------------------------------------------------------------
    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        """Mistral's and vLLM's multipart ``audio/transcriptions`` (OpenRouter's dialect: 404, no route).

        Logged, authenticated and rate limited like chat completions; the form is checked (and its
        audio decoded) as the dialect's endpoint does, then the next matching fault is taken (what
        each does here: ``_fake_transcriptions.reply``), matched against the log's prompt,
        ``audio/transcriptions``. With echo_key, refusals of the form quote the Authorization header
        in their message (and 401s are chat's)."""
        from ._fake_transcriptions import TRANSCRIPTION_DIALECTS, FormError, logged_body, read_form, reply, validate

        with self._lock:
            cfg = self._config
        if cfg.dialect not in TRANSCRIPTION_DIALECTS:
            raise web.HTTPNotFound()
        arrived = time.monotonic()
        rec = self._record(request, f"trsc-{secrets.token_hex(12)}", "audio/transcriptions")

        def fail(resp: web.Response) -> web.Response:
            rec.status = resp.status
            return resp

        try:
            fields, upload = await read_form(request)
        except web.HTTPRequestEntityTooLarge:
            return fail(error_body(413, "Request payload too large", {"error_type": "payload_too_large"}))
        except ValueError:  # not a readable form: checked below as an empty one
            fields, upload = [], None
        rec.body = logged_body(fields, upload)
        refused = self._admission.refusal(request.headers, cfg)
        if refused is not None:
            return fail(refused)
        echo = echoed(request.headers, cfg)
        try:  # decoding megabytes of audio must not stall the other connections
            req = await asyncio.to_thread(validate, fields, upload, cfg.dialect)
        except FormError as exc:
            return fail(exc.response(echo))
        rec.audio = [req.audio]
        fault = self._faults.take(rec.prompt)
        rec.fault = fault.name if fault else None
        return await reply(request, rec, req, fault, cfg.dialect, arrived + cfg.latency, echo)

    # -- other endpoints -------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        """The model list in the dialect's shape (see ``_fake_models``), counted for the tests."""
        with self._lock:
            self._models_requests += 1
            cfg = self._config
        return web.json_response(models_payload(cfg.dialect, cfg.model_prices))


def main(argv: list[str] | None = None) -> None:
    """Command line: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m voxmagic.testing.server",
        description="Local OpenRouter-compatible server for voxmagic tests and demos.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before the first token")
    parser.add_argument("--token-rate", type=float, default=0.0, help="tokens per second (0 = unthrottled)")
    parser.add_argument("--answer-tokens", type=int, default=0, help="pad answers to this many tokens")
    parser.add_argument(
        "--words-per-second",
        type=float,
        default=0.0,
        help="make answers as long as a transcript of the audio at this speech rate",
    )
    parser.add_argument("--api-key", default=None, help="the only key accepted (default: any)")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second per key")
    parser.add_argument("--dialect", choices=DIALECTS, default="openrouter")
    parser.add_argument(
        "--echo-key", action="store_true", help="quote the Authorization header back in errors, as careless servers do"
    )
    args = parser.parse_args(argv)
    server = LocalServer(**vars(args)).start()  # every option is a constructor argument of that name
    print(f"voxmagic local server listening on {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
