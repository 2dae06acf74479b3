"""The local OpenRouter look-alike on its own, over real sockets with raw httpx / httpx-sse.

Everything the client code will rely on is pinned here: decoding and hashing of real audio,
token and cost arithmetic, SSE framing (keep-alives, usage-only last chunk), validation
messages, and every injected fault. Shapes are also checked against the official OpenRouter
SDK's pydantic models, strictly, with a diff of the dump to catch keys they would drop.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import logging
import math
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Literal, Optional

import av
import httpx
import numpy as np
import pytest
from httpx_sse import connect_sse
from openrouter import components as orc
from pydantic import BaseModel, Field

from voxmagic.testing import synth
from voxmagic.testing.server import LocalServer

MODEL = "mistralai/voxtral-small-24b-2507"
AUTH = {"Authorization": "Bearer sk-or-test"}
HEARD = re.compile(r"\[(\d+)\] (\d+\.\d{3}) s (\w+) sha256:([0-9a-f]{12})")
# Keys OpenRouter sends that the SDK's models do not describe (they would be dropped silently).
OPENROUTER_EXTRAS = {"provider", "choices.native_finish_reason", "choices.error"}
HTTP = httpx.Client(timeout=10)  # one pooled client: a fresh one per call costs ~40 ms of TLS setup


@pytest.fixture(autouse=True, scope="module")
def _close_http():
    yield
    HTTP.close()


# -- audio fixtures -------------------------------------------------------------------------
_CODECS = {"mp3": ("mp3", "libmp3lame"), "flac": ("flac", "flac"), "wav": ("wav", "pcm_s16le"),
           "ogg": ("ogg", "libopus"), "m4a": ("ipod", "aac")}


@functools.lru_cache(maxsize=None)
def tone(fmt: str, seconds: float = 2.5, rate: int = 44100, channels: int = 2) -> bytes:
    """A 440 Hz sine of known length encoded in memory with PyAV."""
    container, codec = _CODECS[fmt]
    rate = 48000 if codec == "libopus" else rate
    layout = "stereo" if channels == 2 else "mono"
    n = round(seconds * rate)
    samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        step = 4096
        for i in range(0, n, step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.tile(samples[i:i + step], (channels, 1))),
                                               format="fltp", layout=layout)
            frame.sample_rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def audio_part(raw: bytes, fmt: str) -> dict:
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(raw).decode(), "format": fmt}}


def chat(*parts: dict | str, model: str = MODEL, system: str | None = None, **params) -> dict:
    content = [{"type": "text", "text": p} if isinstance(p, str) else p for p in parts]
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    return {"model": model, "messages": messages, **params}


def post(srv: LocalServer, body, headers=AUTH, **kw) -> httpx.Response:
    kwargs = {"content": body} if isinstance(body, (str, bytes)) else {"json": body}
    return HTTP.post(srv.base_url + "/chat/completions", headers=headers, **kwargs, **kw)


def stream_events(srv: LocalServer, body: dict, headers=AUTH, **kw) -> list[dict]:
    """Parsed data events of a stream (keep-alive comments are skipped by httpx-sse, as in clients)."""
    events = []
    with connect_sse(HTTP, "POST", srv.base_url + "/chat/completions", json={**body, "stream": True},
                     headers=headers, **kw) as source:
        assert source.response.status_code == 200, source.response.read()
        for sse in source.iter_sse():
            events.append("[DONE]" if sse.data == "[DONE]" else json.loads(sse.data))
    return events


def content_of(events: list) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events
                   if isinstance(e, dict) and e["choices"])


def expected_cost(prompt_tokens: int, audio_tokens: int, completion_tokens: int, audio_s: float) -> float:
    return (prompt_tokens - audio_tokens) * 0.10e-6 + completion_tokens * 0.30e-6 + audio_s * 100e-6


def dropped_keys(given, dumped, path: str = "") -> set[str]:
    """Key paths present in `given` but missing from the SDK model's dump (list indices elided)."""
    if isinstance(given, dict):
        missing = {f"{path}{k}" for k in given if not isinstance(dumped, dict) or k not in dumped}
        for k, v in given.items():
            if isinstance(dumped, dict) and k in dumped:
                missing |= dropped_keys(v, dumped[k], f"{path}{k}.")
        return missing
    if isinstance(given, list) and isinstance(dumped, list):
        return set().union(*(dropped_keys(g, d, path) for g, d in zip(given, dumped)))
    return set()


def sdk_check(model: type, obj: dict) -> None:
    parsed = model.model_validate(obj, strict=True)
    assert dropped_keys(obj, parsed.model_dump(exclude_unset=True, by_alias=True)) <= OPENROUTER_EXTRAS


# -- decoding, answers, usage -----------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["mp3", "flac", "wav", "ogg", "m4a"])
def test_audio_is_decoded_and_hashed(server, fmt):
    raw = tone(fmt)
    r = post(server, chat("What is this sound?", audio_part(raw, fmt)))
    assert r.status_code == 200, r.text
    text = r.json()["choices"][0]["message"]["content"]
    (k, seconds, said_fmt, sha), = HEARD.findall(text)
    assert (k, said_fmt) == ("1", fmt)
    assert abs(float(seconds) - 2.5) < 0.03
    assert sha == hashlib.sha256(raw).hexdigest()[:12]
    assert text.endswith("Prompt: What is this sound?")
    rec = server.requests[-1]
    info = rec.audio[0]
    assert (info.n_bytes, info.sha256, info.channels) == (len(raw), hashlib.sha256(raw).hexdigest(), 2)
    assert info.sample_rate == (48000 if fmt == "ogg" else 44100)
    assert rec.body["messages"][0]["content"][1]["input_audio"]["data"] == f"<{len(raw)} bytes>"
    assert rec.headers["Authorization"] == "Bearer ***" and rec.prompt == "What is this sound?"
    assert (rec.status, rec.fault, rec.completed) == (200, None, True)
    assert r.headers["X-Generation-Id"] == rec.id == r.json()["id"]


