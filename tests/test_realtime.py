"""Realtime transcription (``voxmagic.realtime``) against the local server's stand-ins for
Mistral's ``/v1/audio/transcriptions/realtime`` and vLLM's ``/v1/realtime``, over real sockets:
deltas while PCM is fed, the whole text at the end, the dialects' error events, a key that never
shows — and a take's live captions, from the realtime session where there is one, from pieces
where there is none or it fails."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import numpy as np
import pytest
from websockets.asyncio.client import connect

from voxmagic.errors import AuthenticationError, BadRequestError, ServerError, VoxmagicError
from voxmagic.loop import LOOP
from voxmagic.realtime import realtime_url, transcribe_stream
from voxmagic.recording import Take, transcriber
from voxmagic.settings import Settings
from voxmagic.testing.server import LocalServer

RATE = 16_000
BLOCK = 2048  # what the recorder's front end sends at a time (128 ms)
KEY = "sk-realtime-SECRET-never-shown-0123"
PROVIDERS = {"mistral": "mistral", "vllm": "openai-compatible"}


def pcm(seconds: float, seed: int = 7) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(round(seconds * RATE)) * 3000).astype(np.int16)


def expected(x: np.ndarray) -> str:
    """What the stand-ins say about ``x``, worked out here from the bytes: one window a second."""
    data, parts = x.tobytes(), []
    for i, a in enumerate(range(0, len(data), 2 * RATE)):
        b = min(a + 2 * RATE, len(data))
        digest = hashlib.sha256(data[a:b]).hexdigest()[:12]
        parts.append(f"segment {i + 1} {a / 2 / RATE:.1f}-{b / 2 / RATE:.1f} s heard {digest}")
    return " ".join(parts)


def settings(srv: LocalServer, dialect: str, key: str | None = KEY) -> Settings:
    return Settings.resolve(base_url=srv.base_url, provider=PROVIDERS.get(dialect, dialect), api_key=key)


async def paced(x: np.ndarray, sent: list[int], pause: float = 0.003):
    for i in range(0, x.size, BLOCK):
        sent.append(min(i + BLOCK, x.size))
        yield x[i : i + BLOCK].tobytes()
        await asyncio.sleep(pause)


def sessions(srv: LocalServer) -> list:
    return [r for r in srv.requests if r.prompt == "realtime"]


@pytest.mark.parametrize("dialect", ["mistral", "vllm"])
def test_deltas_grow_while_pcm_is_fed_then_the_whole_text(dialect):
    x = pcm(3.3)
    with LocalServer(dialect=dialect, api_key=KEY) as srv:
        sent, seen = [], []
        text = asyncio.run(transcribe_stream(settings(srv, dialect), paced(x, sent),
                                             on_text=lambda t: seen.append((t, sent[-1]))))
        assert text == expected(x)
        assert [t for t, _ in seen] == [expected(x[:RATE * k]) for k in (1, 2, 3)] + [text]
        assert all(fed < x.size for _, fed in seen[:2])  # deltas came while the audio went on
        (rec,) = sessions(srv)
    assert rec.status == 101 and rec.completed and rec.headers["Authorization"] == "Bearer ***"
    assert rec.body["audio_seconds"] == 3.3
    appends = rec.body["events"]["input_audio.append" if dialect == "mistral" else "input_audio_buffer.append"]
    assert appends == len(sent)
    if dialect == "mistral":
        assert rec.body["model"] == "voxtral-mini-transcribe-realtime-2602"
        assert rec.body["events"]["input_audio.end"] == 1 and rec.usage["prompt_audio_seconds"] == 4
    else:
        assert rec.body["model"] == "mistralai/Voxtral-Small-24B-2507"
        assert rec.body["events"]["input_audio_buffer.commit"] == 2  # start, then final


def test_the_urls_follow_the_provider():
    assert realtime_url(Settings.resolve(provider="mistral")) == (
        "wss://api.mistral.ai/v1/audio/transcriptions/realtime?model=voxtral-mini-transcribe-realtime-2602")
    assert realtime_url(Settings.resolve(base_url="http://gpu:8000/v1")) == "ws://gpu:8000/v1/realtime"
    assert realtime_url(Settings.resolve(provider="openrouter")) is None


async def _exchange(url: str, messages: list, replies: int, headers: dict | None = None) -> list[dict]:
    """A raw client: the server's first event, then ``replies`` answers to ``messages``."""
    async with connect(url, additional_headers=headers or {}, proxy=None) as ws:
        got = [json.loads(await ws.recv())]
        for m in messages:
            await ws.send(m if isinstance(m, str) else json.dumps(m))
        for _ in range(replies):
            got.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    return got


