"""``audio/transcriptions`` end to end: TranscriptionRequest → Client.transcribe → the local server's
Mistral and vLLM look-alikes (multipart over a real socket, audio decoded for real) and back."""
from __future__ import annotations

import asyncio
import json
import math
import re

import httpx
import pytest

from voxmagic import audio
from voxmagic.audio import EncodedAudio
from voxmagic.client import Client
from voxmagic.providers import TRANSCRIPTION_PRICES
from voxmagic.runner import priced
from voxmagic.settings import Settings
from voxmagic.streaming import Retrying, Sent, TextDelta
from voxmagic.errors import AuthenticationError, BadRequestError, ConfigError
from voxmagic.chat import ChatRequest
from voxmagic.testing.server import LocalServer
from voxmagic.testing.synth import tone_file
from voxmagic.transcriptions import TranscriptionRequest

MISTRAL = ("mistral", "voxtral-mini-latest", "mistral")  # server dialect, model, request dialect
VLLM = ("vllm", "mistralai/Voxtral-Small-24B-2507", "openai")
AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """23.4 s of tone as mp3: three segments of the local server's 10 s windows."""
    return audio.prepare(str(tone_file(tmp_path_factory.mktemp("audio") / "tone.mp3", 23.4)))


@pytest.fixture(scope="module")
def other_clip(tmp_path_factory):
    return audio.prepare(str(tone_file(tmp_path_factory.mktemp("audio") / "other.mp3", 3.0, freq=660.0)))


@pytest.fixture(scope="module", params=[MISTRAL, VLLM], ids=["mistral", "vllm"])
def endpoint(request):
    """(server, model, request dialect) for each dialect; the server lives for the module."""
    server_dialect, model, dialect = request.param
    with LocalServer(dialect=server_dialect) as srv:
        yield srv, model, dialect


@pytest.fixture
def srv(endpoint):
    server = endpoint[0]
    server.reset()
    return server


def transcribe(server, request, events=None, key="test-key", **client_kw):
    async def go():
        async with Client(Settings(api_key=key, base_url=server.base_url, backoff=0.01, **client_kw)) as client:
            return await client.transcription(request, events.append if events is not None else None)

    return asyncio.run(go())


def post(server, data, files=None, **kw):
    return httpx.post(server.base_url + "/audio/transcriptions", data=data, files=files, headers=AUTH,
                      timeout=10, **kw)


def assert_tiles(segments, duration):
    """Start at 0, end at the clip's end, in order, each piece following the previous one."""
    assert segments and segments[0]["start_s"] == 0
    assert abs(segments[-1]["end_s"] - duration) < 0.05
    for before, after in zip(segments, segments[1:]):
        assert before["start_s"] < before["end_s"] <= after["start_s"] + 1e-9
        assert abs(after["start_s"] - before["end_s"]) < 1e-6  # no gap, no overlap


# -- end to end ----------------------------------------------------------------------------
def test_text_and_segments_come_back_and_tile_the_clip(endpoint, srv, clip):
    _, model, dialect = endpoint
    events = []
    r = transcribe(srv, TranscriptionRequest(clip, model, dialect=dialect), events)
    assert_tiles(r.segments, clip.duration_s)
    assert len(r.segments) == 3
    for i, seg in enumerate(r.segments, start=1):  # each piece says which span of which bytes it heard
        m = re.fullmatch(r"segment (\d+) ([\d.]+)-([\d.]+) s heard ([0-9a-f]{12})", seg["text"])
        assert m and int(m[1]) == i and m[4] == clip.sha256[:12]
        assert abs(float(m[2]) - seg["start_s"]) < 0.06 and abs(float(m[3]) - seg["end_s"]) < 0.06
    assert r.text == " ".join(s["text"] for s in r.segments)
    assert r.finish_reason == "stop" and r.attempts == 1 and r.retries == []
    assert r.model == model and r.audio_seconds == clip.duration_s and r.sources == [clip.label]
    assert events == [Sent(), TextDelta(r.text)]  # the request left; nothing streams: the whole text at once