def test_usage_and_cost_follow_voxtral_arithmetic(server):
    short, long_ = tone("flac"), tone("flac", seconds=31.0, rate=16000, channels=1)
    r = post(server, chat("Compare these two clips please", audio_part(short, "flac"), audio_part(long_, "flac"),
                          system="Be brief."))
    assert r.status_code == 200
    body = r.json()
    sdk_check(orc.ChatResult, body)
    answer, usage = body["choices"][0]["message"]["content"], body["usage"]
    assert answer.startswith("System: Be brief. Heard 2 clips: [1] 2.500 s flac")
    assert [float(s) for _, s, _, _ in HEARD.findall(answer)] == [2.5, 31.0]
    audio_tokens = 376 + 751  # 1 + 375 * ceil(seconds / 30) per clip
    prompt_tokens = 5 + 2 + audio_tokens  # words of the user text and of the system text
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": audio_tokens}
    assert usage["prompt_tokens"] == prompt_tokens
    assert usage["completion_tokens"] == len(answer.split())
    assert usage["total_tokens"] == prompt_tokens + usage["completion_tokens"]
    assert usage["cost"] == pytest.approx(expected_cost(prompt_tokens, audio_tokens, usage["completion_tokens"], 33.5))
    assert usage["is_byok"] is False and server.requests[-1].cost == usage["cost"]


def test_stream_framing_keepalive_and_usage_last(server):
    body = chat("Describe it", audio_part(tone("mp3"), "mp3"), stream=True)
    with HTTP.stream("POST", server.base_url + "/chat/completions", json=body, headers=AUTH) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["transfer-encoding"] == "chunked" and r.headers["x-generation-id"].startswith("gen-")
        raw = b"".join(r.iter_raw()).decode()
    assert raw.endswith("\n\n")
    events = raw[:-2].split("\n\n")
    assert events[0] == ": OPENROUTER PROCESSING" and events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: "):]) for e in events[1:-1]]
    for chunk in chunks:
        sdk_check(orc.ChatStreamChunk, chunk)
    *tokens, finish, last = chunks
    assert last["choices"] == [] and set(last["usage"]) >= {"prompt_tokens", "completion_tokens", "cost"}
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["choices"][0]["delta"]["content"] == ""
    assert all(c["choices"][0]["finish_reason"] is None for c in tokens)
    assert last["usage"]["completion_tokens"] == len(tokens)
    plain = post(server, {**body, "stream": False}).json()
    assert content_of(chunks) == plain["choices"][0]["message"]["content"]
    assert plain["usage"] == last["usage"]


def test_latency_sends_keepalives_and_token_rate_paces(server):
    server.configure(latency=0.2, keepalive_interval=0.05, token_rate=200, answer_tokens=40)
    started = time.monotonic()
    with HTTP.stream("POST", server.base_url + "/chat/completions", json=chat("hi", stream=True),
                      headers=AUTH) as r:
        lines = [line for line in r.iter_lines() if line]
    assert time.monotonic() - started >= 0.2 + 40 / 200 * 0.8
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data:"))
    assert first_data >= 4 and set(lines[:first_data]) == {": OPENROUTER PROCESSING"}


def test_answer_tokens_max_tokens_and_stop(server):
    server.configure(answer_tokens=2000)
    events = stream_events(server, chat("long one"))
    tokens = [e for e in events[:-1] if e["choices"] and e["choices"][0]["delta"]["content"]]
    assert len(tokens) == events[-2]["usage"]["completion_tokens"] >= 2000
    assert "lorem ipsum dolor" in content_of(events)
    cut = post(server, chat("short please", max_tokens=7)).json()
    assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 7
    assert cut["choices"][0]["message"]["content"] == "Heard 0 clips. Prompt: short please lorem"
    stopped = post(server, chat("stop here", stop=["Prompt:", "zzz"])).json()["choices"][0]
    assert (stopped["message"]["content"], stopped["finish_reason"]) == ("Heard 0 clips. ", "stop")


def test_json_object_answer(server):
    raw = tone("wav")
    message = post(server, chat("as json", audio_part(raw, "wav"), response_format={"type": "json_object"}))
    value = json.loads(message.json()["choices"][0]["message"]["content"])
    assert value == {"clips": [{"duration_s": 2.5, "format": "wav", "sha256": hashlib.sha256(raw).hexdigest()}],
                     "prompt": "as json"}


class Speaker(BaseModel):
    name: str
    role: Literal["host", "guest"]


class Segment(BaseModel):
    start_s: float
    words: int = Field(ge=3)
    text: str = Field(min_length=10, max_length=12)
    speaker: Speaker
    confident: bool
    note: Optional[str] = None


class Summary(BaseModel):
    language: Literal["fr", "en"]
    segments: list[Segment] = Field(min_length=2)
    tags: list[str]
    host: Optional[Speaker]


def test_json_schema_answer_validates_and_streams_in_pieces(server):
    schema = Summary.model_json_schema()  # uses $defs / $ref / anyOf / enum like real users' schemas
    body = chat("summarise", audio_part(tone("flac"), "flac"),
                response_format={"type": "json_schema", "json_schema": {"name": "summary", "schema": schema}})
    content = post(server, body).json()["choices"][0]["message"]["content"]
    summary = Summary.model_validate_json(content, strict=True)
    assert summary.language == "fr" and len(summary.segments) == 2 and summary.host is not None
    assert summary.segments[0].start_s == 2.5 and summary.segments[0].words == 3 and summary.segments[0].confident
    events = stream_events(server, body)
    pieces = [e["choices"][0]["delta"]["content"] for e in events[:-2] if e["choices"]]
    assert "".join(pieces) == content and max(map(len, pieces)) <= 4
    assert events[-2]["usage"]["completion_tokens"] == math.ceil(len(content) / 4)


TOOLS = [
    {"type": "function", "function": {"name": "lookup", "description": "never chosen here"}},
    {"type": "function", "function": {"name": "tag_audio", "parameters": {
        "type": "object", "required": ["language", "speakers", "keywords", "loud"],
        "properties": {"language": {"type": "string", "enum": ["de", "en"]},
                       "speakers": {"type": "integer", "minimum": 4},
                       "keywords": {"type": "array", "items": {"type": "string"}},
                       "loud": {"type": "boolean"}}}}},
]


