"""Chunk rows → segment rows: every chunk that was answered (and billed) has its rows, and the
segments' costs add up to the chunks'."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import voxmagic
from voxmagic.audio import as_source
from voxmagic.testing.synth import write_audio
from voxmagic.timeline import segment_rows

MEETING = Path(voxmagic.__file__).parent / "samples" / "meeting" / "meeting.mp3"


def chunk(i, start, end, cost=0.01, segments=None):
    return {"source": "a.mp3", "chunk": i, "start_s": start, "end_s": end, "text": f"chunk {i}",
            "cost_usd": cost, "segments": segments}  # fmt: skip


def test_chunks_that_touch_in_floats_keep_their_text():
    """84.62 + 28.34 is 112.96000000000001: the next chunk starts "before" this one ends."""
    rows = [chunk(0, 0.0, 84.62), chunk(1, 84.62, 84.62 + 28.34), chunk(2, 112.96, 141.28)]
    out = segment_rows(rows)
    assert [r["text"] for r in out] == ["chunk 0", "chunk 1", "chunk 2"]
    assert sum(r["cost_usd"] for r in out) == pytest.approx(0.03)


def test_an_untimed_chunk_is_kept_whole_even_where_chunks_overlap():
    rows = [chunk(0, 0.0, 30.0), chunk(1, 28.0, 58.0)]
    assert [r["text"] for r in segment_rows(rows)] == ["chunk 0", "chunk 1"]


def test_a_chunk_whose_segments_were_all_said_before_gives_its_cost_to_them():
    seg = lambda a, b, text: {"start_s": a, "end_s": b, "text": text, "speaker": "speaker_1"}  # noqa: E731
    rows = [chunk(0, 0.0, 30.0, 0.02, [seg(0, 27, "one"), seg(27, 29.5, "two")]),
            chunk(1, 26.0, 56.0, 0.01, [seg(0, 3.5, "two")])]  # fmt: skip
    out = segment_rows(rows)
    assert [r["text"] for r in out] == ["one", "two"]  # said once, in the overlap's first half
    assert sum(r["cost_usd"] for r in out) == pytest.approx(0.03)  # and nothing billed is lost


def test_speech_the_two_sides_of_an_overlap_cut_differently_is_kept_once():
    """Chunk 0 keeps 'two' (it starts before the overlap's middle, 28 s); chunk 1 cut the same
    words later, from 28.4 s: they were kept twice. A segment of its own after them stays."""
    seg = lambda a, b, text: {"start_s": a, "end_s": b, "text": text, "speaker": "speaker_1"}  # noqa: E731
    rows = [chunk(0, 0.0, 30.0, 0.02, [seg(0, 27, "one"), seg(27, 29.8, "two")]),
            chunk(1, 26.0, 56.0, 0.01, [seg(0, 2.4, "tail of one"), seg(2.4, 3.7, "two"), seg(3.7, 9, "three")])]  # fmt: skip
    out = segment_rows(rows)
    assert [r["text"] for r in out] == ["one", "two", "three"]
    assert sum(r["cost_usd"] for r in out) == pytest.approx(0.03)


def test_every_billed_chunk_of_a_long_file_is_a_row(server, tmp_path, monkeypatch):
    """The bundled meeting ten times over (4.7 min) in 30-s chunks cut at pauses."""
    monkeypatch.setenv("OPENROUTER_API_KEY", "local-key")
    pcm = as_source(str(MEETING)).decode()  # 16 kHz mono int16
    long = write_audio(tmp_path / "long.mp3", np.tile(pcm.samples / 32768, 10)[None, :].astype(np.float32), 16_000)
    server.reset()
    df = voxmagic.transcribe(str(long), segments=True, cache=False, base_url=server.base_url)
    sent = server.requests
    assert len(df) == len(sent) >= 9 and df["chunk"].tolist() == list(range(len(sent)))
    assert (df["start"].iloc[1:].values == pytest.approx(df["end"].iloc[:-1].values))
    assert df["cost_usd"].sum() == pytest.approx(sum(r.cost for r in sent))


def test_the_progress_line_counts_overlapping_audio_once():
    """Diarized chunks overlap (each hears its neighbour's edge): a 60-s file is 60 s of audio,
    as its stitched row says, not the 75 s its chunks add up to."""
    from voxmagic.stitch import stitch, summary

    overlapping = [dict(chunk(i, s, e), duration_s=e - s) for i, (s, e) in enumerate([(0, 30), (22.5, 52.5), (45, 60)])]
    touching = [dict(chunk(i, s, e), duration_s=e - s) for i, (s, e) in enumerate([(0, 30), (30, 60)])]
    for rows in (overlapping, touching):
        assert summary(rows)["duration_s"] == stitch("a.mp3", rows)["duration_s"] == 60
    assert summary([{"source": "a.mp3", "error": "cannot read it"}])["duration_s"] == 0


def test_a_source_of_unknown_cost_is_not_shown_as_free():
    """vLLM reports no cost: its line read '$0.000000' (and then 'this call: cost unknown')."""
    from voxmagic.progress import Progress

    progress = Progress(["a.mp3", "b.mp3", "c.mp3"])
    unpriced = dict(chunk(0, 0, 4.8), duration_s=4.8, cost_usd=None)
    assert progress.finished(0, [unpriced]) == "✓ a.mp3 · 4.8 s audio · cost unknown"
    assert progress.finished(1, [dict(unpriced, cost_usd=0.0001)]) == "✓ b.mp3 · 4.8 s audio · $0.000100"
    assert progress.finished(2, [dict(unpriced, error="HTTP 400: bad")]) == "✗ c.mp3: HTTP 400: bad"
    assert progress.cost == pytest.approx(0.0001)
    assert " · $0.000100 · 1 of unknown cost · " in progress.header()
    only = Progress(["a.mp3"])
    only.finished(0, [unpriced])
    assert " · cost unknown · " in only.header() and "$" not in only.header()  # was "$0.000000"


def test_a_time_at_a_join_of_stretches_belongs_to_the_side_it_ends_or_starts():
    """The clip's end of a stretch is a sum of floats (8.3 + 9.2 + 4.6 = 22.099999999999998): an
    end at 22.1 was read as past it, in the next stretch, minutes later on the file."""
    from voxmagic.moments import on_source

    spans = ((22.9, 31.2), (72.0, 81.2), (1679.2, 1683.8), (2685.6, 2691.4))
    assert on_source(spans, 22.1) == pytest.approx(1683.8)  # an end: where its stretch ends
    assert on_source(spans, 22.1, after_cut=True) == pytest.approx(2685.6)  # a start: where the next begins
    assert on_source(spans, 22.1 - 1e-9, after_cut=True) == pytest.approx(2685.6)
    assert on_source(spans, 20.0) == pytest.approx(1681.7) and on_source(spans, 0.0) == 22.9
    assert on_source(spans, 28.0) == pytest.approx(2691.4 + 0.1)  # past the end: the same distance on