def test_the_server_saw_the_fields_and_the_bytes_as_sent(endpoint, srv, clip):
    _, model, dialect = endpoint
    transcribe(srv, TranscriptionRequest(clip, model, dialect=dialect, temperature=0.0))
    rec = srv.requests[-1]
    assert srv.request_count == 1 and rec.status == 200 and rec.completed
    assert rec.body["model"] == model and rec.body["temperature"] == "0"
    granularities = "timestamp_granularities" if dialect == "mistral" else "timestamp_granularities[]"
    assert rec.body[granularities] == ["segment"]  # Mistral: no brackets; OpenAI/vLLM: brackets
    assert ("response_format" in rec.body) == (dialect == "openai")
    assert rec.body["file"] == {"filename": "audio.mp3", "content_type": "audio/mpeg", "bytes": len(clip.data)}
    heard = rec.audio[0]  # what the server decoded
    assert heard.sha256 == clip.sha256 and abs(heard.duration_s - clip.duration_s) < 0.05
    assert rec.headers["Authorization"] == "Bearer ***"


def test_language_is_sent_and_echoed(endpoint, srv, clip):
    _, model, dialect = endpoint
    request = TranscriptionRequest(clip, model, language="fr", dialect=dialect)
    r = transcribe(srv, request)
    body = srv.requests[-1].body
    assert body["language"] == "fr" and r.text
    if dialect == "mistral":
        # Mistral's docs: timestamp_granularities "is currently not compatible with language"
        assert "timestamp_granularities" not in body and r.segments == []
        assert not request.sends_timestamps and "no timestamps" in request.text
    else:
        assert body["timestamp_granularities[]"] == ["segment"]
        assert_tiles(r.segments, clip.duration_s)


def test_without_timestamps(endpoint, srv, clip):
    _, model, dialect = endpoint
    r = transcribe(srv, TranscriptionRequest(clip, model, timestamps=False, dialect=dialect))
    body = srv.requests[-1].body
    assert r.segments == [] and r.text.startswith("segment 1 0.0-10.0 s heard ")
    assert not any(k.startswith("timestamp_granularities") for k in body)
    if dialect == "openai":
        assert body["response_format"] == "json" and srv.requests[-1].usage == {"type": "duration", "seconds": 24}


# -- cost ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["voxtral-mini-latest", "voxtral-mini-2507"])
def test_mistral_cost_comes_from_the_price_table(clip, model):
    with LocalServer(dialect="mistral") as server:
        request = TranscriptionRequest(clip, model)
        r = priced(transcribe(server, request), request)
        usage = server.requests[-1].usage
    assert usage["prompt_audio_seconds"] == math.ceil(clip.duration_s) == 24
    assert r.cost_source == "estimated"
    assert r.cost_usd == pytest.approx(TRANSCRIPTION_PRICES[model] * 24)
    assert request.estimate().usd == pytest.approx(r.cost_usd) and request.estimate().audio_seconds == clip.duration_s
    assert r.usage.prompt_tokens == usage["prompt_tokens"] and r.usage.completion_tokens == usage["completion_tokens"]


def test_a_model_without_a_price_has_an_unknown_cost(clip):
    with LocalServer(dialect="vllm") as server:
        request = TranscriptionRequest(clip, VLLM[1], dialect="openai")
        r = priced(transcribe(server, request), request)
    assert r.cost_usd is None and r.cost_source == "unknown" and request.estimate().usd == 0.0


# -- retries and errors --------------------------------------------------------------------
def test_429_retry_after_is_waited_out(endpoint, srv, clip):
    _, model, dialect = endpoint
    srv.add_fault("http_429", retry_after=0.3)
    events = []
    r = transcribe(srv, TranscriptionRequest(clip, model, dialect=dialect), events)
    assert r.attempts == 2 and srv.request_count == 2 and r.latency_s >= 0.3
    assert r.retries[0][0] == "RateLimitError 429" and 0.3 <= r.retries[0][1] <= 0.45
    assert events == [Sent(), events[1], Sent(), TextDelta(r.text)] and isinstance(events[1], Retrying)
    assert [q.status for q in srv.requests] == [429, 200]


@pytest.mark.parametrize("fault", ["http_503", "malformed_sse"])
def test_a_server_failure_is_retried(endpoint, srv, clip, fault):
    _, model, dialect = endpoint
    srv.add_fault(fault)
    r = transcribe(srv, TranscriptionRequest(clip, model, dialect=dialect))
    assert r.attempts == 2 and len(r.segments) == 3
    assert r.retries[0][0] == ("ServerError 503" if fault == "http_503" else "APIConnectionError")


