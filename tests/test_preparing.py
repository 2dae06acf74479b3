"""Long audio goes out as it is prepared: the first chunk's request leaves before the last chunk is
decoded, encoding runs in a helper process that never re-runs the caller's script, and what was
answered survives a source that breaks part-way."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

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
