"""Long audio goes out as it is prepared: the first chunk's request leaves before the last chunk is
decoded, encoding runs in a helper process that never re-runs the caller's script, and what was
answered survives a source that breaks part-way."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import voxmagic
from voxmagic import preparing, segment
from voxmagic.errors import AudioError
from voxmagic.testing.synth import speechlike, write_audio
from voxmagic.worker import Worker, WorkerDied


@pytest.fixture(scope="module")
def lecture(tmp_path_factory):
    """5 minutes of speech-like audio (a 0.6 s pause every 4 s)."""
    return str(write_audio(tmp_path_factory.mktemp("prep") / "lecture.flac", speechlike(300, 16_000, seed=5), 16_000))


@pytest.fixture
def opts(server):
    return {"base_url": server.base_url, "api_key": "test-key", "max_chunk_s": 60, "cache": False}


def test_each_chunk_is_sent_as_soon_as_it_is_ready(server, opts, lecture, monkeypatch):
    made = []  # when each piece left the decoder

    def slow(*args):
        for piece in segment.pieces(*args):
            made.append(time.time())
            yield piece
            time.sleep(0.4)  # a slow disk, or a long decode

    monkeypatch.setattr(preparing, "pieces", slow)
    df = voxmagic.transcribe(lecture, **opts)
    assert df["chunks"].iloc[0] == len(made) == server.request_count >= 5
    first_sent = min(r.received_at for r in server.requests)
    assert first_sent < made[-1] - 1.0  # out while later pieces were still being decoded
    assert df["error"].isna().all()


def test_the_helper_process_encodes_the_same_bytes(server, opts, lecture):
    streamed = voxmagic.transcribe(lecture, **opts)
    (helper,) = preparing._WORKER  # a 5-minute source with 60 s chunks is long: the helper encoded it
    assert helper.alive
    alone = segment.prepare_chunks(voxmagic.as_source(lecture), "mp3", 60)
    assert streamed["audio_sha256"].iloc[0].split(",") == [c.sha256 for c in alone]  # byte for byte, in order


def test_a_helper_that_dies_is_replaced_and_nothing_is_lost(server, opts, lecture):
    voxmagic.transcribe(lecture, **opts)
    preparing._WORKER[0]._proc.kill()
    df = voxmagic.transcribe(lecture, **opts)
    assert df["error"].isna().all() and df["chunks"].iloc[0] >= 5


def test_a_source_that_breaks_part_way_keeps_what_was_answered(server, opts, lecture, monkeypatch):
    def breaks(*args):
        produced = segment.pieces(*args)
        yield next(produced)
        yield next(produced)
        raise AudioError(lecture, "is damaged after 2:00 (invalid data found when processing input)")

    monkeypatch.setattr(preparing, "pieces", breaks)
    (row,) = voxmagic.transcribe(lecture, **opts).to_dict("records")
    assert server.request_count == 2 and row["text"].count("Heard 1 clips") == 2
    assert row["error"] == "chunk 3/3: is damaged after 2:00 (invalid data found when processing input)"  # no "(120-120 s)"
    seg = voxmagic.transcribe(lecture, segments=True, **opts)
    assert seg["error"].notna().sum() == 1 and seg["text"].notna().sum() >= 2


def test_worker_calls_and_errors():
    worker = Worker()
    try:
        assert worker.call(divmod, 17, 5) == (3, 2)
        with pytest.raises(ZeroDivisionError):
            worker.call(divmod, 1, 0)  # raised again here, and the helper lives on
        assert worker.call(pow, 2, 10) == 1024
        worker._proc.kill()
        worker._proc.wait()
        with pytest.raises(WorkerDied):
            worker.call(pow, 2, 3)
    finally:
        worker.close()


def test_a_script_without_a_main_guard_runs_once(tmp_path, server, lecture):
    """multiprocessing's spawn would import the caller's script again in the child: not here."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import voxmagic
        print("script ran")
        df = voxmagic.transcribe({lecture!r}, base_url={server.base_url!r}, api_key="k", max_chunk_s=60, cache=False)
        print("chunks", df["chunks"].iloc[0])
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "VOXMAGIC_HISTORY": str(tmp_path / "h.db")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("script ran") == 1 and "chunks 6" in out.stdout