def test_a_wrong_key_raises_the_typed_error_in_one_line(clip):
    with LocalServer(dialect="mistral", api_key="the-right-key") as server:
        with pytest.raises(AuthenticationError) as info:
            transcribe(server, TranscriptionRequest(clip), key="a-wrong-key")
        assert server.request_count == 1  # not retried
    err = info.value
    assert err.status == 401 and err.attempts == 1
    assert "\n" not in str(err) and str(err).startswith("HTTP 401: ") and "a-wrong-key" not in str(err)


def test_an_unknown_model_is_refused_and_not_retried(endpoint, srv, clip):
    _, _, dialect = endpoint
    with pytest.raises(BadRequestError) as info:
        transcribe(srv, TranscriptionRequest(clip, "voxtral-small-latest", dialect=dialect))
    assert srv.request_count == 1 and "voxtral-small-latest" in str(info.value)
    assert info.value.status == (400 if dialect == "mistral" else 404)


def test_undecodable_audio_is_refused_naming_the_file(endpoint, srv):
    _, model, dialect = endpoint
    junk = EncodedAudio(b"this is not an mp3 at all" * 40, "mp3", 1.0, "junk.mp3")
    with pytest.raises(BadRequestError) as info:
        transcribe(srv, TranscriptionRequest(junk, model, dialect=dialect))
    assert info.value.status == 400 and "file" in str(info.value) and "\n" not in str(info.value)
    assert srv.requests[-1].status == 400 and srv.requests[-1].audio == []


def test_openrouter_has_no_such_route(clip):
    with LocalServer() as server:
        assert post(server, {"model": "m"}).status_code == 404
        with pytest.raises(BadRequestError) as info:
            transcribe(server, TranscriptionRequest(clip, dialect="openai"))
        assert info.value.status == 404 and server.request_count == 0


# -- what the look-alikes refuse, as the real endpoints do --------------------------------------
def test_mistral_form_checks(clip):
    upload = {"file": ("a.mp3", clip.data, "audio/mpeg")}
    with LocalServer(dialect="mistral") as server:
        r = post(server, {"language": "en"}, upload)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "model"]
        r = post(server, {"model": "voxtral-mini-latest"})
        assert r.status_code == 400 and r.json()["param"] == "file" and r.json()["object"] == "error"
        r = post(server, {"model": "voxtral-mini-latest", "response_format": "verbose_json"}, upload)
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "extra_forbidden"
        r = post(server, {"model": "voxtral-mini-latest", "language": "fr", "timestamp_granularities": "segment"},
                 upload)
        assert r.status_code == 400 and "not compatible with language" in r.json()["message"]
        r = post(server, {"model": "voxtral-small-latest"}, upload)
        assert r.status_code == 400 and r.json()["message"] == "Invalid model: voxtral-small-latest"
        r = post(server, {"model": "voxtral-mini-2507", "timestamp_granularities": "segment"}, upload)
        assert r.status_code == 200 and r.json()["segments"][0]["type"] == "transcription_segment"
        # a client speaking the OpenAI dialect to Mistral hears which field is wrong, in one line
        with pytest.raises(BadRequestError) as info:
            transcribe(server, TranscriptionRequest(clip, dialect="openai"))
        assert "body.response_format: Extra inputs are not permitted" in str(info.value)


