"""Nothing lost, nothing paid twice: interrupts, background runs, a killed kernel, reruns."""
from __future__ import annotations

import _thread
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from IPython.utils.capture import capture_output

from conftest import run

from voxmagic import runner
from voxmagic.testing.synth import tone_file


@pytest.fixture
def files(tmp_path):
    return [str(tone_file(tmp_path / f"f{i:02d}.wav", 0.5 + 0.05 * i, channels=1)) for i in range(12)]


@pytest.fixture
def ip(shell):
    return shell


def test_interrupt_mid_batch_keeps_what_finished_and_a_rerun_sends_only_the_rest(ip, server, files):
    server.configure(latency=0.4)
    ip.user_ns["files"] = files
    threading.Timer(1.0, _thread.interrupt_main).start()
    started = time.monotonic()
    _, err = run(ip, "%voxtral_transcribe files --concurrency 2 -o df")
    assert time.monotonic() - started < 6
    assert err.startswith("UsageError: interrupted: ") and err.count("\n") == 1
    df = ip.user_ns["df"]
    done = df[df["error"].isna()]
    assert len(df) == 12 and 1 <= len(done) < 12
    assert (df.loc[df["error"].notna(), "error"] == "interrupted before it finished").all()
    assert f"interrupted: {len(done)} of 12 files finished and are in df" in err
    # what finished was recorded: in history with its cost, and in the session's tally
    h = runner.store.history()
    cancelled = h[h["error_type"] == "CancelledError"]
    assert len(cancelled) >= 1  # the requests in flight were closed, and noted
    outcomes = [e.outcome for e in runner.ledger.entries]  # those already sent may be billed: listed too
    assert h["text"].notna().sum() == len(done) == outcomes.count("answered")
    assert outcomes.count("cancelled") == len(cancelled) and "may still be billed: %voxtral_cost" in err
    sent_before = server.request_count
    server.configure(latency=0.0)
    with capture_output():
        again = ip.run_line_magic("voxtral_transcribe", "files -o df")
    assert again["error"].isna().all()
    assert again["cached"].sum() == len(done)
    assert server.request_count == sent_before + 12 - len(done)  # only the missing ones were sent


def test_interrupting_a_question_says_where_the_partial_text_is(ip, server, files):
    server.configure(token_rate=20, answer_tokens=200)
    threading.Timer(0.8, _thread.interrupt_main).start()
    _, err = run(ip, f"%%voxtral {files[0]}\nTalk.")
    assert err.startswith("UsageError: interrupted: the request was cancelled")
    partial = ip.user_ns["_voxtral_partial"]
    assert partial.startswith("Heard 1 clips") and len(partial.split()) < 200
    row = runner.store.history().iloc[-1]
    assert row["error_type"] == "CancelledError" and row["text"] == partial  # history keeps it too
    # "it may still be billed": the session's costs list it, as they list an abandoned attempt
    out, _ = run(ip, "%voxtral_cost -o costs")
    assert ip.user_ns["costs"]["outcome"].tolist() == ["cancelled"]
    assert "total $0.000000 over 1 call (1 call of unknown cost; 1 stopped call the provider may bill)" in out


def test_a_question_stopped_before_its_first_token_is_listed_as_it_may_be_billed(ip, server, files):
    server.configure(latency=3.0)
    threading.Timer(0.8, _thread.interrupt_main).start()
    _, err = run(ip, f"%%voxtral {files[0]} --no-cache\nTalk.")
    assert err.startswith("UsageError: interrupted: the request was cancelled (it may still be billed")
    out, _ = run(ip, "%voxtral_cost -o costs")
    assert ip.user_ns["costs"]["outcome"].tolist() == ["cancelled"] and "1 stopped call the provider may bill" in out