@pytest.mark.parametrize("seconds", [200, 170])  # 170: the last chunk runs past its earliest cut
def test_a_chunk_s_samples_before_its_earliest_cut_come_out_as_they_are_decoded(seconds):
    rate, block = 16_000, 16_000 * 10
    samples = (speechlike(seconds, rate, seed=3)[0] * 32767).astype(np.int16)
    pulled = [0]

    def blocks():
        for a in range(0, samples.size, block):
            pulled[0] = min(samples.size, a + block)
            yield samples[a : a + block]

    max_s, search_s, overlap_s = 60, 20, 1.5
    chunks, parts = [], []
    for start, part, whole in segment.split_parts(blocks(), rate, max_s, search_s=search_s, overlap_s=overlap_s):
        parts.append(part)
        if whole is None:  # not cut yet: out as soon as decoded, and never past the earliest cut
            assert start + sum(p.size for p in parts) == min(pulled[0], start + (max_s - search_s) * rate)
        else:
            assert np.array_equal(np.concatenate(parts), whole())
            chunks.append((start, whole()))
            parts = []
    joined = list(segment.split_blocks(blocks(), rate, max_s, search_s=search_s, overlap_s=overlap_s))
    assert [a for a, _ in joined] == [a for a, _ in chunks]
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(joined, chunks))
    assert np.array_equal(chunks[0][1], samples[: chunks[0][1].size])
    assert len(chunks) >= 3 and chunks[-1][0] + chunks[-1][1].size == samples.size
    assert (chunks[-1][1].size > (max_s - search_s) * rate) == (seconds == 170)
    assert all(s.size <= max_s * rate for _, s in chunks)
    for (a, x), (b, _) in zip(chunks, chunks[1:]):
        assert b == a + x.size - round(overlap_s * rate)  # tiled as split_blocks tiles


@pytest.mark.parametrize("max_s", [None, 60, 1500])
def test_the_first_piece_is_encoded_while_it_is_decoded_to_the_bytes_of_encoding_it_whole(tmp_path, monkeypatch, max_s):
    path = write_audio(tmp_path / "talk.flac", speechlike(150, 44_100, seed=9), 44_100)
    plain = list(segment.pieces(voxmagic.as_source(str(path)).moments((12.5, None)), max_s))
    beside = []  # whether LAME was encoding on its own thread as each block was decoded
    decoded = voxmagic.AudioSource.blocks

    def watched(self):
        for block in decoded(self):
            beside.append(any(t.name == "voxmagic-lame" for t in threading.enumerate()))
            yield block

    monkeypatch.setattr(voxmagic.AudioSource, "blocks", watched)
    made = list(segment.pieces(voxmagic.as_source(str(path)).moments((12.5, None)), max_s, 0.0, "mp3"))
    assert any(beside[:-2])  # before the last blocks were decoded
    (t0, first), *rest = made
    assert isinstance(first, voxmagic.EncodedAudio) and t0 == first.start_s == plain[0][0] == 12.5
    alone = voxmagic.audio.encode(voxmagic.PCM(plain[0][1]), "mp3", start_s=12.5)
    assert first.data == alone.data and first.duration_s == alone.duration_s == plain[0][1].size / 16_000
    assert len(made) == len(plain) == (3 if max_s == 60 else 1)
    assert all(t == u and np.array_equal(x, y) for (t, x), (u, y) in zip(rest, plain[1:]))


def test_without_lameenc_the_first_piece_is_pyav_s_mp3_of_all_its_samples(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "talk.flac", speechlike(75, 44_100, seed=4), 44_100)
    monkeypatch.setitem(sys.modules, "lameenc", None)  # `import lameenc` raises ImportError
    for max_s in (None, 30):
        plain = list(segment.pieces(voxmagic.as_source(str(path)), max_s))
        (t0, first), *rest = segment.pieces(voxmagic.as_source(str(path)), max_s, 0.0, "mp3")
        alone = voxmagic.audio.encode(voxmagic.PCM(plain[0][1]), "mp3")
        assert first.data == alone.data and first.duration_s == alone.duration_s and t0 == 0.0
        assert len(rest) == len(plain) - 1 == (2 if max_s else 0)
