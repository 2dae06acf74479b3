"""Scale and safety: long audio in chunks, history, cache, budget — against the local server."""
from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta

import numpy as np
import pytest

import voxmagic
from voxmagic import batch, preparing, runner, segment
from voxmagic.errors import BudgetError, ConfigError
from voxmagic.since import timestamp
from voxmagic.testing.synth import speechlike, tone_file, write_audio


@pytest.fixture
def opts(server):
    return {"base_url": server.base_url, "api_key": "test-key", "backoff": 0.01}


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """10 minutes of speech-like audio with a 0.6 s pause every 4 s (pauses at 3.4–4.0, 7.4–8.0 ...)."""
    return write_audio(tmp_path_factory.mktemp("long") / "lecture.flac", speechlike(600, 16_000, seed=3), 16_000)


@pytest.fixture
def clips(tmp_path):
    return [str(tone_file(tmp_path / f"clip{i}.wav", 0.5 + 0.1 * i, channels=1)) for i in range(6)]


# --- long audio ----------------------------------------------------------------------------

def test_chunks_tile_the_audio_and_cut_in_pauses(long_file):
    source = voxmagic.as_source(str(long_file))
    chunks = segment.prepare_chunks(source, "flac", 150)
    total = source.decode().duration_s
    assert len(chunks) == 5
    assert abs(sum(c.duration_s for c in chunks) - total) < 0.01  # nothing lost or duplicated
    for a, b in zip(chunks, chunks[1:]):
        assert b.start_s == pytest.approx(a.end_s, abs=1e-9)  # no gap, no overlap
        assert 3.4 <= b.start_s % 4 <= 4.0  # inside a pause
        assert 150 - 60 <= a.duration_s <= 150  # near the limit, never over it
    # decoded back, the pieces are the original samples in order
    pcm = source.decode().samples
    pieces = np.concatenate([voxmagic.as_source(c.data).decode().samples for c in chunks])
    assert np.array_equal(pieces, pcm)


def test_no_pause_falls_back_to_the_quietest_moment():
    rate = 16_000
    t = np.arange(rate * 30) / rate
    loud = (8000 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.1 * t))).astype(np.int16)
    pieces = list(segment.split_blocks([loud], rate, 10.0, search_s=4.0))
    assert [p.size for _, p in pieces] and sum(p.size for _, p in pieces) == loud.size
    assert all(p.size <= 10 * rate for _, p in pieces)


def test_long_audio_is_sent_in_chunks_and_stitched_in_order(server, opts, long_file):
    df = voxmagic.transcribe(str(long_file), max_chunk_s=150, concurrency=3, **opts)
    (row,) = df.to_dict("records")
    assert row["chunks"] == 5 and pd_isna(row["error"]) and server.request_count == 5
    heard = [float(m) for m in re.findall(r"\[1\] ([\d.]+) s", row["text"])]
    sent = sorted(server.requests, key=lambda r: r.received_at)
    assert len(heard) == 5 and abs(sum(heard) - 600) < 0.05
    by_sha = {r.audio[0].sha256: r.cost for r in sent}
    assert row["cost_usd"] == pytest.approx(sum(by_sha.values()))
    # segments on a chat endpoint: pieces of at most 30 s cut at pauses, on the file's timeline
    segments = voxmagic.transcribe(str(long_file), segments=True, **opts)
    assert len(segments) >= 20 and segments["chunk"].tolist() == list(range(len(segments)))
    assert segments["start"].iloc[0] == 0 and abs(segments["end"].iloc[-1] - 600) < 0.01
    assert (segments["start"].iloc[1:].values == segments["end"].iloc[:-1].values).all()
    assert ((segments["end"] - segments["start"]) <= 30.001).all() and segments["speaker"].isna().all()
    pieces = sorted(server.requests[5:], key=lambda r: r.received_at)
    assert segments["cost_usd"].sum() == pytest.approx(sum(r.cost for r in pieces))


def pd_isna(value):
    import pandas as pd

    return pd.isna(value)


def test_only_long_chunks_are_streamed_unless_asked(server, opts, long_file, clips):
    voxmagic.transcribe([clips[0], str(long_file)], max_chunk_s=150, **opts)
    streamed = [(r.audio[0].duration_s, r.body["stream"]) for r in server.requests]
    assert len(streamed) == 6 and all(stream is (seconds > 120) for seconds, stream in streamed)
    voxmagic.transcribe(clips[1], stream=True, **opts)
    assert server.requests[-1].body["stream"] is True