def test_tool_call_streams_and_reassembles(server):
    body = chat("tag it", audio_part(tone("flac"), "flac"), tools=TOOLS,
                tool_choice={"type": "function", "function": {"name": "tag_audio"}})
    events = stream_events(server, body)
    for event in events[:-1]:
        sdk_check(orc.ChatStreamChunk, event)
    calls = [e["choices"][0]["delta"]["tool_calls"][0] for e in events[:-3]]
    first, rest = calls[0], calls[1:]
    assert first["id"].startswith("call_") and first["type"] == "function"
    assert first["function"] == {"name": "tag_audio", "arguments": ""} and first["index"] == 0
    assert rest and all(set(c) == {"index", "function"} for c in rest)
    args = json.loads("".join(c["function"]["arguments"] for c in rest))
    assert args == {"language": "de", "speakers": 4, "keywords": ["sample"], "loud": True}
    assert events[-3]["choices"][0]["finish_reason"] == "tool_calls"
    plain = post(server, body).json()
    sdk_check(orc.ChatResult, plain)
    message = plain["choices"][0]["message"]
    assert message["content"] is None and json.loads(message["tool_calls"][0]["function"]["arguments"]) == args
    auto = post(server, chat("any tool", tools=TOOLS)).json()["choices"][0]["message"]
    assert auto["tool_calls"][0]["function"] == {"name": "lookup", "arguments": "{}"}
    body["messages"] += [{"role": "assistant", "content": None, "tool_calls": message["tool_calls"]},
                         {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "ok: 3 tags"}]
    after = post(server, body).json()["choices"][0]
    assert after["message"]["content"] == "Tool tag_audio returned: ok: 3 tags" and after["finish_reason"] == "stop"
    none = post(server, chat("no tools now", tools=TOOLS, tool_choice="none")).json()
    assert none["choices"][0]["message"]["content"].startswith("Heard 0 clips.")


# -- validation and auth ------------------------------------------------------------------------
def _broken_wav() -> bytes:
    return tone("wav")[:44]  # a header and no samples


@pytest.mark.parametrize("body, needle", [
    ("{not json", "not valid JSON"),
    ({"messages": [{"role": "user", "content": "x"}]}, "`model` is required"),
    (chat("x", model="openai/gpt-4o"), "openai/gpt-4o is not a valid model ID"),
    ({"model": MODEL, "messages": []}, "`messages`"),
    ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"model": MODEL, "messages": [{"role": "user"}]}, "messages[0].content"),
    ({"model": MODEL, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    (chat({"type": "image_url", "image_url": {"url": "x"}}), "messages[0].content[0].type"),
    (chat("x", {"type": "input_audio", "input_audio": "AAAA"}), "messages[0].content[1].input_audio must be an object"),
    (chat({"type": "input_audio", "input_audio": {"data": "data:audio/wav;base64,AAAA", "format": "wav"}}),
     "not a data: URI"),
    (chat({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "opus"}}), "input_audio.format"),
    (chat({"type": "input_audio", "input_audio": {"data": "%%%", "format": "wav"}}), "not valid base64"),
    (chat(audio_part(b"definitely not audio" * 20, "mp3")), "input_audio #1 could not be decoded"),
    (chat(audio_part(tone("flac"), "flac"), audio_part(_broken_wav(), "wav")), "input_audio #2 could not be decoded"),
    (chat(audio_part(b"\x00\x01\x02", "pcm16")), "input_audio #1 could not be decoded"),
    (chat("x", max_tokens=0), "`max_tokens`"),
    (chat("x", temperature=2.5), "`temperature`"),
    (chat("x", top_p=0), "`top_p`"),
    (chat("x", stop=["a", "b", "c", "d", "e"]), "`stop`"),
    (chat("x", presence_penalty=-3), "`presence_penalty`"),
    (chat("x", seed="7"), "`seed`"),
    (chat("x", stream="yes"), "`stream`"),
    (chat("x", response_format={"type": "json_schema", "json_schema": {"name": "a"}}), "response_format.json_schema"),
    (chat("x", response_format={"type": "yaml"}), "response_format.type"),
    (chat("x", tools=[{"type": "function", "function": {}}]), "`tools`"),
    (chat("x", tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}), "`tool_choice`"),
])
def test_validation_errors_name_the_field(server, body, needle):
    r = post(server, body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == 400 and needle in error["message"], error["message"]
    assert server.requests[-1].status == 400 and not server.requests[-1].completed


def test_unknown_keys_accepted_and_context_length_enforced(server):
    ok = post(server, chat("x", provider={"order": ["mistral"], "require_parameters": True}, user="u1",
                           models=[MODEL], temperature=0.2, top_p=0.95, seed=1, stop="zz"))
    assert ok.status_code == 200
    r = post(server, chat("word " * 32100, audio_part(tone("flac", seconds=40.0, rate=8000, channels=1), "flac")))
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["metadata"]["error_type"] == "context_length_exceeded" and "32768" in error["message"]


def test_auth(server):
    assert post(server, chat("x"), headers={}).json() == {"error": {"code": 401, "message": "No auth credentials found"}}
    server.configure(api_key="sk-right")
    wrong = post(server, chat("x"))
    assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "User not found."
    assert post(server, chat("x"), headers={"Authorization": "Bearer sk-right"}).status_code == 200
    assert [r.status for r in server.requests] == [401, 401, 200]


def test_rate_limit_per_key(server):
    server.configure(rate_limit=1)
    statuses = [post(server, chat("x")) for _ in range(2)]
    assert [r.status_code for r in statuses] == [200, 429]
    limited = statuses[-1]
    assert 0 < float(limited.headers["Retry-After"]) <= 1
    assert limited.json()["error"]["metadata"]["error_type"] == "rate_limit_exceeded"
    assert post(server, chat("x"), headers={"Authorization": "Bearer other-key"}).status_code == 200


# -- faults -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault, status, metadata", [
    ("http_400", 400, {}), ("http_401", 401, None), ("http_402", 402, {"error_type": "payment_required"}),
    ("http_403", 403, {"reasons": ["harassment"], "flagged_input": "please flag me", "provider_name": "Mistral",
                       "model_slug": MODEL}),
    ("http_408", 408, {}), ("http_413", 413, {}), ("http_429", 429, {"error_type": "rate_limit_exceeded"}),
    ("http_500", 500, {}), ("http_502", 502, {"provider_name": "Mistral"}), ("http_503", 503, {}),
])
def test_http_faults(server, fault, status, metadata):
    server.add_fault(fault, retry_after=0.5)
    r = post(server, chat("please flag me", stream=True))
    assert r.status_code == status
    error = r.json()["error"]
    assert error["code"] == status and error["message"]
    if metadata is None:
        assert "metadata" not in error
    else:
        assert metadata.items() <= error["metadata"].items()
    if status == 402:
        assert error["message"].startswith("Insufficient credits")
    if status == 429:
        assert r.headers["Retry-After"] == "0.5"
    rec = server.requests[-1]
    assert (rec.status, rec.fault, rec.completed) == (status, fault, False)
    assert post(server, chat("again")).status_code == 200  # consumed