def test_bad_messages_get_each_dialects_documented_error_event():
    audio = base64.b64encode(pcm(0.1).tobytes()).decode()
    with LocalServer(dialect="mistral") as srv:
        url = realtime_url(settings(srv, "mistral"))
        got = asyncio.run(_exchange(url, ["not json", {"type": "input_audio.shout"},
                                          {"type": "input_audio.append", "audio": "@@@"},
                                          {"type": "session.update", "session": {"audio_format": {
                                              "encoding": "pcm_s16le", "sample_rate": 16000}}}],
                                    4, {"Authorization": f"Bearer {KEY}"}))
        assert got[0]["type"] == "session.created" and got[0]["session"]["audio_format"]["encoding"] == "pcm_s16le"
        assert [g["type"] for g in got[1:]] == ["error", "error", "error", "session.updated"]
        assert all(isinstance(g["error"]["message"], str) and isinstance(g["error"]["code"], int) for g in got[1:4])
        bad_model = asyncio.run(_exchange(url.replace("2602", "9999"), [], 0, {"Authorization": f"Bearer {KEY}"}))
        assert bad_model[0] == {"type": "error", "error": {"message": "Invalid model: voxtral-mini-transcribe-realtime-9999",
                                                            "code": 1500}}
    with LocalServer(dialect="vllm") as srv:
        url = realtime_url(settings(srv, "vllm"))
        got = asyncio.run(_exchange(url, ["{", {"type": "input_audio_buffer.commit"}, {"type": "session.update"},
                                          {"type": "session.update", "model": "nope"},
                                          {"type": "input_audio_buffer.append", "audio": ""},
                                          {"type": "response.create"}], 6))
        assert got[0]["type"] == "session.created" and got[0]["id"].startswith("sess-")
        assert [(g["type"], g["code"]) for g in got[1:]] == [
            ("error", "invalid_json"), ("error", "model_not_validated"), ("error", "invalid_event"),
            ("error", "model_not_found"), ("error", "invalid_audio"), ("error", "unknown_event")]
        assert got[4]["error"] == "The model `nope` does not exist."
        assert asyncio.run(_exchange(url, [{"type": "session.update", "model": "mistralai/Voxtral-Small-24B-2507"},
                                           {"type": "input_audio_buffer.commit"},
                                           {"type": "input_audio_buffer.append", "audio": audio},
                                           {"type": "input_audio_buffer.commit", "final": True}], 2))[1:] == [
            {"type": "transcription.delta", "delta": expected(pcm(0.1))},
            {"type": "transcription.done", "text": expected(pcm(0.1)),
             "usage": {"prompt_tokens": 376, "completion_tokens": 6, "total_tokens": 382}}]


def _failure(srv: LocalServer, dialect: str, key: str, seconds: float = 2.5) -> VoxmagicError:
    with pytest.raises(VoxmagicError) as caught:
        asyncio.run(transcribe_stream(settings(srv, dialect, key), paced(pcm(seconds), [])))
    return caught.value


@pytest.mark.parametrize("dialect", ["mistral", "vllm"])
def test_the_key_never_shows_though_the_server_quotes_it(dialect):
    with LocalServer(dialect=dialect, api_key=KEY, echo_key=True) as srv:
        wrong = KEY[::-1]
        refused = _failure(srv, dialect, wrong)
        assert isinstance(refused, AuthenticationError) and refused.status == 401
        assert "[key hidden]" in str(refused) and "check the key given as api_key=" in str(refused)  # as it was
        srv.add_fault("error_chunk", after_tokens=1, match="realtime")
        broken = _failure(srv, dialect, KEY)
        assert isinstance(broken, ServerError) and "injected fault" in str(broken) and "[key hidden]" in str(broken)
        for error in (refused, broken):
            shown = " ".join([str(error), repr(error), repr(error.args), str(error.__cause__ or "")])
            assert KEY not in shown and wrong not in shown
        assert all(r.headers["Authorization"] == "Bearer ***" for r in srv.requests)


def test_a_refused_handshake_and_no_endpoint_are_one_line_errors():
    with LocalServer(dialect="vllm") as srv:
        srv.add_fault("http_403", match="realtime")  # an older vLLM, or a model without realtime
        error = _failure(srv, "vllm", None)
        assert isinstance(error, BadRequestError) and error.status == 403 and "\n" not in str(error)
        assert str(error).startswith("HTTP 403: vLLM's realtime endpoint ws://127.0.0.1:")
        assert "older server" in str(error)
    with LocalServer() as srv:  # OpenRouter's dialect: no realtime route at all
        error = _failure(srv, "mistral", KEY)
        assert isinstance(error, BadRequestError) and error.status == 404