def test_vllm_form_checks(clip):
    upload = {"file": ("a.mp3", clip.data, "audio/mpeg")}
    with LocalServer(dialect="vllm") as server:
        r = post(server, {"model": VLLM[1]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "file"
        r = post(server, {"response_format": "yaml"}, upload)
        assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
        r = post(server, {"language": "xx"}, upload)
        assert r.status_code == 400 and "Unsupported language" in r.json()["error"]["message"]
        r = post(server, {}, upload)  # no model: the served one answers, as {"text", "usage"}
        assert r.status_code == 200 and set(r.json()) == {"text", "usage"}
        r = post(server, {"response_format": "text"}, upload)
        assert r.status_code == 200 and r.text.startswith("segment 1 0.0-10.0 s heard ")
        r = post(server, {"response_format": "verbose_json"}, upload).json()
        assert r["duration"] == "23.4" and [s["id"] for s in r["segments"]] == [0, 1, 2]


# -- the request object ------------------------------------------------------------------------
def test_cache_key_follows_what_is_sent_and_nothing_else(clip, other_clip):
    base = TranscriptionRequest(clip, "voxtral-mini-latest", language="fr")
    key = base.cache_key("https://api.mistral.ai/v1")
    relabelled = EncodedAudio(clip.data, clip.format, clip.duration_s, "elsewhere.mp3", start_s=12.0)
    assert TranscriptionRequest(relabelled, "voxtral-mini-latest", language="fr").cache_key(
        "https://api.mistral.ai/v1/") == key  # label, position in the source, trailing slash: irrelevant
    changed = [TranscriptionRequest(clip, "voxtral-mini-latest", language="de"),
               TranscriptionRequest(clip, "voxtral-mini-latest"),
               TranscriptionRequest(clip, "voxtral-mini-2507", language="fr"),
               TranscriptionRequest(other_clip, "voxtral-mini-latest", language="fr"),
               TranscriptionRequest(clip, "voxtral-mini-latest", language="fr", temperature=0.5),
               TranscriptionRequest(clip, "voxtral-mini-latest", language="fr", dialect="openai")]
    keys = {r.cache_key("https://api.mistral.ai/v1") for r in changed}
    assert key not in keys and len(keys) == len(changed)
    assert base.cache_key("http://127.0.0.1:8000/v1") != key
    assert ChatRequest("x", (clip,)).cache_key("https://api.mistral.ai/v1") != key
    assert len(key) == 64 and clip.sha256 not in key


def test_body_elides_the_audio_and_preview_never_holds_bytes(clip):
    request = TranscriptionRequest(clip, "voxtral-mini-latest", temperature=0.2)
    body = request.body(elide_audio=True)
    assert body == {"model": "voxtral-mini-latest", "temperature": "0.2", "timestamp_granularities": ["segment"],
                    "file": f"<{len(clip.data):,} bytes of mp3, {clip.duration_s:.2f} s>"}
    json.dumps(body)  # plain JSON, for history and --dry-run
    preview = request.preview()
    assert clip.base64()[:40] not in preview and "bytes of mp3" in preview
    assert request.body()["file"] == clip.data  # what goes out
    assert request.audio == (clip,) and request.audio_seconds == clip.duration_s
    assert request.params.stream is False and request.params.temperature == 0.2
    assert request.text == "transcriptions endpoint, language detected, temperature=0.2"
    openai = TranscriptionRequest(clip, "m", language="fr", dialect="openai").body(elide_audio=True)
    assert openai["response_format"] == "verbose_json" and openai["timestamp_granularities[]"] == ["segment"]


def test_bad_requests_fail_before_anything_is_sent(clip):
    pcm = EncodedAudio(b"\0\0" * 1600, "pcm16", 0.1)
    with pytest.raises(ConfigError, match="container format"):
        TranscriptionRequest(pcm)
    with pytest.raises(ConfigError, match="'mistral'.*'openai'"):
        TranscriptionRequest(clip, dialect="openrouter")
    with pytest.raises(ConfigError, match="temperature"):
        TranscriptionRequest(clip, temperature=5)
    with pytest.raises(ConfigError, match="language"):
        TranscriptionRequest(clip, language=" ")


@pytest.mark.parametrize("options, named", [({"translate_to": "English"}, "--translate-to"),
                                            ({"hint": "Names: Bob"}, "--prompt (hint=)"),
                                            ({"prompt": "Just the first word."}, "prompt="),
                                            ({"response_format": "json"}, "--schema")])
def test_an_explicit_transcriptions_api_refuses_what_it_would_drop(srv, clip, options, named):
    """--api transcriptions with --translate-to, a hint, a prompt or a schema came back as a plain
    transcript without a word: the speech-to-text endpoint takes no instruction."""
    import voxmagic
    from voxmagic.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"^--api transcriptions \(api='transcriptions'\) takes no instruction, "
                                          rf"so {re.escape(named)} would be dropped: leave out --api"):
        voxmagic.transcribe(clip, api="transcriptions", base_url=srv.base_url, api_key="k", **options)
    assert srv.request_count == 0
