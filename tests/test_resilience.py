"""What the disk, a bad source or an odd value does to a batch: the work goes on, answered rows are
never lost, nothing is sent after the call has ended, and every refusal is one line."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from IPython.utils.capture import capture_output

import voxmagic
from voxmagic import runner, storage
from voxmagic.errors import ConfigError
from voxmagic.testing.synth import tone_file

from test_storage import hold_lock


@pytest.fixture
def clips(tmp_path):
    return [str(tone_file(tmp_path / f"c{i}.mp3", 1.0 + i / 10)) for i in range(16)]


def opts(server, **kw):
    return dict(base_url=server.base_url, api_key="k", **kw)


# -- the history file --------------------------------------------------------------------------

def test_a_damaged_history_is_moved_aside_and_the_batch_runs(server, clips, capfd):
    path = Path(os.environ["VOXMAGIC_HISTORY"])
    path.write_bytes(b"this is not a database" * 100)
    df = voxmagic.transcribe(clips[:3], **opts(server))
    assert df["error"].isna().all() and df["text"].notna().all()
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "is damaged" in err and ".corrupt-" in err
    assert len(voxmagic.history()) == 3  # the fresh file has the new rows


def test_an_unwritable_history_turns_history_off_with_one_line(shell, server, tmp_path, capfd):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    shell.run_line_magic("config", f"VoxtralMagics.history_path = {str(blocker / 'history.db')!r}")
    clip = str(tone_file(tmp_path / "one.mp3", 1.0))
    with capture_output() as cap:
        shell.run_cell(f"%voxtral_transcribe {clip} -o df")
        shell.run_cell(f"%voxtral_transcribe {clip} -o again")
        shell.run_cell("%voxtral_history -o h")
    err = capfd.readouterr().err + cap.stderr
    assert shell.user_ns["h"].empty and "outcome" in shell.user_ns["h"].columns
    assert "history and cache are off" in cap.stdout  # %voxtral_history says why it is empty
    assert err.count("history and cache are off for this session") == 1
    assert "VOXMAGIC_HISTORY or %config VoxtralMagics.history_path" in err and "Traceback" not in err
    assert shell.user_ns["df"]["text"].notna().all() and not shell.user_ns["again"]["cached"].any()
    assert server.request_count == 2  # no cache: sent again, and said so once


def test_the_history_warning_waits_for_the_streamed_answer(server, tmp_path):
    """On a terminal stdout and stderr share the screen: told while the answer streamed, the
    warning landed mid-line ("Prompt: What?voxmagic: history and cache are off ...")."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    clip = tone_file(tmp_path / "one.wav", 1.0)
    code = f"""
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic('load_ext', 'voxmagic')
shell.run_line_magic('config', "VoxtralMagics.display_mode = 'text'")
shell.run_line_magic('config', "VoxtralMagics.history_path = {str(blocker / 'h.db')!r}")
shell.run_cell('%%voxtral {clip} --no-cache\\nWhat?')
"""
    env = {**os.environ, "VOXMAGIC_BASE_URL": server.base_url, "OPENROUTER_API_KEY": "k", "PYTHONUNBUFFERED": "1"}
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=env, timeout=120).stdout  # fmt: skip
    lines = out.splitlines()
    told = [i for i, line in enumerate(lines) if "history and cache are off" in line]
    assert len(told) == 1 and lines[told[0]].startswith("voxmagic: history and cache are off"), out
    assert any(line.startswith("[mistralai/") for line in lines[: told[0]]), out  # after the call's own lines


