"""The streaming client end to end over real HTTP against the local OpenRouter-compatible server."""
from __future__ import annotations

import asyncio
import re
import time

import pytest

from voxmagic import audio
from voxmagic.client import Client
from voxmagic.runner import priced
from voxmagic.settings import Settings
from voxmagic.streaming import Retrying, TextDelta
from voxmagic.errors import (APIConnectionError, AuthenticationError, ConfigError, NotFoundError,
                             BadRequestError, InsufficientCreditsError, ModerationError,
                             RateLimitError, ServerError)
from voxmagic.chat import ChatRequest, Params
from voxmagic.testing.synth import tone_file

ANSWER = re.compile(r"Heard 1 clips: \[1\] (?P<dur>[\d.]+) s (?P<fmt>\w+) sha256:(?P<sha>[0-9a-f]{12})\.")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tone_file(tmp_path_factory.mktemp("audio") / "tone.mp3", 2.5)
    return audio.prepare(str(path))


def call(server, clip, *, params=None, events=None, **client_kw):
    """One request through a fresh Client on a private loop."""
    client_kw = {"backoff": 0.01, **client_kw}

    async def go():
        async with Client(Settings(api_key="test-key", base_url=server.base_url, **client_kw)) as client:
            return await client.complete(ChatRequest("Describe the audio.", (clip,), params or Params()),
                                         events.append if events is not None else None)

    return asyncio.run(go())


def test_stream_joins_deltas_and_reads_usage_after_finish_reason(server, clip):
    events = []
    r = call(server, clip, events=events)
    m = ANSWER.match(r.text)
    assert m and m["sha"] == clip.sha256[:12] and m["fmt"] == "mp3"  # the audio arrived whole
    assert abs(float(m["dur"]) - 2.5) < 0.05
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == r.text
    assert len(events) > 5  # it really streamed
    rec = server.requests[-1]
    assert r.finish_reason == "stop" and r.attempts == 1
    assert r.cost_source == "reported" and r.cost_usd == rec.cost  # read past finish_reason
    assert r.usage.audio_tokens == 376 and r.usage.completion_tokens == len(r.text.split())
    assert r.generation_id == rec.id and r.ttft_s is not None and r.latency_s >= r.ttft_s
    assert r.audio_seconds == clip.duration_s


def test_sent_comes_once_the_body_is_written_and_before_any_text(server, clip):
    """httpcore's trace says when the request has left (a notebook's first cell shows its live
    view then): one Sent per attempt, before the first token, streamed or not."""
    for params in (Params(), Params(stream=False)):
        events = []
        call(server, clip, params=params, events=events)
        kinds = [type(e).__name__ for e in events]
        assert kinds.count("Sent") == 1 and kinds.index("Sent") < kinds.index("TextDelta"), kinds
    server.add_fault("http_503")
    events = []
    r = call(server, clip, events=events)
    assert r.attempts == 2 and [type(e).__name__ for e in events].count("Sent") == 2


def test_non_streaming(server, clip):
    r = call(server, clip, params=Params(stream=False))
    assert ANSWER.match(r.text) and r.cost_usd == server.requests[-1].cost
    assert server.requests[-1].body["stream"] is False


def test_every_parameter_reaches_the_server(server, clip):
    params = Params(max_tokens=5, temperature=0.3, top_p=0.9, stop=["zzz"], frequency_penalty=0.1,
                    presence_penalty=0.2, seed=42)
    r = call(server, clip, params=params)
    body = server.requests[-1].body
    for key in ("max_tokens", "temperature", "top_p", "frequency_penalty", "presence_penalty", "seed"):
        assert body[key] == getattr(params, key)
    assert body["stop"] == ["zzz"]
    assert r.finish_reason == "length" and r.usage.completion_tokens == 5


def test_stop_sequence_cuts_the_answer(server, clip):
    r = call(server, clip, params=Params(stop="sha256"))
    assert r.text.endswith("mp3 ") or "sha256" not in r.text


def test_headers_and_key_handling(server, clip):
    call(server, clip, referer="https://example.org/nb", title="My demo")
    headers = {k.lower(): v for k, v in server.requests[-1].headers.items()}
    assert headers["http-referer"] == "https://example.org/nb" and headers["x-title"] == "My demo"
    assert headers["authorization"] == "Bearer ***"  # the server redacts; the client sent one
    assert "test-key" not in repr(Client(Settings(api_key="test-key", base_url=server.base_url)))