def test_faults_match_and_times_in_order(server):
    server.add_fault("http_500", match="second", times=2)
    server.add_fault("http_502")
    codes = [post(server, chat(p)).status_code for p in ("first", "second", "the second", "second", "x")]
    assert codes == [502, 500, 500, 200, 200]


def test_reset_mid_stream(server):
    server.add_fault("reset_mid_stream", after_tokens=3)
    seen = []
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        with HTTP.stream("POST", server.base_url + "/chat/completions", json=chat("reset me", stream=True),
                          headers=AUTH, timeout=5) as r:
            seen.extend(line for line in r.iter_lines() if line.startswith("data:"))
    assert len(seen) == 3
    rec = server.requests[-1]
    assert (rec.fault, rec.completed, rec.tokens_sent, rec.usage) == ("reset_mid_stream", False, 3, None)
    server.add_fault("reset_mid_stream")
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        post(server, chat("not streamed"))


def test_stall_outlasts_read_timeout(server):
    short = httpx.Timeout(5, read=0.2)
    server.add_fault("stall", after_tokens=2, seconds=1)
    seen = []
    with pytest.raises(httpx.ReadTimeout):
        with HTTP.stream("POST", server.base_url + "/chat/completions", json=chat("slow", stream=True),
                          headers=AUTH, timeout=short) as r:
            seen.extend(line for line in r.iter_lines() if line.startswith("data:"))
    assert len(seen) == 2
    server.add_fault("stall", seconds=1)
    with pytest.raises(httpx.ReadTimeout):  # stalls before the status line
        post(server, chat("slow", stream=True), timeout=short)
    server.add_fault("stall", seconds=0.3)
    events = stream_events(server, chat("patient"))  # a client that waits gets the whole answer
    assert events[-1] == "[DONE]" and server.requests[-1].completed


def test_malformed_sse(server):
    server.add_fault("malformed_sse", after_tokens=2)
    with HTTP.stream("POST", server.base_url + "/chat/completions", json=chat("x", stream=True),
                      headers=AUTH) as r:
        data = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data:")]
    assert len(data) == 3 and "[DONE]" not in data
    json.loads(data[1])
    with pytest.raises(json.JSONDecodeError):
        json.loads(data[2])


def test_error_chunk_streaming_and_not(server):
    server.add_fault("error_chunk", after_tokens=2)
    events = stream_events(server, chat("fail later"))
    assert events[-1] == "[DONE]" and content_of(events) == "Heard 0"
    error = events[-2]
    assert error["error"] == {"code": "server_error", "message": "Provider disconnected unexpectedly"}
    assert error["choices"][0]["finish_reason"] == "error" and "usage" not in error
    server.add_fault("error_chunk", after_tokens=3)
    r = post(server, chat("fail later"))
    assert r.status_code == 200
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "error" and choice["error"]["code"] == 502
    assert choice["message"]["content"] == "Heard 0 clips."
    assert not server.requests[-1].completed


def raw_stream(srv: LocalServer, body: dict) -> tuple[list, list[str]]:
    """(data events, comment lines) of a whole stream, read at the byte level.

    httpx raises RemoteProtocolError when a chunked body is cut off, so returning at all means the
    body ended cleanly; every event must be a well-formed `data:` line or a comment."""
    with HTTP.stream("POST", srv.base_url + "/chat/completions", json={**body, "stream": True},
                     headers=AUTH) as r:
        assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
        text = b"".join(r.iter_raw()).decode()
    assert text.endswith("\n\n")
    blocks = text[:-2].split("\n\n")
    comments = [b for b in blocks if b.startswith(":")]
    data = [b[len("data: "):] for b in blocks if not b.startswith(":")]
    assert len(comments) + len(data) == len(blocks) and all(b.startswith("data: ") for b in blocks
                                                             if not b.startswith(":"))
    return [d if d == "[DONE]" else json.loads(d) for d in data], comments


def test_no_done_sends_everything_but_done(server):
    whole = post(server, chat("no done please")).json()
    server.add_fault("no_done", after_tokens=2)  # acts at the end whatever after_tokens says
    events, comments = raw_stream(server, chat("no done please"))
    assert "[DONE]" not in events and set(comments) == {": OPENROUTER PROCESSING"}
    *tokens, finish, last = events
    assert content_of(tokens) == whole["choices"][0]["message"]["content"]
    assert all(t["choices"][0]["finish_reason"] is None for t in tokens)
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["choices"][0]["delta"]["content"] == ""
    assert last["choices"] == [] and last["usage"] == whole["usage"]
    rec = server.requests[-1]
    assert (rec.fault, rec.status, rec.completed, rec.tokens_sent) == ("no_done", 200, True, len(tokens))
    assert rec.usage == last["usage"] and rec.cost == last["usage"]["cost"]
    server.add_fault("no_done")  # a single body has no [DONE] to leave out
    plain = post(server, chat("no done please")).json()
    assert plain == {**whole, "id": plain["id"]} and server.requests[-1].completed


def test_no_usage_sends_content_and_finish_only(server):
    whole = post(server, chat("no usage please")).json()
    server.add_fault("no_usage", after_tokens=1)
    events, _ = raw_stream(server, chat("no usage please"))
    *tokens, finish = events
    assert content_of(tokens) == whole["choices"][0]["message"]["content"]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert "[DONE]" not in events and not any("usage" in e for e in events)
    rec = server.requests[-1]
    assert (rec.fault, rec.status, rec.completed, rec.usage, rec.cost) == ("no_usage", 200, False, None, None)
    assert rec.tokens_sent == len(tokens)
    server.add_fault("no_usage")
    plain = post(server, chat("no usage please")).json()
    assert "usage" not in plain and plain["choices"] == whole["choices"]
    assert (server.requests[-1].completed, server.requests[-1].usage) == (False, None)
    assert stream_events(server, chat("again"))[-1] == "[DONE]"  # consumed