def test_a_transcript_cut_at_the_output_limit_is_split_again(server, opts, long_file):
    """Real transcripts grow with the audio; one that hits max_tokens is redone in two halves."""
    server.configure(words_per_second=8.7)  # just over the bound of 64 + 8 tokens per second
    piece = voxmagic.as_source(str(long_file)).decode().slice(0, 130)
    df = voxmagic.transcribe((piece.samples, 16_000), max_chunk_s=None, **opts)
    assert df["chunks"].iloc[0] == 2 and df["finish_reason"].iloc[0] == "stop" and server.request_count == 3
    halves = sorted((r.audio[0].duration_s for r in server.requests[1:]))
    assert sum(halves) == pytest.approx(130, abs=0.01) and all(40 < h < 90 for h in halves)
    assert [r.body["max_tokens"] for r in server.requests][0] == 64 + 8 * 130
    assert server.requests[0].usage["completion_tokens"] == 64 + 8 * 130  # the cut-off answer
    spent = [e.cost_usd for e in voxmagic.ledger.entries[-3:]]  # it was paid for: the row says so
    assert df["cost_usd"].iloc[0] == pytest.approx(sum(spent)) and len(voxmagic.ledger.entries) == 3


def test_a_long_file_sent_whole_on_purpose_is_told_what_to_change(server, opts):
    """--chunk-minutes 0 on a 45-minute file said to use %voxtral_transcribe, which was in use."""
    hour = (np.zeros(16_000 * 60 * 45, np.int16), 16_000)
    (row,) = voxmagic.transcribe(hour, max_chunk_s=0, **opts).to_dict("records")
    assert row["error"] == ("45 min of audio is more than Voxtral's context holds (about 40 min in one request); "
                            "--chunk-minutes 0 (max_chunk_s=0) sends it whole: leave that out, or cut at 40 "
                            "minutes or less") and server.request_count == 0


def test_a_question_about_too_much_audio_is_refused_before_upload(server, opts):
    hour = (np.zeros(16_000 * 60 * 45, np.int16), 16_000)
    with pytest.raises(ConfigError, match=r"45 min of audio is more than Voxtral's context holds"):
        voxmagic.ask(hour, "Summarise.", **opts)
    assert server.request_count == 0


# --- history ---------------------------------------------------------------------------------

def test_every_request_and_failure_is_in_history(server, opts, clips, tmp_path):
    server.add_fault("http_500", times=1)
    voxmagic.transcribe(clips[:3], max_attempts=1, **opts)
    voxmagic.ask(clips[3], "What is it?", temperature=0.3, **opts)
    h = voxmagic.history()
    assert len(h) == 4 and h["error"].notna().sum() == 1
    assert "HTTP 500" in h["error"].dropna().iloc[0] and h["error_type"].dropna().iloc[0] == "ServerError"
    ok = h[h["error"].isna()]
    by_id = {r.id: r.cost for r in server.requests}
    assert (ok["cost_usd"] == ok["generation_id"].map(by_id)).all()
    last = voxmagic.history(last=1).iloc[0]
    assert last["prompt"] == "What is it?" and '"temperature": 0.3' in last["params"]
    assert "test-key" not in h.to_csv()  # never the key
    assert voxmagic.history(since="1h").shape[0] == 4 and voxmagic.history(since="2999-01-01").empty
    assert voxmagic.history(since="-1h").shape[0] == 4  # a minus sign means back from now too (it read the future)
    midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    assert timestamp("Today") == midnight.timestamp()  # pandas alone reads "today" as now: it found nothing
    assert timestamp("yesterday") == (midnight - timedelta(days=1)).timestamp()
    assert voxmagic.history(since="yesterday").shape[0] == 4
    with pytest.raises(ConfigError, match="since='yesterday-ish'"):
        voxmagic.history(since="yesterday-ish")