def test_json_schema_is_parsed(server, clip):
    schema = {"type": "object", "properties": {"topic": {"type": "string"}, "minutes": {"type": "number"},
                                               "speakers": {"type": "array", "items": {"type": "string"}}},
              "required": ["topic", "minutes", "speakers"]}
    r = call(server, clip, params=Params(response_format=schema))
    assert set(r.parsed) == {"topic", "minutes", "speakers"}
    assert isinstance(r.parsed["speakers"], list) and r.value is r.parsed
    assert server.requests[-1].body["response_format"]["type"] == "json_schema"


def test_pydantic_response_format_parses_into_the_model(server, clip):
    from pydantic import BaseModel

    class Clip(BaseModel):
        topic: str
        minutes: float

    r = call(server, clip, params=Params(response_format=Clip))
    assert isinstance(r.parsed, Clip) and r.parse_error is None and r.value is r.parsed
    assert "response_model" not in server.requests[-1].body  # never sent


def test_json_that_does_not_fit_the_model_is_kept_with_a_note(server, clip):
    from pydantic import BaseModel

    from voxmagic.results import Response, attach_json

    class Strict(BaseModel):
        impossible: int

    r = attach_json(Response(text='{"impossible": "not a number"}', model="m"), Strict)
    assert r.parsed == {"impossible": "not a number"} and "does not fit Strict" in r.parse_error
    r = attach_json(Response(text="plain words", model="m"))
    assert r.parsed is None and r.value == "plain words" and "not valid JSON" in r.parse_error


