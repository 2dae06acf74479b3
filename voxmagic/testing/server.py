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

from ._fake_answers import Answer, build_answer, generation_data
from ._fake_requests import (
    DIALECTS, MODELS, AudioInfo, BadRequest, ParsedRequest, prompt_text, redact, validate)
from ._fake_streams import ChunkMaker, error_body, fault_error, reply_answer, seconds_header, stream_answer

__all__ = ["LocalServer", "RecordedRequest", "AudioInfo", "FAULTS", "main"]

FAULTS = ("http_400", "http_401", "http_402", "http_403", "http_408", "http_413", "http_429",
          "http_500", "http_502", "http_503", "reset_mid_stream", "stall", "malformed_sse", "error_chunk")
_MAX_BODY = 256 * 1024 * 1024  # bodies above this get OpenRouter's 413


@dataclass
class RecordedRequest:
    """One POST to chat/completions as the server saw and answered it (audio bytes left out)."""

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


@dataclass
class _Fault:
    name: str
    times: int = 1
    after_tokens: int = 0
    seconds: float = 0.0
    retry_after: float | None = None
    match: str | None = None


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


class LocalServer:
    """OpenRouter look-alike on 127.0.0.1, run on its own daemon thread and event loop.

    latency: seconds before the first token (keep-alive comments meanwhile); token_rate: tokens
    per second (0 = unthrottled); answer_tokens: pad answers with filler up to this length;
    api_key: the only key accepted (None = any); rate_limit: requests per second per key;
    words_per_second: make text answers as long as a transcript of the audio at this speech rate;
    model_prices: ``{model: {"prompt": USD/token, "completion": USD/token, "audio": USD/second}}``
    listed by GET /models instead of the defaults (partial entries merge; unknown ids are added as
    audio models). Billing (usage.cost) keeps Voxtral Small's prices.
    """

    def __init__(self, *, port: int = 0, latency: float = 0.0, token_rate: float = 0.0,
                 answer_tokens: int = 0, api_key: str | None = None, rate_limit: float | None = None,
                 dialect: str = "openrouter", keepalive_interval: float = 0.05,
                 host: str = "127.0.0.1", words_per_second: float = 0.0,
                 model_prices: dict | None = None):
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
        self.host, self.port = host, port
        self._config = _Config(latency, token_rate, answer_tokens, api_key, rate_limit, dialect,
                               keepalive_interval, words_per_second, model_prices=model_prices)
        self._models_requests = 0
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._log: list[RecordedRequest] = []
        self._generations: dict[str, dict] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._startup_error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + ("/api/v1" if self._config.dialect == "openrouter" else "/v1")

    def start(self) -> "LocalServer":
        """Start serving; returns once the socket listens (port 0 becomes the port picked)."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                        name="voxmagic-local-server")
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

    def __enter__(self) -> "LocalServer":
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
        app = web.Application(client_max_size=_MAX_BODY)
        for prefix in ("/api/v1", "/v1"):
            app.router.add_post(prefix + "/chat/completions", self._completions)
            app.router.add_post(prefix + "/audio/transcriptions", self._transcriptions)
            app.router.add_get(prefix + "/models", self._models)
            app.router.add_get(prefix + "/generation", self._generation)
            app.router.add_get(prefix + "/key", self._key)
        app.router.add_post("/_control/faults", self._control_faults)
        app.router.add_post("/_control/config", self._control_config)
        app.router.add_post("/_control/reset", self._control_reset)
        app.router.add_get("/_control/requests", self._control_requests)
        return app

    # -- control ---------------------------------------------------------------------------
    def add_fault(self, fault: str, *, times: int = 1, after_tokens: int = 0, seconds: float = 0.0,
                  retry_after: float | None = None, match: str | None = None) -> None:
        """Queue a fault for the next `times` valid requests whose user text contains `match` (any if None).

        Faults are taken in the order they were added; `after_tokens` says how many answer tokens
        go out first (stream faults), `seconds` how long a stall lasts (default 5 s), `retry_after`
        the Retry-After of http_429 (default 1)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if times < 1 or after_tokens < 0 or seconds < 0:
            raise ValueError("times must be >= 1, after_tokens and seconds >= 0")
        if fault == "stall" and not seconds:
            seconds = 5.0
        with self._lock:
            self._faults.append(_Fault(fault, times, after_tokens, seconds, retry_after, match))

    def configure(self, **config: Any) -> None:
        """Change latency, token_rate, answer_tokens, words_per_second, api_key, rate_limit,
        model_prices (or keepalive_interval) live."""
        allowed = {"latency", "token_rate", "answer_tokens", "words_per_second", "api_key", "rate_limit",
                   "keepalive_interval", "model_prices"}
        unknown = set(config) - allowed
        if unknown:
            raise TypeError(f"unknown setting(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        with self._lock:
            self._config = dataclasses.replace(self._config, **config)
            self._buckets.clear()

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
        """Forget queued faults, the request log, generations and rate-limit state."""
        with self._lock:
            self._faults.clear()
            self._log.clear()
            self._generations.clear()
            self._buckets.clear()

    def _take_fault(self, prompt: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.match is None or fault.match in prompt:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

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

    # -- auth and rate limit ---------------------------------------------------------------
    def _auth_error(self, request: web.Request, cfg: _Config) -> web.Response | None:
        if cfg.dialect == "vllm" and cfg.api_key is None:
            return None  # vLLM started without --api-key checks nothing
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return error_body(401, "No auth credentials found")
        if cfg.api_key is not None and key.strip() != cfg.api_key:
            return error_body(401, "User not found.")
        return None

    def _admission(self, request: web.Request, cfg: _Config) -> web.Response | None:
        """The key, then the rate limit, as OpenRouter checks them: the refusal, or None."""
        denied = self._auth_error(request, cfg)
        if denied is not None:
            return denied
        wait = self._rate_limited(request.headers.get("Authorization", ""), cfg)
        if wait is not None:
            retry = {"Retry-After": seconds_header(round(wait, 3) or 0.001)}
            return error_body(429, f"Rate limit exceeded: {cfg.rate_limit:g} requests per second",
                              {"error_type": "rate_limit_exceeded"}, retry)
        return None

    def _rate_limited(self, key: str, cfg: _Config) -> float | None:
        """Token bucket per key; returns seconds to wait when the request must be refused."""
        if not cfg.rate_limit:
            return None
        now, capacity = time.monotonic(), max(1.0, cfg.rate_limit)
        with self._lock:
            tokens, last = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * cfg.rate_limit)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / cfg.rate_limit
            self._buckets[key] = (tokens - 1.0, now)
        return None

    # -- chat completions ------------------------------------------------------------------
    async def _completions(self, request: web.Request) -> web.StreamResponse:
        """Log, then check in OpenRouter's order: auth, rate limit, JSON, request shape and audio.

        Only a request that passes all of these takes the next matching fault, so a queued fault
        always hits a request that would otherwise have succeeded."""
        arrived = time.monotonic()
        with self._lock:
            cfg = self._config
        gid = f"gen-{int(time.time())}-{secrets.token_hex(10)}"
        headers = {k: ("Bearer ***" if k.lower() == "authorization" else v) for k, v in request.headers.items()}
        rec = RecordedRequest(id=gid, received_at=time.time(), headers=headers)
        with self._lock:
            self._log.append(rec)

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
        refused = self._admission(request, cfg)
        if refused is not None:
            return fail(refused)
        if body is None:
            return fail(error_body(400, "Request body is not valid JSON", {"error_type": "invalid_request"}))
        try:
            req = await asyncio.to_thread(validate, body, cfg.dialect)
        except BadRequest as exc:
            return fail(error_body(exc.status, exc.message, exc.metadata))
        rec.audio = req.audio
        fault = self._take_fault(rec.prompt)
        rec.fault = fault.name if fault else None
        if fault is not None and fault.name.startswith("http_"):
            return fail(fault_error(fault, req.model, rec.prompt))
        answer = build_answer(req, cfg.answer_tokens, gid, cfg.words_per_second)
        chunks = ChunkMaker(gid, req.model, int(rec.received_at), cfg.dialect)
        started = time.monotonic()
        # `latency` runs from arrival, as a provider's would: reading and decoding are part of it
        cfg = dataclasses.replace(cfg, latency=max(0.0, cfg.latency - (started - arrived)))
        try:
            if req.stream:
                return await stream_answer(request, rec, req, answer, fault, cfg, chunks)
            return await reply_answer(request, rec, req, answer, fault, cfg, chunks)
        finally:
            self._remember(rec, req, answer, time.monotonic() - started)

    def _remember(self, rec: RecordedRequest, req: ParsedRequest, answer: Answer, seconds: float) -> None:
        """Keep what /generation reports: also for cut streams, priced at what was produced."""
        finish = answer.finish_reason if rec.completed else "error" if rec.fault == "error_chunk" else None
        data = generation_data(rec.id, req, rec.tokens_sent, finish, not rec.completed, rec.received_at,
                               seconds, rec.headers)
        with self._lock:
            self._generations[rec.id] = data

    # -- audio transcriptions --------------------------------------------------------------
    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        """Mistral's and vLLM's multipart ``audio/transcriptions`` (OpenRouter's dialect: 404, no route).

        Logged, authenticated and rate limited like chat completions; the form is checked (and its
        audio decoded) as the dialect's endpoint does, then the next matching fault is taken:
        ``http_*`` as for chat, ``stall`` waits, ``reset_mid_stream`` resets the connection,
        ``malformed_sse`` cuts the JSON short, ``error_chunk`` (no stream to break) is a 502. Faults
        match against the log's prompt, ``audio/transcriptions``."""
        from ._fake_streams import reset_connection
        from ._fake_transcriptions import (TRANSCRIPTION_DIALECTS, FormError, answer, logged_body, read_form,
                                           validate)

        with self._lock:
            cfg = self._config
        if cfg.dialect not in TRANSCRIPTION_DIALECTS:
            raise web.HTTPNotFound()
        arrived = time.monotonic()
        gid = f"trsc-{secrets.token_hex(12)}"
        headers = {k: ("Bearer ***" if k.lower() == "authorization" else v) for k, v in request.headers.items()}
        rec = RecordedRequest(id=gid, received_at=time.time(), headers=headers, prompt="audio/transcriptions")
        with self._lock:
            self._log.append(rec)

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
        refused = self._admission(request, cfg)
        if refused is not None:
            return fail(refused)
        try:  # decoding megabytes of audio must not stall the other connections
            req = await asyncio.to_thread(validate, fields, upload, cfg.dialect)
        except FormError as exc:
            return fail(exc.response())
        rec.audio = [req.audio]
        fault = self._take_fault(rec.prompt)
        rec.fault = fault.name if fault else None
        name = "http_502" if fault is not None and fault.name == "error_chunk" else fault.name if fault else None
        if name is not None and name.startswith("http_"):
            return fail(fault_error(dataclasses.replace(fault, name=name), req.model, rec.prompt))
        if name == "reset_mid_stream":
            await reset_connection(request)
            return web.Response()  # never reaches the peer
        await asyncio.sleep(max(0.0, cfg.latency - (time.monotonic() - arrived)) + (fault.seconds if fault else 0))
        body, rec.usage = answer(req, cfg.dialect)
        rec.status, rec.tokens_sent = 200, len(str(body.get("text") if isinstance(body, dict) else body).split())
        if name == "malformed_sse":  # the whole-body analogue: JSON cut short
            return web.Response(body=b'{"model": "' + req.model.encode() + b'", "text": "segm',
                                content_type="application/json")
        rec.completed = True
        if isinstance(body, str):
            return web.Response(text=body, content_type="text/plain")
        return web.json_response(body)

    # -- other endpoints -------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        """The model list in the dialect's shape: OpenRouter's (every field its SDK's
        ``ModelsListResponse`` requires; prices as USD strings, Voxtral's audio per second) with
        the Voxtral models and one text-only model; Mistral's and vLLM's lists carry no prices."""
        from ._fake_answers import PRICE_AUDIO_SECOND, PRICE_COMPLETION, PRICE_PROMPT

        with self._lock:
            self._models_requests += 1
            cfg = self._config
        created = 1761782400  # 2025-10-30, when OpenRouter listed Voxtral Small

        def usd(value: Any) -> str:  # OpenRouter writes plain decimals: 1e-07 -> "0.0000001"
            return value if isinstance(value, str) else f"{value:.12f}".rstrip("0").rstrip(".") or "0"

        def title(model: str) -> str:
            return "Mistral: " + model.split("/")[-1].replace("-", " ").title()

        if cfg.dialect == "mistral":
            return web.json_response({"object": "list", "data": [{
                "id": m, "object": "model", "created": created, "owned_by": "mistralai", "name": m,
                "description": title(m), "max_context_length": 32768, "aliases": [], "deprecation": None,
                "type": "base", "default_model_temperature": 0.2,
                "capabilities": {"completion_chat": True, "completion_fim": False, "function_calling": True,
                                 "fine_tuning": False, "vision": not audio, "classification": False,
                                 "audio": audio},
            } for m, audio in [*((m, True) for m in MODELS["mistral"]), ("mistral-small-latest", False)]]})
        if cfg.dialect != "openrouter":  # vLLM
            return web.json_response({"object": "list", "data": [{
                "id": m, "object": "model", "created": created, "owned_by": "vllm", "root": m, "parent": None,
                "max_model_len": 32768,
                "permission": [{"id": f"modelperm-{m.split('/')[-1].lower()}", "object": "model_permission",
                                "created": created, "allow_create_engine": False, "allow_sampling": True,
                                "allow_logprobs": True, "allow_search_indices": False, "allow_view": True,
                                "allow_fine_tuning": False, "organization": "*", "group": None,
                                "is_blocking": False}],
            } for m in MODELS[cfg.dialect]]})

        voxtral = {"prompt": PRICE_PROMPT, "completion": PRICE_COMPLETION, "audio": PRICE_AUDIO_SECOND}
        listed = {m: dict(voxtral) for m in MODELS["openrouter"]}
        text_only = "mistralai/mistral-small-3.2-24b-instruct"
        listed[text_only] = {"prompt": 0.05e-6, "completion": 0.1e-6}
        for model, prices in (cfg.model_prices or {}).items():
            listed[model] = {**listed.get(model, voxtral), **prices}

        def entry(model: str, prices: dict) -> dict:
            audio = model != text_only
            pricing = {k: usd(v) for k, v in prices.items()}
            if audio:
                description = ("Voxtral adds audio input to a Mistral text model: transcription, translation "
                               "and audio understanding. Input audio is priced at "
                               f"${float(pricing.get('audio', 0)) * 1e6:g} per million seconds.")
            else:
                description = "Mistral Small 3.2 24B, a text and image model without audio input."
            inputs = ["text", "audio"] if audio else ["text", "image"]
            return {
                "id": model, "canonical_slug": model, "hugging_face_id": None, "name": title(model),
                "created": created, "description": description, "context_length": 32768 if audio else 131072,
                "architecture": {"modality": "+".join(inputs) + "->text", "input_modalities": inputs,
                                 "output_modalities": ["text"], "tokenizer": "Mistral", "instruct_type": None},
                "pricing": pricing,
                "top_provider": {"context_length": 32768 if audio else 131072, "max_completion_tokens": None,
                                 "is_moderated": False},
                "per_request_limits": None,
                "supported_parameters": ["frequency_penalty", "max_tokens", "presence_penalty", "response_format",
                                         "seed", "stop", "structured_outputs", "temperature", "tool_choice",
                                         "tools", "top_p"],
                "default_parameters": {"temperature": 0.2, "top_p": 0.95} if audio else None,
                "supported_voices": None,
                "links": {"details": f"/api/v1/models/{model}/endpoints"},
                "expiration_date": None, "knowledge_cutoff": None,
            }

        data = [entry(m, p) for m, p in listed.items()]
        return web.json_response({"data": data, "links": {"next": None}, "total_count": len(data)})

    async def _generation(self, request: web.Request) -> web.Response:
        denied = self._auth_error(request, self._config)
        if denied is not None:
            return denied
        gid = request.query.get("id")
        if not gid:
            return error_body(400, "`id` query parameter is required", {"error_type": "invalid_request"})
        with self._lock:
            gen = self._generations.get(gid)
        if gen is None:
            return error_body(404, f"Generation {gid} not found", {"error_type": "not_found"})
        return web.json_response({"data": gen})

    async def _key(self, request: web.Request) -> web.Response:
        denied = self._auth_error(request, self._config)
        if denied is not None:
            return denied
        key = request.headers["Authorization"].split(" ", 1)[1].strip()
        with self._lock:
            spent = sum(g["total_cost"] for g in self._generations.values())
        return web.json_response({"data": {
            "label": f"{key[:8]}...{key[-3:]}", "limit": None, "limit_remaining": None, "usage": spent,
            "is_free_tier": False}})


def main(argv: list[str] | None = None) -> None:
    """Command line: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m voxmagic.testing.server",
                                     description="Local OpenRouter-compatible server for voxmagic tests and demos.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before the first token")
    parser.add_argument("--token-rate", type=float, default=0.0, help="tokens per second (0 = unthrottled)")
    parser.add_argument("--answer-tokens", type=int, default=0, help="pad answers to this many tokens")
    parser.add_argument("--words-per-second", type=float, default=0.0,
                        help="make answers as long as a transcript of the audio at this speech rate")
    parser.add_argument("--api-key", default=None, help="the only key accepted (default: any)")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second per key")
    parser.add_argument("--dialect", choices=DIALECTS, default="openrouter")
    args = parser.parse_args(argv)
    server = LocalServer(port=args.port, host=args.host, latency=args.latency, token_rate=args.token_rate,
                         answer_tokens=args.answer_tokens, words_per_second=args.words_per_second,
                         api_key=args.api_key, rate_limit=args.rate_limit,
                         dialect=args.dialect)
    server.start()
    print(f"voxmagic local server listening on {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