def test_background_run_returns_at_once_and_binds_the_variable_later(ip, server, files):
    ip.run_line_magic("config", "VoxtralMagics.display_mode = 'widget'")
    server.configure(latency=1.0)
    with capture_output():
        job = ip.run_cell_magic("voxtral", f"{files[0]} --background -o ans", "What is it?")
    assert not job.done() and "ans" not in ip.user_ns and repr(job).endswith(": running>")
    view = ip.magics_manager.registry["VoxtralMagics"].session.last_view
    value = job.result(timeout=10)
    assert value == ip.user_ns["ans"] == ip.user_ns["_voxtral"].text and value.startswith("Heard")
    assert view.updates >= 1 and view.text == value  # updated after the cell had returned
    assert repr(job).endswith(": done>")


def test_background_batch_can_be_cancelled(ip, server, files):
    server.configure(latency=0.5)
    with capture_output():
        job = ip.run_line_magic("voxtral_transcribe", f"{' '.join(files)} --background --concurrency 2 -o df")
    time.sleep(1.2)
    assert job.cancel() and job.cancelled()
    deadline = time.monotonic() + 5
    while "df" not in ip.user_ns and time.monotonic() < deadline:
        time.sleep(0.05)
    df = ip.user_ns["df"]
    assert len(df) == 12 and 1 <= df["text"].notna().sum() < 12  # what finished is kept


def test_background_failure_is_reported_by_the_job(ip, server, files):
    server.add_fault("http_401")
    with capture_output() as cap:
        job = ip.run_cell_magic("voxtral", f"{files[0]} --background", "Q")
        with pytest.raises(Exception, match="HTTP 401"):
            job.result(timeout=10)
        time.sleep(0.1)  # the job's done-callbacks run after result() returns
    assert job.state.startswith("failed: HTTP 401")
    # in a terminal no view shows the error: one line says it, as a success prints its answer
    assert cap.stderr == f"voxmagic: %%voxtral {files[0]} failed: {job.exception()}\n"
    server.add_fault("http_401")
    with capture_output() as cap:
        job = ip.run_line_magic("voxtral_transcribe", f"{files[0]} --background")
        job.result(timeout=10)  # a batch keeps its failures as rows: the job itself succeeds
        time.sleep(0.1)
    assert "failed" not in cap.stderr


def test_budget_from_config_refuses_before_sending(ip, server, files):
    ip.run_line_magic("config", "VoxtralMagics.budget = 0.0001")
    _, err = run(ip, f"%voxtral_transcribe {' '.join(files)}")
    assert re.search(r"^UsageError: this batch of 12 files could cost up to \$0\.\d+, but only \$0\.000100 "
                     r"of the session budget of \$0\.000100 is left", err)
    assert server.request_count == 0
    out, _ = run(ip, "%voxtral_cost")
    assert "$0.000100 of the $0.000100 budget left" in out


def test_cache_flags_in_the_magic(ip, server, files):
    run(ip, f"%%voxtral {files[0]} -o ans\nQ")
    run(ip, f"%%voxtral {files[0]} -o ans\nQ")
    assert server.request_count == 1 and ip.user_ns["_voxtral"].cached
    run(ip, f"%%voxtral {files[0]} --no-cache\nQ")
    run(ip, f"%%voxtral {files[0]} --refresh\nQ")
    assert server.request_count == 3
    ip.run_line_magic("config", "VoxtralMagics.cache = False")
    run(ip, f"%%voxtral {files[0]}\nQ")
    assert server.request_count == 4


def test_history_magic(ip, server, files):
    run(ip, f"%voxtral_transcribe {files[0]} {files[1]}")
    run(ip, f"%%voxtral {files[2]}\nQ")
    df = ip.run_line_magic("voxtral_history", "--last 2 -o h")  # shown: the compact columns
    h = ip.user_ns["h"]  # kept: every column
    assert len(df) == len(h) == 2 and h["prompt"].iloc[-1] == "Q" and df["cost_usd"].tolist() == h["cost_usd"].tolist()
    assert list(df.columns)[0] == "cost_usd" and set(df.columns) < set(h.columns)
    assert len(ip.run_line_magic("voxtral_history", "--since 10min")) == 3
    _, err = run(ip, "%voxtral_history --since soon-ish")
    assert err.startswith("UsageError: --since soon-ish is neither a time")  # as it was typed
    _, err = run(ip, "%voxtral_history --last -3")  # not every row
    assert err.strip() == "UsageError: --last -3 is out of range: use a whole number of at least 1"