def test_tool_calls_stream_and_reassemble(server, clip):
    tool = {"type": "function", "function": {"name": "log_topic", "parameters": {
        "type": "object", "properties": {"topic": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["topic", "n"]}}}
    r = call(server, clip, params=Params(tools=[tool], tool_choice="log_topic"))
    assert r.finish_reason == "tool_calls"
    (tc,) = r.tool_calls
    assert tc.name == "log_topic" and tc.id and set(tc.args) == {"topic", "n"}


# --- faults: retried and recovered ------------------------------------------------------------

@pytest.mark.parametrize("fault", ["http_500", "http_502", "http_503", "http_408", "reset_mid_stream",
                                   "malformed_sse", "error_chunk"])
def test_transient_faults_are_retried(server, clip, fault):
    server.add_fault(fault, after_tokens=3)
    events = []
    r = call(server, clip, events=events)
    assert ANSWER.match(r.text) and r.attempts == 2 and len(r.retries) == 1
    assert [e.attempt for e in events if isinstance(e, Retrying)] == [1]
    assert server.request_count == 2 and server.requests[-1].completed
    assert r.cost_usd == server.requests[-1].cost


@pytest.mark.parametrize("fault", ["reset_mid_stream", "malformed_sse", "http_503"])
def test_transient_faults_without_streaming_are_retried(server, clip, fault):
    server.add_fault(fault)
    r = call(server, clip, params=Params(stream=False))
    assert ANSWER.match(r.text) and r.attempts == 2 and server.requests[-1].completed


def test_retry_after_is_honoured(server, clip):
    server.add_fault("http_429", retry_after=0.4)
    r = call(server, clip, backoff=5.0)  # backoff alone would wait ≥ 5 s
    assert r.attempts == 2
    ((error, waited),) = r.retries
    assert error == "RateLimitError 429" and 0.4 <= waited <= 0.6  # never earlier than asked


def test_stall_past_read_timeout_is_retried(server, clip):
    server.add_fault("stall", seconds=1.5, after_tokens=2)
    r = call(server, clip, read_timeout=0.4)
    assert r.attempts == 2 and r.retries[0][0] == "APITimeoutError"
    assert ANSWER.match(r.text)


def test_error_in_a_200_non_streaming_reply_is_an_error(server, clip):
    server.add_fault("error_chunk", times=9)
    with pytest.raises(ServerError) as err:
        call(server, clip, params=Params(stream=False), max_attempts=2)
    assert err.value.attempts == 2 and server.request_count == 2


def test_persistent_failure_gives_up_with_partial_text(server, clip):
    server.add_fault("error_chunk", times=9, after_tokens=4)
    with pytest.raises(ServerError) as err:
        call(server, clip, max_attempts=3)
    e = err.value
    assert e.attempts == 3 and server.request_count == 3
    assert e.partial_text.startswith("Heard 1 clips:") and e.generation_id
    assert "gave up after 3 attempts" in str(e) and "\n" not in str(e)


def test_rate_limits_are_waited_out_within_patience_not_attempts(server, clip):
    server.add_fault("http_429", times=5, retry_after=0.01)
    r = call(server, clip, max_attempts=2)
    assert r.attempts == 6 and ANSWER.match(r.text)


def test_rate_limit_gives_up_when_patience_runs_out(server, clip):
    server.add_fault("http_429", times=1000, retry_after=0.05)
    with pytest.raises(RateLimitError) as err:
        call(server, clip, rate_limit_patience=0.5)
    e = err.value
    assert e.retry_after == pytest.approx(0.05) and e.status == 429
    assert e.attempts == server.request_count >= 5 and "gave up after" in str(e)


def test_a_rate_limit_wait_longer_than_the_patience_is_not_begun(server, clip):
    """Retry-After 30 s with 2 s of patience: it fails at once (it waited 30-45 s, up to 60 s)."""
    server.add_fault("http_429", times=1, retry_after=30)
    started = time.monotonic()
    with pytest.raises(RateLimitError) as err:
        call(server, clip, rate_limit_patience=2)
    assert err.value.attempts == 1 == server.request_count and time.monotonic() - started < 5
    assert str(err.value).endswith("(the server asked to wait 30 s, over the 2 s of rate_limit_patience)")
    assert call(server, clip, rate_limit_patience=2).attempts == 1  # the fault is spent: an answer


# --- faults: clear typed errors, not retried --------------------------------------------------

@pytest.mark.parametrize("fault, exc, advice", [
    ("http_400", BadRequestError, "invalid"),
    ("http_413", BadRequestError, "invalid"),
    ("http_401", AuthenticationError, "OPENROUTER_API_KEY"),
    ("http_402", InsufficientCreditsError, "add credits"),
    ("http_403", ModerationError, "flagged"),
])
def test_client_errors_are_typed_and_not_retried(server, clip, fault, exc, advice):
    server.add_fault(fault)
    with pytest.raises(exc) as err:
        call(server, clip)
    assert server.request_count == 1 and err.value.attempts == 1
    assert advice in str(err.value) and "\n" not in str(err.value)
    assert "test-key" not in str(err.value)


def test_a_base_url_without_the_api_path_says_to_check_it(server, clip):
    """OpenRouter's address without /api/v1: the server's own 404 for an unknown path."""
    async def go():
        async with Client(Settings(api_key="test-key", base_url=server.url)) as client:
            return await client.complete(ChatRequest("Q", (clip,), Params()))

    with pytest.raises(NotFoundError) as err:
        asyncio.run(go())
    assert err.value.status == 404 and "check the base URL (it ends in /api/v1 for OpenRouter" in str(err.value)
    assert str(err.value).startswith("HTTP 404: Not Found (")  # aiohttp's body "404: Not Found", said once
    assert server.request_count == 0 and err.value.attempts == 1  # nothing reached the chat endpoint


@pytest.mark.parametrize("url", ["not-a-url", "openrouter.ai/api/v1", "ftp://example.com/v1"])
def test_a_base_url_that_is_not_one_is_refused_in_one_line(url):
    with pytest.raises(ConfigError, match=r"^the base URL '.*' is not a URL: give the API's address"):
        Settings.resolve(base_url=url)


def test_a_pasted_key_loses_its_line_end(server, clip, monkeypatch):
    """``export OPENROUTER_API_KEY="$(cat key.txt)"`` of a CRLF file: the key went out with its
    line end, httpx refused the header, and the error showed the key in full (and was retried)."""
    server.configure(api_key="the-right-key")
    monkeypatch.setenv("OPENROUTER_API_KEY", "the-right-key\r\n")
    settings = Settings.resolve(base_url=server.base_url)
    assert settings.api_key == "the-right-key"
    assert Settings.resolve(base_url=server.base_url, api_key=" the-right-key\n").api_key == "the-right-key"

    async def go():
        async with Client(settings) as client:
            return await client.complete(ChatRequest("Q", (clip,), Params()))

    assert asyncio.run(go()).text


@pytest.mark.parametrize("key, char", [("sk-or-v1-abc\u2019", "RIGHT SINGLE QUOTATION MARK, character 13 of 13"),
                                       ("sk-or-v1 abc", "SPACE, character 9 of 12"),
                                       ("sk-or\x7f-v1-abc", "U+007F, character 6 of 13")])
def test_a_key_no_request_can_carry_is_refused_in_one_line(monkeypatch, key, char):
    monkeypatch.setenv("OPENROUTER_API_KEY", key)
    with pytest.raises(ConfigError) as err:
        Settings.resolve()
    message = str(err.value)
    assert message == (f"the API key in OPENROUTER_API_KEY holds a character a request cannot carry ({char}): "
                       "copy the key again without it")
    with pytest.raises(ConfigError, match=r"^the API key given as api_key= holds a character") as err:
        Settings.resolve(api_key=key)
    assert "abc" not in message + str(err.value)


@pytest.mark.parametrize("url", ["http://user:sk-secret-123@127.0.0.1:9/api/v1", "http://sk-secret-123@127.0.0.1:9/v1",
                                 "http://127.0.0.1:9/api/v1?key=sk-secret-123"])
def test_a_key_in_the_base_url_is_refused_without_showing_it(url):
    """It was printed in every connection error and stored in history's base_url and error."""
    with pytest.raises(ConfigError, match=r"^the base URL holds a user name, a password or a query") as err:
        Settings.resolve(base_url=url)
    assert "sk-secret-123" not in str(err.value)


def test_https_to_a_plain_http_server_says_so(server, clip):
    async def go():
        async with Client(Settings(api_key="k", base_url=server.base_url.replace("http://", "https://"))) as c:
            await c.complete(ChatRequest("Q", (clip,), Params()))

    with pytest.raises(APIConnectionError) as err:
        asyncio.run(go())
    assert err.value.attempts == 1 and "(the server there does not speak TLS: use http:// in the base URL)" in str(err.value)


def test_an_empty_variable_does_not_hide_the_key_in_dotenv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OPENROUTER_API_KEY=sk-or-from-dotenv\n")
    monkeypatch.setenv("OPENROUTER_API_KEY", "")
    assert Settings.resolve().api_key == "sk-or-from-dotenv"


def test_wrong_key(server, clip):
    server.configure(api_key="the-right-key")
    with pytest.raises(AuthenticationError, match="HTTP 401"):
        call(server, clip)


def test_validation_error_names_the_field(server, clip):
    with pytest.raises(BadRequestError, match="not a valid model ID"):
        asyncio.run(_send(server, ChatRequest("q", (clip,), model="nobody/nothing")))


async def _send(server, request, **kw):
    async with Client(Settings(api_key="k", base_url=server.base_url, backoff=0.01, **kw)) as client:
        return await client.complete(request)


def test_nothing_listening_is_a_connection_error():
    async def go():
        async with Client(Settings(api_key="k", base_url="http://127.0.0.1:9/api/v1", backoff=0.01,
                                   max_attempts=2)) as c:
            await c.complete(ChatRequest("q", (audio.EncodedAudio(b"x", "mp3", 1.0),)))

    started = time.monotonic()
    with pytest.raises(APIConnectionError, match="could not connect") as err:
        asyncio.run(go())
    # connection refused on this machine is final: nothing is listening, retrying starts nothing
    assert err.value.attempts == 1 and time.monotonic() - started < 5
    assert "nothing is listening there" in str(err.value)


# --- other dialects ---------------------------------------------------------------------------

def test_mistral_dialect_without_cost_is_estimated_from_usage(clip):
    from voxmagic.testing.server import LocalServer

    with LocalServer(dialect="mistral") as srv:
        request = ChatRequest("q", (clip,), model="voxtral-small-latest", dialect="mistral")
        r = asyncio.run(_send(srv, request))
        rec = srv.requests[-1]
    assert rec.cost is None and r.cost_source == "unknown" and r.cost_usd is None  # the client reports
    r = priced(r, request)  # the runner estimates
    assert r.cost_source == "estimated"
    u = r.usage
    expected = (u.prompt_tokens - u.audio_tokens) * 0.1e-6 + u.completion_tokens * 0.3e-6 + 2.5 * 100e-6
    assert r.cost_usd == pytest.approx(expected, rel=1e-3)


def test_openai_dialect_shape_is_refused_by_a_mistral_server(clip):
    from voxmagic.testing.server import LocalServer

    with LocalServer(dialect="mistral") as srv:
        with pytest.raises(BadRequestError, match="input_audio"):
            asyncio.run(_send(srv, ChatRequest("q", (clip,), model="voxtral-small-latest",
                                               dialect="openai")))