def test_a_history_locked_mid_batch_loses_no_answered_row(server, clips, monkeypatch, capfd):
    """Another process holds the database while a 16-wide batch streams: every answer comes back,
    history turns off with one warning, and no SQLite call ever ran on the event loop's thread."""
    monkeypatch.setattr(storage, "LOCK_WAIT_S", 1.0)
    server.configure(latency=0.2, token_rate=200)
    threads = set()
    record = runner.store.record

    def watched(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return record(*args, **kwargs)

    monkeypatch.setattr(runner.store, "record", watched)
    voxmagic.transcribe(clips[:1], **opts(server))  # the file exists before it is locked
    locker = hold_lock(runner.store.path, 30)
    try:
        df = voxmagic.transcribe(clips, concurrency=16, stream=True, **opts(server))
    finally:
        locker.kill()
    assert len(df) == 16 and df["error"].isna().all() and df["text"].notna().all()
    assert capfd.readouterr().err.count("is locked by another process") == 1
    assert threads and all(name.startswith("voxmagic-store") for name in threads)


def test_a_cached_answer_gone_before_it_is_sent_sends_the_audio_instead(server, clips, monkeypatch):
    """A source found in the cache goes out as references to its answers, without audio. If the
    cache turns off before those answers are read again (another process locks the file), the
    batch reads the source again and sends it; with a budget, it says so instead of spending."""
    voxmagic.transcribe(clips[:3], **opts(server))
    assert server.request_count == 3
    cached, seen = runner.store.cached, set()

    def going_off(key):  # the first look (while preparing) finds it, the second (sending) does not
        if key in seen:
            return None
        seen.add(key)
        return cached(key)

    monkeypatch.setattr(runner.store, "cached", going_off)
    df = voxmagic.transcribe(clips[:3], **opts(server))
    assert df["error"].isna().all() and df["text"].notna().all() and not df["cached"].any()
    assert server.request_count == 6  # each sent again, with its audio
    seen.clear()
    df = voxmagic.transcribe(clips[:3], max_cost=1.0, **opts(server))
    assert server.request_count == 6 and df["error"].str.contains("run it again to send it").all()


# -- sources that cannot be prepared ---------------------------------------------------------

def test_bad_sources_are_error_rows_and_the_rest_run(server, clips):
    good = clips[:6]
    bad = [(np.zeros(1600, np.float32), -16000), (np.array(["a", "b"]), 16000),
           ("missing.mp3"), (np.zeros(10), float("nan"))]
    df = voxmagic.transcribe([*good[:3], *bad, *good[3:]], **opts(server))
    assert len(df) == 10 and df["text"].notna().sum() == 6 and df["error"].notna().sum() == 4
    errors = df["error"].dropna().tolist()
    assert any("sample rate" in e for e in errors) and any("no such file" in e for e in errors)
    assert any("not audio samples" in e for e in errors)
    assert server.request_count == 6


def test_nothing_is_sent_after_a_cancelled_batch_returns(server, clips, shell):
    server.configure(latency=0.3)
    shell.user_ns["clips"] = clips
    with capture_output():
        shell.run_cell("%voxtral_transcribe clips --concurrency 2 --background")
    job = shell.user_ns["_voxtral_job"]
    time.sleep(0.5)
    job.cancel()
    time.sleep(0.2)
    sent = server.request_count
    time.sleep(1.0)
    assert server.request_count == sent < len(clips)


# -- values checked where they enter -----------------------------------------------------------

@pytest.mark.parametrize("kw, message", [
    ({"concurrency": 0}, r"concurrency=0 is out of range: use a whole number from 1 to 64"),
    ({"max_chunk_s": -60}, r"max_chunk_s=-60 is out of range"),
    ({"max_cost": -1}, r"max_cost=-1 is out of range: use a number above 0 USD"),
    ({"max_attempts": 0}, r"max_attempts=0 is out of range"),
    ({"download_timeout": 0}, r"download_timeout=0 is out of range"),
])
def test_the_python_api_checks_the_same_bounds(server, clips, kw, message):
    with pytest.raises(ConfigError, match=message):
        voxmagic.transcribe(clips[:1], **opts(server), **kw)
    assert server.request_count == 0


@pytest.mark.parametrize("setting, message", [
    ("concurrency = 0", "VoxtralMagics.concurrency = 0 is out of range: use a whole number from 1 to 64"),
    ("chunk_minutes = 0.2", "VoxtralMagics.chunk_minutes = 0.2 is out of range"),
    ("max_cost = -1.0", "VoxtralMagics.max_cost = -1.0 is out of range"),
    ("rate_limit_patience = -5.0", "VoxtralMagics.rate_limit_patience = -5.0 is out of range"),
])
def test_config_checks_the_same_bounds(shell, setting, message, caplog):
    before = shell.magics_manager.registry["VoxtralMagics"].config_values
    shell.run_cell(f"%config VoxtralMagics.{setting}")  # IPython logs the refusal as one error line
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and messages[0].startswith(message)
    assert shell.magics_manager.registry["VoxtralMagics"].config_values == before


# -- downloads and long audio --------------------------------------------------------------------

def test_a_dripping_download_is_an_error_row_after_the_time_limit(server, clips, file_server):
    started = time.monotonic()
    df = voxmagic.transcribe([clips[0], f"{file_server.url}/drip"], download_timeout=1, **opts(server))
    assert time.monotonic() - started < 5
    assert df["text"].notna().tolist() == [True, False]
    assert "download took longer than 1 s" in df["error"].iloc[1]
    assert file_server.wait_for(lambda s: s.open_drips == 0, 2)  # the connection was closed


def test_too_long_is_known_before_decoding(shell, server, tmp_path):
    """A 3-hour WAV (a header that says so, sparse on disk) is refused from its header at once."""
    path = tmp_path / "three-hours.wav"
    rate, seconds = 8_000, 3 * 3600
    data = rate * seconds
    header = (b"RIFF" + (36 + data).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
              + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + rate.to_bytes(4, "little")
              + rate.to_bytes(4, "little") + (1).to_bytes(2, "little") + (8).to_bytes(2, "little")
              + b"data" + data.to_bytes(4, "little"))
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + data)
    # the peak memory of this check alone: VmHWM after resetting it (writing 5 to clear_refs), as
    # ru_maxrss of a child on Linux starts from the parent's size at fork
    code = ("import time, voxmagic\n"
            "from voxmagic.errors import ConfigError\n"
            "def kb(name): return int(next(l for l in open('/proc/self/status') if l.startswith(name)).split()[1])\n"
            "open('/proc/self/clear_refs', 'w').write('5'); start = kb('VmRSS')\n"
            "t = time.monotonic()\n"
            f"try: voxmagic.ask({str(path)!r}, 'Summarise.', base_url={server.base_url!r}, api_key='k')\n"
            "except ConfigError as e: print(e)\n"
            "print(time.monotonic() - t, (kb('VmHWM') - start) / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    message, figures = out.strip().splitlines()
    seconds_taken, grew_mb = map(float, figures.split())
    assert message.startswith("180 min of audio is more than Voxtral's context holds")
    assert seconds_taken < 2 and grew_mb < 100 and server.request_count == 0


def test_the_magic_follows_the_python_rule_for_bad_sources(shell, server, clips):
    """A missing file or an unusable array inside a variable is that source's error row in the
    magic too, as in voxmagic.transcribe; a typo typed on the line is refused at once."""
    shell.user_ns["files"] = [clips[0], "gone.mp3", (np.zeros(800, np.float32), 16), clips[1]]
    with capture_output() as cap:
        shell.run_cell("%voxtral_transcribe files -o df")
        shell.run_cell("%voxtral_transcribe typo_name")
    df = shell.user_ns["df"]
    assert df["text"].notna().tolist() == [True, False, False, True]
    assert df["error"].iloc[1].startswith("no such file") and "sample rate 16 Hz" in df["error"].iloc[2]
    assert "UsageError: typo_name is neither a file nor a variable in the notebook" in cap.stderr
    assert server.request_count == 2