# -- echo_key: a careless server quotes the Authorization header back ----------------------------
KEY = "sk-or-v1-echo-me-0123456789abcdef"
ECHO = {"Authorization": f"Bearer {KEY}"}
ECHO_DETAIL = f"bad request from client with headers Authorization: Bearer {KEY}"


def _refusals(srv: LocalServer) -> list[str]:
    """The texts of every chat refusal echo_key changes, made with the ECHO key."""
    srv.configure(api_key="sk-right")
    texts = [post(srv, chat("x"), headers=ECHO).text]
    srv.configure(api_key=None)
    texts += [post(srv, chat("x", temperature=5), headers=ECHO).text, post(srv, "{nope", headers=ECHO).text]
    for fault in ("http_400", "http_401"):
        srv.add_fault(fault)
        texts.append(post(srv, chat("x"), headers=ECHO).text)
    srv.add_fault("error_chunk", after_tokens=1)
    texts.append(json.dumps(stream_events(srv, chat("x"), headers=ECHO)))
    srv.add_fault("error_chunk", after_tokens=1)
    texts.append(post(srv, chat("x"), headers=ECHO).text)
    return texts


def test_echo_key_is_off_by_default(server):
    texts = _refusals(server)
    assert len(texts) == 7 and not [t for t in texts if KEY in t]
    assert json.loads(texts[0])["error"]["message"] == "User not found."
    assert json.loads(texts[1])["error"]["message"].startswith("`temperature` must be")
    assert "Provider disconnected unexpectedly" in texts[5]


def test_echo_key_in_401(server):
    server.configure(api_key="sk-right", echo_key=True)
    wrong = post(server, chat("x"), headers=ECHO)
    assert wrong.status_code == 401
    assert wrong.json() == {"error": {"code": 401, "message": f"Invalid API key provided: Bearer {KEY}"}}
    odd = post(server, chat("x"), headers={"Authorization": "Token abc"}).json()["error"]  # as received
    assert odd["message"] == "Invalid API key provided: Token abc"
    assert post(server, chat("x"), headers={}).json()["error"]["message"] == "No auth credentials found"
    server.configure(api_key=None)
    server.add_fault("http_401")
    faulted = post(server, chat("x"), headers=ECHO)
    assert faulted.status_code == 401 and faulted.json() == wrong.json()
    assert [r.headers.get("Authorization") for r in server.requests] == ["Bearer ***", "Bearer ***", None,
                                                                         "Bearer ***"]
    assert KEY not in HTTP.get(server.url + "/_control/requests").text  # the server's own log masks it


def test_echo_key_in_400_raw(server):
    assert HTTP.post(server.url + "/_control/config", json={"echo_key": "yes"}).status_code == 400
    assert HTTP.post(server.url + "/_control/config", json={"echo_key": True}).json()["config"]["echo_key"]
    server.add_fault("http_400")
    r = post(server, chat("x"), headers=ECHO)
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["code"], error["message"]) == (400, "Provider returned error")
    assert error["metadata"]["provider_name"] == "Mistral"
    assert json.loads(error["metadata"]["raw"]) == {"detail": ECHO_DETAIL}
    invalid = post(server, chat("x", temperature=5), headers=ECHO).json()["error"]
    assert invalid["message"] == "Provider returned error" and invalid["metadata"]["param"] == "temperature"
    raw = json.loads(invalid["metadata"]["raw"])
    assert raw["detail"] == ECHO_DETAIL and raw["error"].startswith("`temperature` must be")
    not_json = post(server, "{nope", headers=ECHO).json()["error"]
    assert json.loads(not_json["metadata"]["raw"]) == {"detail": ECHO_DETAIL, "error": "Request body is not valid JSON"}
    assert [r.status for r in server.requests] == [400, 400, 400]
    assert all(r.headers["Authorization"] == "Bearer ***" for r in server.requests)


def test_echo_key_in_error_chunk(server):
    server.configure(echo_key=True)
    server.add_fault("error_chunk", after_tokens=2)
    events = stream_events(server, chat("fail later"), headers=ECHO)
    assert events[-1] == "[DONE]" and content_of(events) == "Heard 0"
    assert events[-2]["error"] == {"code": "server_error",
                                   "message": f"upstream rejected credentials Bearer {KEY} mid-stream"}
    server.add_fault("error_chunk", after_tokens=2)
    choice = post(server, chat("fail later"), headers=ECHO).json()["choices"][0]
    assert choice["error"]["message"] == f"upstream rejected credentials Bearer {KEY} mid-stream"
    assert post(server, chat("fine"), headers=ECHO).status_code == 200  # an answer quotes nothing
    assert KEY not in HTTP.get(server.url + "/_control/requests").text


# (form fields, with a file, status) the dialect's transcriptions endpoint refuses
TRANSCRIPTION_REFUSALS = {
    "mistral": [({"model": "nope"}, True, 400), ({}, True, 422), ({"model": "voxtral-mini-latest"}, False, 400)],
    "vllm": [({"model": "nope"}, True, 404), ({"language": "xx"}, True, 400), ({}, False, 400)],
}


@pytest.mark.parametrize("dialect", ["mistral", "vllm"])
def test_echo_key_in_transcription_refusals(dialect):
    upload = {"file": ("a.flac", tone("flac"), "audio/flac")}

    def send(fields: dict, with_file: bool, headers=ECHO) -> httpx.Response:
        return HTTP.post(srv.base_url + "/audio/transcriptions", data=fields, files=upload if with_file else None,
                         headers=headers)

    with LocalServer(dialect=dialect, api_key="sk-right") as srv:
        right = {"Authorization": "Bearer sk-right"}
        quiet = [send({}, True)] + [send(f, w, right) for f, w, _ in TRANSCRIPTION_REFUSALS[dialect]]
        assert [r.status_code for r in quiet] == [401] + [s for _, _, s in TRANSCRIPTION_REFUSALS[dialect]]
        assert not [r.text for r in quiet if KEY in r.text or "sk-right" in r.text]
        srv.configure(echo_key=True)
        wrong = send({}, True)
        assert wrong.json() == {"error": {"code": 401, "message": f"Invalid API key provided: Bearer {KEY}"}}
        srv.configure(api_key=None)
        quoted = f" (bad request from client with headers Authorization: Bearer {KEY})"
        for fields, with_file, status in TRANSCRIPTION_REFUSALS[dialect]:
            r = send(fields, with_file)
            assert r.status_code == status, r.text
            body = r.json()
            message = body["detail"][0]["msg"] if status == 422 else (body.get("error") or body)["message"]
            assert message.endswith(quoted) and message.count(KEY) == 1, body
        model = "voxtral-mini-latest" if dialect == "mistral" else "mistralai/Voxtral-Small-24B-2507"
        srv.add_fault("http_400")
        raw = send({"model": model}, True).json()["error"]["metadata"]["raw"]
        assert json.loads(raw) == {"detail": ECHO_DETAIL}
        assert send({"model": model}, True).status_code == 200
        assert all(r.headers["Authorization"] == "Bearer ***" for r in srv.requests)