def test_history_file_uses_wal_and_named_migrations(server, opts, clips):
    voxmagic.ask(clips[0], "hi", **opts)
    db = sqlite3.connect(runner.store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert names == ["m001_requests", "m002_sources", "m003_segments", "m004_outcome"]


# --- cache ------------------------------------------------------------------------------------

def test_a_rerun_costs_nothing_sends_nothing_and_decodes_nothing(server, opts, clips, monkeypatch):
    first = voxmagic.transcribe(clips, **opts)
    spent = voxmagic.ledger.total_usd
    assert server.request_count == 6 and not first["cached"].any()
    decoded = []
    monkeypatch.setattr(preparing, "pieces", lambda *a: decoded.append(a) or iter(()))
    again = voxmagic.transcribe(clips, **opts)
    assert server.request_count == 6 and decoded == []  # nothing sent, nothing decoded
    assert again["cached"].all() and (again["cost_usd"] == 0).all()
    assert list(again["text"]) == list(first["text"])
    assert voxmagic.ledger.total_usd == spent  # not added to the spend


def test_the_cache_key_covers_every_parameter(server, opts, clips):
    voxmagic.ask(clips[0], "Q", temperature=0.2, **opts)
    assert voxmagic.ask(clips[0], "Q", temperature=0.2, **opts).cached
    assert voxmagic.ask(clips[0], "Q", temperature=0.2, stream=False, **opts).cached  # same answer
    for changed in [dict(temperature=0.3), dict(seed=1), dict(max_tokens=50), dict(stop=["x"])]:
        assert not voxmagic.ask(clips[0], "Q", **{"temperature": 0.2, **changed, **opts}).cached, changed
    assert not voxmagic.ask(clips[0], "Q?", temperature=0.2, **opts).cached
    assert not voxmagic.ask(clips[1], "Q", temperature=0.2, **opts).cached
    assert not voxmagic.ask(clips[0], "Q", temperature=0.2, audio_format="flac", **opts).cached


def test_no_cache_and_refresh(server, opts, clips):
    r1 = voxmagic.ask(clips[0], "Q", **opts)
    r2 = voxmagic.ask(clips[0], "Q", cache=False, **opts)
    assert not r2.cached and server.request_count == 2
    r3 = voxmagic.ask(clips[0], "Q", refresh=True, **opts)
    assert not r3.cached and server.request_count == 3
    r4 = voxmagic.ask(clips[0], "Q", **opts)
    assert r4.cached and r4.generation_id == r3.generation_id != r1.generation_id  # the refreshed one


def test_failures_and_cut_answers_are_not_cached(server, opts, clips):
    server.add_fault("http_503", times=1)
    with pytest.raises(voxmagic.ServerError):
        voxmagic.ask(clips[0], "Q", max_attempts=1, **opts)
    assert not voxmagic.ask(clips[0], "Q", **opts).cached
    voxmagic.ask(clips[1], "Q", max_tokens=3, **opts)
    assert not voxmagic.ask(clips[1], "Q", max_tokens=3, **opts).cached  # finish_reason "length"


# --- budget -----------------------------------------------------------------------------------

def test_a_session_budget_refuses_before_any_request(server, opts, clips):
    voxmagic.ledger.budget_usd = 0.0003
    voxmagic.ask(clips[0], "Q", max_tokens=100, **opts)
    spent = voxmagic.ledger.total_usd
    with pytest.raises(BudgetError) as err:
        voxmagic.transcribe(clips, **opts)
    message = str(err.value)
    assert re.search(r"this batch of 6 files could cost up to \$0\.\d+, but only \$0\.\d+ of the session "
                     r"budget of \$0\.000300 is left; nothing was sent", message)
    assert f"{0.0003 - spent:.6f}" in message and server.request_count == 1
    assert voxmagic.ask(clips[0], "Q", max_tokens=100, **opts).cached  # cached calls cost nothing


def test_budget_counts_only_what_is_not_cached(server, opts, clips):
    voxmagic.transcribe(clips[:5], **opts)
    voxmagic.ledger.budget_usd = voxmagic.ledger.total_usd + 0.0015  # enough for one more file only
    df = voxmagic.transcribe(clips, **opts)
    assert df["cached"].sum() == 5 and server.request_count == 6


def test_per_source_restitches_chunk_rows_and_keeps_a_repeated_file_apart():
    from voxmagic.stitch import per_source

    def chunk(i, start, end, text):
        return {"source": "a.wav", "chunk": i, "start_s": start, "end_s": end, "duration_s": end - start,
                "text": text, "cost_usd": 0.001, "error": None}

    rows = [chunk(0, 0, 30, "one"), chunk(1, 30, 45, "two"), {"source": "bad.wav", "error": "no such file"},
            chunk(0, 0, 30, "again")]
    out = per_source(rows)
    assert [r["source"] for r in out] == ["a.wav", "bad.wav", "a.wav"]
    assert out[0]["text"] == "one two" and out[0]["chunks"] == 2 and out[0]["duration_s"] == 45
    assert out[1] == rows[2] and out[2]["text"] == "again" and out[2]["chunks"] == 1