# --- a take's live captions -------------------------------------------------------------------


def speech() -> np.ndarray:
    from voxmagic.audio import as_source
    from voxmagic.demo import meeting_path

    return as_source(str(meeting_path())).decode().samples[: 4 * RATE].copy()


def record(take: Take, x: np.ndarray) -> list[tuple[str, str]]:
    """Feed ``x`` as the front end would, stop, wait for everything; what the control showed."""
    shown: list[tuple[str, str]] = []
    take.on_change = lambda: shown.append((take.state, take.captions))

    async def go() -> None:
        take.start()
        for i in range(0, x.size, BLOCK):
            take.feed(x[i : i + BLOCK].tobytes())
            await asyncio.sleep(0.008)
        await asyncio.sleep(0.05)
        take.stop()
        await take.settled()

    LOOP.run(go())
    return shown


def test_a_take_on_mistral_is_captioned_by_the_realtime_session_not_by_pieces():
    x = speech()
    with LocalServer(dialect="mistral", api_key=KEY) as srv:
        take = Take("clip", transcribe=transcriber(settings(srv, "mistral")))
        shown = record(take, x)
        requests = srv.requests
    live = [c for state, c in shown if state == "recording" and c]
    assert live[0] == expected(x[:RATE]) and expected(x[: 3 * RATE]) in live  # grew while recording
    assert take.pieces == [] and take.note == "" and take.message == "recorded 4.0 s"
    assert [r.prompt for r in requests] == ["realtime", "audio/transcriptions"]  # one session, then the whole
    assert requests[0].status == 101 and requests[0].body["audio_seconds"] == 4.0
    assert take.final is not None and take.captions == take.final and "0.0-4.0 s" in take.final


def test_without_a_realtime_endpoint_the_captions_come_from_pieces_with_one_note():
    x = speech()
    with LocalServer(dialect="vllm") as srv:
        srv.add_fault("http_403", match="realtime")
        take = Take("clip", transcribe=transcriber(settings(srv, "vllm", None)))
        record(take, x)
        requests = srv.requests
    assert take.note.startswith("live captions from pieces instead: HTTP 403: vLLM's realtime endpoint")
    assert take.message == f"recorded 4.0 s · {take.note}" and "\n" not in take.message
    assert [p.speech for p in take.pieces] == [True] and take.pieces[0].start == 0  # no audio lost
    assert requests[0].prompt == "realtime" and requests[0].status == 403
    assert len(requests) == 3 and take.final  # the refused session, the piece, the whole
    with LocalServer() as srv:  # OpenRouter has no realtime endpoint: pieces, and nothing to note
        assert transcriber(settings(srv, "openrouter")).live is None


def test_a_session_that_breaks_midway_leaves_its_captions_and_pieces_go_on():
    x = np.concatenate([speech(), speech()])
    with LocalServer(dialect="mistral", api_key=KEY) as srv:
        srv.add_fault("error_chunk", after_tokens=2, match="realtime")
        take = Take("clip", transcribe=transcriber(settings(srv, "mistral")))
        record(take, x)
    assert take.note.startswith("live captions from pieces instead: ") and "injected fault" in take.note
    assert take.live_text == expected(x[: 2 * RATE])
    assert take.pieces and take.pieces[0].start >= 2 * RATE and all(p.text is not None for p in take.pieces)


@pytest.mark.parametrize("dialect", ["mistral", "vllm"])
def test_what_a_session_cost_is_in_the_session_ledger(dialect):
    """%voxtral_cost counts live captions: Mistral's billed seconds at its realtime price; a
    self-hosted vLLM's cost is unknown, with the seconds sent."""
    from voxmagic.runner import ledger

    x = pcm(3.3)
    before = len(ledger.entries)
    with LocalServer(dialect=dialect, api_key=KEY) as srv:
        asyncio.run(transcribe_stream(settings(srv, dialect), paced(x, [])))
    (entry,) = ledger.entries[before:]
    assert entry.outcome == "answered" and entry.label == "microphone (realtime captions)"
    if dialect == "mistral":
        assert entry.audio_seconds == 4 and entry.cost_usd == pytest.approx(4 * 0.006 / 60)
        assert entry.cost_source == "estimated"
    else:
        assert entry.audio_seconds == pytest.approx(3.3) and entry.cost_usd is None
        assert entry.cost_source == "unknown"