def test_transcription_no_usage_and_no_done():
    upload = {"file": ("a.flac", tone("flac"), "audio/flac")}
    with LocalServer(dialect="mistral") as srv:
        def send() -> dict:
            return HTTP.post(srv.base_url + "/audio/transcriptions", data={"model": "voxtral-mini-latest"},
                             files=upload, headers=AUTH).json()

        whole = send()
        srv.add_fault("no_usage")
        assert send() == {k: v for k, v in whole.items() if k != "usage"}
        srv.add_fault("no_done")
        assert send() == whole
        assert [(r.fault, r.completed, r.usage is None) for r in srv.requests] == [
            (None, True, False), ("no_usage", False, True), ("no_done", True, False)]


# -- dialects, other endpoints, control, lifecycle ------------------------------------------------
def test_mistral_and_vllm_dialects():
    raw = tone("flac")
    plain = {"type": "input_audio", "input_audio": base64.b64encode(raw).decode()}
    with LocalServer(dialect="mistral") as srv:
        assert srv.base_url == srv.url + "/v1"
        r = post(srv, chat("what", plain, model="voxtral-small-latest"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert "provider" not in body and "native_finish_reason" not in body["choices"][0]
        assert not {"cost", "cost_details", "is_byok"} & set(body["usage"])
        assert body["usage"]["prompt_tokens_details"]["audio_tokens"] == 376
        assert HEARD.findall(body["choices"][0]["message"]["content"])[0][2] == "flac"  # sniffed
        wrong = post(srv, chat("what", audio_part(raw, "flac"), model="voxtral-small-latest"))
        assert wrong.status_code == 400 and "input_audio must be a base64 string" in wrong.json()["error"]["message"]
        assert post(srv, chat("x")).json()["error"]["message"] == f"{MODEL} is not a valid model ID"
    with LocalServer(dialect="vllm") as srv:
        r = post(srv, chat("what", audio_part(raw, "flac"), model="mistralai/Voxtral-Small-24B-2507"))
        assert r.status_code == 200 and "cost" not in r.json()["usage"]
        assert post(srv, chat("what", plain, model="mistralai/Voxtral-Small-24B-2507")).status_code == 400


def test_models(server):
    models = HTTP.get(server.base_url + "/models").json()["data"]
    assert MODEL in [m["id"] for m in models]
    small = next(m for m in models if m["id"] == MODEL)
    assert small["context_length"] == 32768 and "audio" in small["architecture"]["input_modalities"]
    assert small["pricing"] == {"prompt": "0.0000001", "completion": "0.0000003", "audio": "0.0001"}


def test_models_in_every_dialect(server):
    body = HTTP.get(server.base_url + "/models").json()
    orc.ModelsListResponse.model_validate(body, strict=True)
    assert body["total_count"] == 3 and body["links"] == {"next": None}
    text_only = next(m for m in body["data"] if m["id"] == "mistralai/mistral-small-3.2-24b-instruct")
    assert text_only["architecture"]["input_modalities"] == ["text", "image"]
    assert text_only["pricing"] == {"prompt": "0.00000005", "completion": "0.0000001"}
    server.configure(model_prices={MODEL: {"audio": 0.0002}, "acme/listener": {"prompt": "0.000001"}})
    priced = {m["id"]: m for m in HTTP.get(server.base_url + "/models").json()["data"]}
    assert priced[MODEL]["pricing"] == {"prompt": "0.0000001", "completion": "0.0000003", "audio": "0.0002"}
    assert priced["acme/listener"]["pricing"] == {"prompt": "0.000001", "completion": "0.0000003", "audio": "0.0001"}
    assert "per million seconds" in priced["acme/listener"]["description"]
    with LocalServer(dialect="mistral", model_prices={"acme/listener": {"prompt": 1.0}}) as srv:
        body = HTTP.get(srv.base_url + "/models").json()
        assert body["object"] == "list" and srv.models_requests == 1
        listed = {m["id"]: m["capabilities"] for m in body["data"]}
        assert list(listed) == ["voxtral-small-latest", "voxtral-mini-latest", "mistral-small-latest"]
        assert [c["audio"] for c in listed.values()] == [True, True, False]
        assert not any("pricing" in m for m in body["data"])
    with LocalServer(dialect="vllm") as srv:
        body = HTTP.get(srv.base_url + "/models").json()
        (model,) = body["data"]
        assert model["id"] == model["root"] == "mistralai/Voxtral-Small-24B-2507"
        assert model["owned_by"] == "vllm" and model["max_model_len"] == 32768 and "pricing" not in model
        assert model["permission"][0]["id"] == "modelperm-voxtral-small-24b-2507"


def test_generation_and_key_are_gone(server):
    post(server, chat("one"))
    gid = server.requests[-1].id
    for prefix in ("/api/v1", "/v1"):
        assert HTTP.get(server.url + prefix + "/generation", params={"id": gid}, headers=AUTH).status_code == 404
        assert HTTP.get(server.url + prefix + "/key", headers=AUTH).status_code == 404


def test_control_endpoints(server):
    with httpx.Client(base_url=server.url) as c:
        assert c.post("/_control/faults", json=[{"fault": "http_503"}, {"fault": "http_402"}]).status_code == 200
        assert c.post("/_control/faults", json={"fault": "nonsense"}).status_code == 400
        assert c.post("/_control/config", json={"answer_tokens": 30}).status_code == 200
        assert c.post("/_control/config", json={"colour": "red"}).status_code == 400
        assert [post(server, chat("x")).status_code for _ in range(3)] == [503, 402, 200]
        log = c.get("/_control/requests").json()
        assert [entry["fault"] for entry in log] == ["http_503", "http_402", None]
        assert log[-1]["usage"]["completion_tokens"] >= 30
        assert c.post("/_control/reset").status_code == 200 and server.request_count == 0


def test_log_is_thread_safe(server):
    threads = [threading.Thread(target=post, args=(server, chat(f"n{i}"))) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.request_count == 12 and len({r.id for r in server.requests}) == 12
    assert sorted(r.prompt for r in server.requests) == sorted(f"n{i}" for i in range(12))


def test_stop_is_prompt_and_clean(caplog):
    caplog.set_level(logging.WARNING)
    srv = LocalServer().start()
    srv.add_fault("stall", after_tokens=1, seconds=30)
    with HTTP.stream("POST", srv.base_url + "/chat/completions", json=chat("hang", stream=True), headers=AUTH) as r:
        next(r.iter_lines())
        started = time.monotonic()
        srv.stop()
    assert time.monotonic() - started < 2
    assert not [r for r in caplog.records if "destroyed" in r.getMessage() or r.levelno >= logging.ERROR]
    with pytest.raises(httpx.ConnectError):
        HTTP.get(srv.url + "/api/v1/models")


def test_cli_serves_until_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-m", "voxmagic.testing.server", "--port", "0", "--answer-tokens", "9",
                             "--echo-key"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(r"voxmagic local server listening on (http://127\.0\.0\.1:\d+/api/v1)\n", line)
        assert match, line
        r = HTTP.post(match[1] + "/chat/completions", json=chat("cli"), headers=AUTH)
        assert r.json()["usage"]["completion_tokens"] == 9
        refused = HTTP.post(match[1] + "/chat/completions", json=chat("cli", temperature=5), headers=AUTH)
        assert "Authorization: Bearer sk-or-test" in refused.json()["error"]["metadata"]["raw"]  # --echo-key
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err, err


# -- Mistral's diarization and context bias -------------------------------------------------------
TURNS = ((110, 4.0), (220, 3.5), (110, 3.0), (220, 4.0), (110, 3.5))  # voices A B A | B A, by pitch
DIARIZE = {"model": "voxtral-mini-latest", "timestamp_granularities": "segment", "diarize": "true"}
SEGMENT = re.compile(r"segment (\d+) ([\d.]+)-([\d.]+) s voice (\d+) Hz heard ([0-9a-f]{12})")


@functools.cache
def talk(turns=TURNS, pause_s=0.4, start_s=0.0, end_s=None, fmt="flac", rate=44100) -> bytes:
    """Speakers taking turns (synth.voice_samples, 44.1 kHz stereo), cut to [start_s, end_s), encoded."""
    x = synth.voice_samples(list(turns), rate=rate, pause_s=pause_s, channels=2)
    return encode(x[:, round(start_s * rate): None if end_s is None else round(end_s * rate)], fmt, rate)


def encode(samples: np.ndarray, fmt: str = "flac", rate: int = 44100) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return synth.write_audio(f"{tmp}/clip.{fmt}", np.ascontiguousarray(samples, np.float32), rate).read_bytes()


def transcribe(srv: LocalServer, fields: dict, audio: bytes, files=(), headers=AUTH) -> httpx.Response:
    """POST the form with `audio` as its ``file`` and `files` as further file parts."""
    parts = [("file", ("talk.flac", audio, "audio/flac")), *files]
    return HTTP.post(srv.base_url + "/audio/transcriptions", data=fields, files=parts, headers=headers)


def speakers(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [s["speaker_id"] for s in r.json()["segments"]]


@pytest.fixture(scope="module")
def mistral():
    with LocalServer(dialect="mistral") as srv:
        yield srv


@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_diarized_segments_follow_the_turns(mistral, fmt):
    r = transcribe(mistral, DIARIZE, talk(fmt=fmt))
    body = r.json()
    assert speakers(r) == ["speaker_1", "speaker_2", "speaker_1", "speaker_2", "speaker_1"]
    for i, (seg, (start, end, pitch)) in enumerate(zip(body["segments"], synth.voice_turns(list(TURNS)), strict=True)):
        assert list(seg) == ["text", "start", "end", "speaker_id", "type"]  # as Mistral orders them
        assert seg["type"] == "transcription_segment"
        assert abs(seg["start"] - start) <= 0.3 and abs(seg["end"] - end) <= 0.3, (seg, start, end)
        m = SEGMENT.fullmatch(seg["text"])
        assert m and int(m[1]) == i + 1 and abs(int(m[4]) - pitch) <= 0.05 * pitch, seg["text"]
    assert body["text"] == " ".join(s["text"] for s in body["segments"]) and body["language"] is None
    assert body["usage"]["prompt_audio_seconds"] == math.ceil(synth.voice_turns(list(TURNS))[-1][1] + 0.3)


def test_labels_follow_order_of_appearance_and_cut_at_voice_changes(mistral):
    turns = ((220, 3.0), (110, 2.5), (165, 3.0), (220, 2.0))  # no pauses: the change of voice cuts
    r = transcribe(mistral, DIARIZE, talk(turns, pause_s=0.0))
    assert speakers(r) == ["speaker_1", "speaker_2", "speaker_3", "speaker_1"]
    for seg, (start, end, _) in zip(r.json()["segments"], synth.voice_turns(list(turns), 0.0), strict=True):
        assert abs(seg["start"] - start) <= 0.3 and abs(seg["end"] - end) <= 0.3, (seg, start, end)
    one = transcribe(mistral, DIARIZE, talk(((165, 25.0),)))  # one voice, long: pieces of at most 10 s
    assert speakers(one) == ["speaker_1"] * 3
    assert all(s["end"] - s["start"] <= 10.0 for s in one.json()["segments"])


def test_labels_drift_between_chunks(mistral):
    """Each request numbers its voices in its own order: the two halves of one file disagree."""
    spans = synth.voice_turns(list(TURNS))
    cut = spans[2][1] + 0.2  # mid-pause after the third turn: chunk 2 starts with voice B
    first, second = talk(end_s=cut), talk(start_s=cut)
    one = transcribe(mistral, DIARIZE, first)
    assert speakers(one) == ["speaker_1", "speaker_2", "speaker_1"]  # A, B, A
    two = transcribe(mistral, DIARIZE, second)
    assert speakers(two) == ["speaker_1", "speaker_2"]  # B, A: drifted
    assert [round(s["start"] + cut, 1) for s in two.json()["segments"]] == [round(a, 1) for a, _, _ in spans[3:]]


def test_context_bias_is_accepted_and_echoed(mistral):
    terms = ["Northwind", "Alder_Creek_Design", "Quillara"]
    suffix = " (bias: Northwind Alder_Creek_Design Quillara)"
    diarized = transcribe(mistral, DIARIZE | {"context_bias": terms}, talk())
    assert speakers(diarized) == ["speaker_1", "speaker_2", "speaker_1", "speaker_2", "speaker_1"]
    assert all(s["text"].endswith(suffix) for s in diarized.json()["segments"])
    assert mistral.requests[-1].body["context_bias"] == terms
    plain_fields = {"model": "voxtral-mini-latest", "timestamp_granularities": "segment"}
    plain = transcribe(mistral, plain_fields, tone("flac", 23.4)).json()
    biased = transcribe(mistral, plain_fields | {"context_bias": terms}, tone("flac", 23.4)).json()
    assert [s["text"] for s in biased["segments"]] == [s["text"] + suffix for s in plain["segments"]]
    assert [(s["start"], s["end"]) for s in biased["segments"]] == [(0.0, 10.0), (10.0, 20.0), (20.0, 23.4)]
    one = transcribe(mistral, {"model": "voxtral-mini-latest", "context_bias": "Voxtral"}, tone("flac")).json()
    assert one["segments"] == [] and one["text"].endswith(" (bias: Voxtral)")
    assert mistral.requests[-1].body["context_bias"] == ["Voxtral"]  # logged as a list even when single
    hundred = [f"term_{i}" for i in range(100)]
    many = transcribe(mistral, {"model": "voxtral-mini-latest", "context_bias": hundred}, tone("flac"))
    assert many.status_code == 200, many.text


@pytest.mark.parametrize("fields, loc, kind, needle", [
    ({"context_bias": ["Alder Creek"]}, ["body", "context_bias", 0], "string_pattern_mismatch",
     "String should match pattern '^[^,\\s]+$'"),
    ({"context_bias": ["Northwind", "a,b"]}, ["body", "context_bias", 1], "string_pattern_mismatch", "pattern"),
    ({"context_bias": ["ok", ""]}, ["body", "context_bias", 1], "string_pattern_mismatch", "pattern"),
    ({"context_bias": [f"t{i}" for i in range(101)]}, ["body", "context_bias"], "too_long",
     "List should have at most 100 items after validation, not 101"),
    ({"diarize": "maybe"}, ["body", "diarize"], "bool_parsing", "Input should be a valid boolean"),
])
def test_malformed_diarize_and_bias_fields_are_refused_as_mistral_does(mistral, fields, loc, kind, needle):
    r = transcribe(mistral, {"model": "voxtral-mini-latest"} | fields, tone("flac"))
    assert r.status_code == 422, r.text
    (detail,) = r.json()["detail"]
    assert (detail["loc"], detail["type"]) == (loc, kind) and needle in detail["msg"], detail


@pytest.mark.parametrize("granularities", [[], ["word"], ["segment", "word"]])
def test_diarize_without_segment_timestamps_is_refused_as_mistral_does(mistral, granularities):
    fields = {"model": "voxtral-mini-latest", "diarize": "true", "timestamp_granularities": granularities}
    r = transcribe(mistral, fields, tone("flac"))
    assert r.status_code == 422, r.text
    body = r.json()  # the shape quoted in laravel/ai#671
    assert {k: body[k] for k in ("object", "type", "param", "code", "raw_status_code")} == {
        "object": "error", "type": "invalid_request_error", "param": None, "code": None, "raw_status_code": 422}
    (detail,) = body["message"]["detail"]
    assert detail["type"] == "assertion_error" and detail["loc"] == []
    assert detail["msg"] == ("Assertion failed, When diarize is set to True and streaming is disabled, the timestamp "
                             f"granularity must be set to ['segment'], got {granularities!r}")
    assert detail["input"]["diarize"] is True and detail["input"]["timestamp_granularities"] == granularities
    off = transcribe(mistral, {"model": "voxtral-mini-latest", "diarize": "false"}, tone("flac"))
    assert off.content == transcribe(mistral, {"model": "voxtral-mini-latest"}, tone("flac")).content


def test_diarize_refusal_quotes_the_key_with_echo_key():
    with LocalServer(dialect="mistral", echo_key=True) as srv:
        r = transcribe(srv, {"model": "voxtral-mini-latest", "diarize": "true"}, tone("flac"), headers=ECHO)
        msg = r.json()["message"]["detail"][0]["msg"]
        assert r.status_code == 422 and msg.endswith(f" ({ECHO_DETAIL})")


@pytest.mark.parametrize("fields, files, name", [
    (DIARIZE, [("speaker_references", ("bob.flac", b"a clip of bob", "audio/flac"))], "speaker_references"),
    (DIARIZE | {"speaker_references": "bob.flac"}, [], "speaker_references"),
    ({"model": "voxtral-mini-latest", "speaker_names": "bob"}, [], "speaker_names"),
])
def test_speaker_reference_fields_are_unknown_to_mistral(mistral, fields, files, name):
    """No public source documents speaker reference clips: Mistral refuses them as any extra field."""
    r = transcribe(mistral, fields, talk(), files)
    assert r.status_code == 422, r.text
    (detail,) = r.json()["detail"]
    assert detail["type"] == "extra_forbidden" and detail["loc"] == ["body", name], detail
    assert detail["msg"] == "Extra inputs are not permitted", detail


def test_vllm_ignores_mistral_fields_as_vllm_does():
    fields = {"response_format": "verbose_json", "timestamp_granularities[]": "segment"}
    with LocalServer(dialect="vllm") as srv:
        plain = transcribe(srv, fields, talk())
        extra = transcribe(srv, fields | {"diarize": "true", "context_bias": ["a b", "c"]}, talk())
    assert plain.status_code == extra.status_code == 200
    assert plain.json() == extra.json() and not [s for s in extra.json()["segments"] if "speaker_id" in s]