def test_sigkill_mid_batch_keeps_every_finished_row(server, files, tmp_path):
    """A kernel killed outright: every request that finished is in history, and a rerun pays once."""
    db = tmp_path / "killed.db"
    server.configure(latency=0.3)
    script = textwrap.dedent(f"""
        import voxmagic
        voxmagic.transcribe({files!r}, concurrency=2, base_url={server.base_url!r}, api_key="k")
        print("finished all", flush=True)
    """)
    env = {**os.environ, "VOXMAGIC_HISTORY": str(db)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if db.exists() and _rows(db) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    rows = _rows(db)
    answered = {r.id for r in server.requests if r.completed}
    assert 3 <= rows < 12 and rows <= len(answered)
    with sqlite3.connect(db) as con:
        kept = con.execute("SELECT generation_id, cost_usd, text FROM requests WHERE error IS NULL").fetchall()
    costs = {r.id: r.cost for r in server.requests}
    assert all(gid in answered and cost == costs[gid] and text for gid, cost, text in kept)
    # the rerun (same history file) sends only what had not finished
    os.environ["VOXMAGIC_HISTORY"] = str(db)
    server.configure(latency=0.0)
    before = server.request_count
    import voxmagic
    df = voxmagic.transcribe(files, concurrency=4, base_url=server.base_url, api_key="k")
    assert df["error"].isna().all() and df["cached"].sum() == rows
    assert server.request_count - before == 12 - rows


def _rows(db) -> int:
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT count(*) FROM requests WHERE error IS NULL").fetchone()[0]
    except sqlite3.Error:
        return 0



def test_a_budget_refusal_is_said_once_in_a_notebook(ip, server, files):
    """With the live view, the refused batch leaves no second copy of the message behind."""
    ip.run_line_magic("config", "VoxtralMagics.budget = 0.0001")
    ip.run_line_magic("config", "VoxtralMagics.display_mode = 'widget'")
    with capture_output() as cap:
        ip.run_cell(f"%voxtral_transcribe {' '.join(files)}")
    view = ip.magics_manager.registry["VoxtralMagics"].session.last_view
    shown = cap.stdout + cap.stderr + "".join(str(o.data) for o in cap.outputs)
    assert shown.count("could cost up to") == 1 and cap.stderr.startswith("UsageError: this batch")
    assert view.throttle.closed and server.request_count == 0


def test_a_stopped_long_file_keeps_its_answered_chunks(ip, server, tmp_path):
    """Stopping a 2-hour file after 90 minutes gave an empty row ("interrupted before it finished"):
    the chunks answered (and paid for) were only in the history; with --no-cache a rerun sent them
    all again while the message promised "only what is missing"."""
    tone_file(tmp_path / "long.wav", 150.0, channels=1)  # six chunks of up to 30 s
    server.configure(latency=0.5)
    threading.Timer(1.3, _thread.interrupt_main).start()
    _, err = run(ip, "%voxtral_transcribe long.wav --chunk-minutes 0.5 --concurrency 1 --no-cache -o df")
    assert err.startswith("UsageError: interrupted: 0 of 1 files finished and are in df, with the answered "
                          "chunks of 1 more (") and err.count("\n") == 1
    assert "run the same line again to send it all again (--no-cache keeps no answers)" in err
    (row,) = ip.user_ns["df"].to_dict("records")
    answered = [e for e in runner.ledger.entries if e.outcome == "answered"]
    assert 1 <= len(answered) < 6 and row["text"].count("Heard 1 clips") == len(answered)
    assert row["cost_usd"] == pytest.approx(sum(e.cost_usd for e in answered))
    assert row["chunks"] == 6 and row["error"].count("stopped before its answer came") == 6 - len(answered)
