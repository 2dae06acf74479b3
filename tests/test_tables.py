"""The tables a person reads: column order and dtypes, the magic's displayed result (HTML and
text), the compact %voxtral_cost / %voxtral_history, and a progress header that ticks. Real data
through the real path: voxmagic.transcribe and the magics against the local server."""
from __future__ import annotations

import pickle
import re
import time

import pandas as pd
import pytest
from IPython.utils.capture import capture_output

from conftest import run

import voxmagic
from voxmagic import runner
from voxmagic.frames import COST_COLUMNS, HISTORY_COLUMNS
from voxmagic.frames import SEGMENT_COLUMNS, TRANSCRIPT_COLUMNS
from voxmagic.testing.synth import tone_file

READING = ["source", "text", "duration_s", "cost_usd", "error"]
INTS = ["prompt_tokens", "completion_tokens", "attempts", "chunks"]


@pytest.fixture
def opts(server):
    return {"base_url": server.base_url, "api_key": "test-key", "backoff": 0.01, "max_attempts": 1}


@pytest.fixture
def ip(shell, tmp_path):
    for name, seconds in [("meeting.wav", 3.0), ("b.wav", 1.0), ("c.wav", 1.5)]:
        tone_file(tmp_path / name, seconds, channels=1)
    return shell


def magic(ip):
    return ip.magics_manager.registry["VoxtralMagics"]


def words_in_order(words: list[str], shown: str) -> bool:
    """Every word of ``words`` appears in ``shown``, in order (other columns may sit between)."""
    tokens = iter(shown.split())
    return all(any(t == w for t in tokens) for w in words)


# --- the table's shape ------------------------------------------------------------------------

def test_columns_read_in_order_and_integers_stay_integers_when_a_row_failed(server, opts, tmp_path):
    server.add_fault("http_500", times=1)
    paths = [str(tone_file(tmp_path / f"c{i}.wav", 1.0 + i, channels=1)) for i in range(3)]
    df = voxmagic.transcribe([*paths, "missing.mp3"], concurrency=1, **opts)
    assert list(df.columns) == TRANSCRIPT_COLUMNS and TRANSCRIPT_COLUMNS[:5] == READING
    assert TRANSCRIPT_COLUMNS[-2:] == ["generation_id", "audio_sha256"]  # identifiers last
    assert {c: str(df[c].dtype) for c in INTS} == dict.fromkeys(INTS, "Int64")
    assert df["cached"].dtype == bool and df["duration_s"].dtype == "float64"
    failed = df[df["error"].notna()]
    assert len(failed) == 2 and failed["prompt_tokens"].isna().all()  # <NA>, not floats
    assert df["prompt_tokens"].dropna().map(type).eq(int).all()
    # one kind of empty in text columns: None (falsy, seen by isna, null in JSON)
    for col in ["text", "error", "finish_reason", "generation_id"]:
        assert df[col].dtype == object
        assert all(v is None for v in df[col] if not isinstance(v, str)), col
    assert [bool(e) for e in df["error"]] == df["error"].notna().tolist()
    assert df.to_dict("records")[3]["text"] is None


def test_every_answer_ok_still_has_an_object_error_column_of_none(server, opts, tmp_path):
    df = voxmagic.transcribe(str(tone_file(tmp_path / "a.wav", 1.0, channels=1)), **opts)
    assert df["error"].dtype == object and df["error"].tolist() == [None] and df["error"].isna().all()


def test_segments_put_where_before_what(server, opts, tmp_path):
    df = voxmagic.transcribe(str(tone_file(tmp_path / "a.wav", 2.0, channels=1)), segments=True, **opts)
    assert list(df.columns) == SEGMENT_COLUMNS
    assert SEGMENT_COLUMNS[:5] == ["source", "start", "end", "speaker", "text"]
    assert df["chunk"].dtype == "Int64" and df["chunk"].tolist() == [0] and df["end"].iloc[0] == pytest.approx(2.0)


def test_the_table_is_a_dataframe_and_what_comes_from_it_reads_the_same(server, opts, tmp_path):
    """A slice or filter of a transcript table still shows its text whole; a table of numbers
    computed from it is shown as pandas shows it."""
    df = voxmagic.transcribe(str(tone_file(tmp_path / "a.wav", 1.0, channels=1)), **opts)
    assert isinstance(df, pd.DataFrame)
    for derived in (df.head(), df[["source", "text"]], df.copy(), df[df["error"].isna()], df.iloc[:1]):
        assert isinstance(derived, pd.DataFrame) and "white-space:pre-wrap" in derived._repr_html_()
        assert all(word in repr(derived) for word in df["text"].iloc[0].split())  # wrapped, never cut
    numbers = df[["duration_s", "cost_usd"]].describe()
    assert numbers._repr_html_() == pd.DataFrame(numbers)._repr_html_()
    assert type(df["text"]) is pd.Series
    again = pickle.loads(pickle.dumps(df))
    assert type(again) is type(df) and again.equals(df)
    assert df.to_csv() == pd.DataFrame(df).to_csv()


# --- what the magic displays ------------------------------------------------------------------

def test_the_magics_result_shows_the_whole_text_left_aligned_and_wrapped(ip, server, monkeypatch):
    server.configure(words_per_second=25)  # transcripts of 25-75 words, far over pandas' 50 characters
    monkeypatch.setenv("COLUMNS", "100")  # the terminal's width
    server.add_fault("http_500", times=1)
    ip.run_line_magic("config", "VoxtralMagics.max_attempts = 1")
    out, err = run(ip, "%voxtral_transcribe meeting.wav b.wav --concurrency 1 -o df")
    df = ip.user_ns["df"]
    assert not err and ip.user_ns["_"] is df and isinstance(df, pd.DataFrame)
    text = max(df["text"].dropna(), key=len)  # one of the two failed, whichever was sent first
    assert len(text.split()) >= 25 and len(text) > 100
    page = ip.display_formatter.formatters["text/html"](df)
    assert text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;") in page
    assert "..." not in page and "…" not in page
    cell = re.search(r'<td style="([^"]*)">' + re.escape(text[:40]), page)[1]
    assert "text-align:left" in cell and "white-space:pre-wrap" in cell and "word-break:normal" in cell
    assert "min-width" in cell  # the transcript is never squeezed to a sliver
    assert re.search(r'<th style="text-align:left;[^"]*">text</th>', page)
    assert "HTTP 500" in page  # the failed row says why
    plain = ip.display_formatter.formatters["text/plain"](df)
    assert "..." not in plain and max(map(len, plain.splitlines())) <= 100
    assert words_in_order(text.split(), plain)  # every word, in order, wrapped in its column
    assert plain.splitlines()[0].split()[:4] == ["source", "text", "duration_s", "cost_usd"]
    assert "not shown:" in plain and "audio_sha256" in plain.split("not shown:")[1]  # hidden columns named
    assert "$0.0" in plain  # money as format_usd


def test_a_narrow_terminal_still_shows_the_text(server, opts, tmp_path, monkeypatch):
    server.configure(words_per_second=20)
    df = voxmagic.transcribe(str(tone_file(tmp_path / "a.wav", 2.0, channels=1)), **opts)
    monkeypatch.setenv("COLUMNS", "60")
    plain = repr(df)
    assert words_in_order(df["text"].iloc[0].split(), plain) and max(map(len, plain.splitlines())) <= 60


# --- %voxtral_cost and %voxtral_history -------------------------------------------------------

def test_cost_and_history_are_compact_with_cost_first_and_everything_with_all(ip, server):
    ip.run_line_magic("config", "VoxtralMagics.budget = 1.0")
    with capture_output():
        ip.run_line_magic("voxtral_transcribe", "meeting.wav b.wav")
    with capture_output() as cap:
        c = ip.run_line_magic("voxtral_cost", "-o kept")
    out = cap.stdout
    assert list(c.columns) == COST_COLUMNS and COST_COLUMNS[0] == "cost_usd" and len(c) == 2  # shown
    assert set(ip.user_ns["kept"].columns) == set(runner.ledger.to_dataframe().columns)  # -o: the data
    assert re.search(r"total \$0\.\d{6} over 2 calls \(\$0\.\d{4} of the \$1\.0000 budget left\)", out)
    full = ip.run_line_magic("voxtral_cost", "--all")
    ledger = runner.ledger.to_dataframe()
    assert list(full.columns[: len(COST_COLUMNS)]) == COST_COLUMNS and set(full.columns) == set(ledger.columns)
    assert ledger["prompt_tokens"].dtype == "Int64"
    h = ip.run_line_magic("voxtral_history", "")
    assert list(h.columns) == HISTORY_COLUMNS and HISTORY_COLUMNS[0] == "cost_usd" and len(h) == 2
    everything = ip.run_line_magic("voxtral_history", "--all")
    assert set(everything.columns) == set(voxmagic.history().columns) and len(everything.columns) > 20
    for table in (c, h, everything):
        assert isinstance(table["time"].dtype, pd.DatetimeTZDtype)  # a real datetime (local), shown to the second
        plain, page = repr(table), table._repr_html_()
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?![.\d])", plain)
        assert not re.search(r"\d\d:\d\d:\d\d\.\d", plain + page) and "+00:00" not in plain + page
    assert "%voxtral_history --all shows every one" in repr(h) and "--all" not in repr(everything)
    assert "$0.0" in repr(c).splitlines()[1]  # cost first, as format_usd


def test_all_is_in_the_help(ip):
    for name in ("voxtral_cost", "voxtral_history"):
        assert "--all" in ip.magics_manager.magics["line"][name].__doc__


# --- the live views ---------------------------------------------------------------------------

def elapsed(header: str) -> float:
    return float(re.search(r"([\d.]+) s elapsed", header)[1])


def test_the_progress_header_ticks_while_nothing_finishes(ip, server):
    ip.run_line_magic("config", "VoxtralMagics.display_mode = 'widget'")
    server.configure(latency=1.5)
    with capture_output() as cap:
        job = ip.run_line_magic("voxtral_transcribe", "meeting.wav b.wav --background --concurrency 1 -o df")
        view = magic(ip).session.last_view
        time.sleep(0.6)
        first = view.header.value
        time.sleep(0.6)
        second = view.header.value
        assert view.progress.done == 0
        assert "0/2 files" in first and "0/2 files" in second
        assert elapsed(second) > elapsed(first) > 0  # the clock moves with no file finished
        assert int(re.search(r"(\d+) in flight", second)[1]) > 0
        assert "ETA" not in second and "%" not in second.split(">", 1)[1]
        deadline = time.monotonic() + 10
        while view.progress.done == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        third = view.header.value
        assert "1/2 files · 50%" in third and "ETA" in third and "s/file" in third, third
        job.result(timeout=10)
    assert view.throttle.closed and view.timer is not None and view.timer.cancelled()
    ran = time.monotonic() - view.progress.began
    assert view.throttle.flushes <= ran / view.throttle.interval + 2  # ticks stay within the rate bound
    final = cap.outputs[-1].data
    assert final["text/plain"].startswith("2/2 files · 100%") and "in flight" not in final["text/plain"]
    assert "ETA" not in final["text/plain"] and "elapsed" in final["text/plain"]
    assert ip.user_ns["df"]["error"].isna().all()


def test_the_terminal_prints_a_line_per_file_then_the_header(ip, server):
    out, _ = run(ip, "%voxtral_transcribe meeting.wav b.wav c.wav")
    lines = out.splitlines()
    assert [line[:5] for line in lines[:3]] == ["[1/3]", "[2/3]", "[3/3]"]
    assert re.match(r"3/3 files · 100% · [\d.]+ files/s · \$0\.\d{6} · [\d.]+ s elapsed$", lines[3]), lines[3]
    assert lines[4].startswith("these 3 calls $0.")


def test_streamed_text_wraps_at_spaces(ip, server):
    ip.run_line_magic("config", "VoxtralMagics.display_mode = 'widget'")
    with capture_output() as cap:
        ip.run_cell_magic("voxtral", "meeting.wav", "Q")
    view = magic(ip).session.last_view
    assert "word-break:normal" in view.box._esm and "overflow-wrap:anywhere" in view.box._esm  # the live text
    # the last output but the player's (its preview is made while the request goes out and then
    # fills the place kept for it above the answer; captured, that update comes last)
    final = [o.data.get("text/html", "") for o in cap.outputs if "<audio" not in o.data.get("text/html", "")][-1]
    assert "<pre" in final and "word-break:normal" in final
    assert re.search(r"≈\$0\.\d{6} so far", view.status_line())  # money as format_usd


def test_a_failed_rows_reason_is_shown_in_a_narrow_terminal():
    """Columns that do not fit are left out, but never ``error`` when a row has one: the row
    would read as blank (found printing a selection of columns at 80 characters)."""
    import pandas as pd

    from voxmagic.frames import as_table, table_text

    df = pd.DataFrame({"source": ["a.mp3", "b.mp3"], "duration_s": [1.0, None],
                       "text": ["hello there, this is a transcript", None], "cost_usd": [0.001, None],
                       "speaker": [None, None], "chunk": [0, 0], "cached": [False, False],
                       "error": [None, "not a readable audio file (Invalid data)"]})  # fmt: skip
    narrow = table_text(as_table(df), 80)
    assert words_in_order("not a readable audio file (Invalid data)".split(), narrow)
    assert "error" in narrow.splitlines()[0]
    assert max(map(len, narrow.splitlines())) <= 80
    fine = table_text(as_table(df.assign(error=[None, None])), 80)  # no failure: error may go
    assert "cost_usd" in fine.splitlines()[0]


def test_an_id_is_never_the_column_a_narrow_table_keeps_at_the_expense_of_the_cost():
    """The session ledger at 80 characters showed time, label and generation_id, not cost_usd."""
    from voxmagic.cost import CostLedger
    from voxmagic.frames import table_text
    from voxmagic.results import Response, Usage

    ledger = CostLedger()
    r = Response(text="x", model="mistralai/voxtral-small-24b-2507", usage=Usage(prompt_tokens=10),
                 cost_usd=0.001, cost_source="reported", audio_seconds=1.0,
                 generation_id="gen-1764644000-AbCdEfGhIjKlMnOpQrSt")  # fmt: skip
    ledger.record(r, "interviews/a.mp3")
    header = table_text(ledger.to_dataframe(), 80).splitlines()[0].split()
    assert "cost_usd" in header and "generation_id" not in header


def test_a_transcript_cut_at_the_output_limit_is_not_a_plain_tick(ip, server):
    """With --max-tokens a transcript cut after 3 tokens read "✓ meeting.wav · 3.0 s audio · $…",
    as if complete (finish_reason "length" sat in a column the terminal does not show)."""
    ip.run_line_magic("config", "VoxtralMagics.display_mode = 'text'")
    out, err = run(ip, "%voxtral_transcribe meeting.wav b.wav --max-tokens 3 --concurrency 1 -o df")
    assert not err and (ip.user_ns["df"]["finish_reason"] == "length").all()
    lines = [line for line in out.splitlines() if "✓" in line]
    assert len(lines) == 2 and all(line.endswith(" · the answer cut at the output limit (finish_reason length)")
                                   for line in lines), lines


def test_a_long_file_shows_its_chunks_as_they_come(ip, server, tmp_path, monkeypatch):
    """One long file printed nothing until its last chunk (72 s of silence in a terminal); the
    header's cost stayed $0 while most chunks were answered and paid for. A line comes at the
    second chunk, then at most every CHUNK_LINE_S seconds (not 49 lines for 49 chunks)."""
    from voxmagic.notebook import tables
    from voxmagic.notebook.display import BatchView

    headers = []  # the sources whose header was read for their length: long ones only, once
    monkeypatch.setattr(tables, "length_of", lambda item, read=tables.length_of: headers.append(item) or read(item))
    tone_file(tmp_path / "long.wav", 150.0, channels=1)  # six chunks of up to 30 s
    ip.run_line_magic("config", "VoxtralMagics.display_mode = 'text'")
    out, err = run(ip, "%voxtral_transcribe meeting.wav b.wav c.wav --no-cache")
    assert not err and headers == []  # one chunk each: no header read for a batch of clips
    out, _ = run(ip, "%voxtral_transcribe long.wav --chunk-minutes 0.5 --concurrency 1 --no-cache -o df")
    assert [line for line in out.splitlines() if " chunks in, " in line][0].startswith("[0/1] … long.wav: 2 chunks")
    assert len([line for line in out.splitlines() if " chunks in, " in line]) == 1  # the rest came within 5 s
    assert len(headers) == 1
    monkeypatch.setattr(BatchView, "CHUNK_LINE_S", 0.0)
    out, err = run(ip, "%voxtral_transcribe long.wav --chunk-minutes 0.5 --concurrency 1 --no-cache -o df")
    lines = [line for line in out.splitlines() if line.startswith("[0/1] … long.wav: ")]
    assert not err and len(lines) == 5, out  # from the second chunk on
    costs = [float(re.search(r"· \$([\d.]+) so far", line)[1]) for line in lines]
    assert [int(re.search(r": (\d) chunks in", line)[1]) for line in lines] == [2, 3, 4, 5, 6]
    # how long the file is (its header says) and when it will be done, at the pace so far
    assert all(re.search(r" of 2 min 30 s of audio · \$[\d.]+ so far · ETA [\d.]+ s$", line) for line in lines[:-1])
    assert re.search(r": 6 chunks in, 2 min 30 s of audio · \$[\d.]+ so far$", lines[-1])  # all in: no ETA
    assert costs == sorted(costs) and costs[-1] == pytest.approx(ip.user_ns["df"]["cost_usd"].iloc[0], rel=0.01)
    from voxmagic.progress import Progress

    p = Progress(["long.wav"])
    p.chunk(0, [{"source": "long.wav", "duration_s": 30.0, "cost_usd": 0.003}])
    p.chunk(0, [{"source": "long.wav", "duration_s": 30.0, "cost_usd": 0.003}])
    assert "2 chunks of long files in" in p.header() and "$0.006000" in p.header()
    assert p.chunk(0, [{"source": "long.wav", "duration_s": 30.0, "cost_usd": None, "error": "HTTP 500"}]) == ""
    assert "2 chunks of long files in" in p.header()  # a failed chunk is not "in"
    # one long file whose length is known: the header has an ETA before any file is done
    p = Progress(["long.wav"])
    p.started(0)
    p.since[0] -= 10.0  # 10 s of work so far
    line = p.chunk(0, [{"source": "long.wav", "duration_s": 600.0, "cost_usd": 0.01}], length_s=3600.0)
    assert line == "" and "ETA 50.0 s" in p.header()  # 3,000 s of audio left at 60 s of audio a second
    line = p.chunk(0, [{"source": "long.wav", "duration_s": 600.0, "cost_usd": 0.01}])
    assert re.search(r"2 chunks in, 20 min 00 s of 1 h 00 min of audio · \$0\.0200 so far · ETA 20\.0 s$", line), line
    assert "ETA 20.0 s" in p.header()
    # --trim-silence: a chunk sends less audio (duration_s) than the piece of the file it stands
    # for: the pauses cut from it (trimmed_s) count towards the header's length too
    p = Progress(["talk.mp3"])
    p.started(0)
    p.since[0] -= 10.0
    trimmed = [{"source": "talk.mp3", "duration_s": 400.0, "trimmed_s": 200.0, "cost_usd": 0.01}] * 2
    p.chunk(0, trimmed[:1], length_s=3600.0)
    line = p.chunk(0, trimmed[1:])
    assert re.search(r"2 chunks in, 20 min 00 s of 1 h 00 min of audio · \$0\.0200 so far · ETA 20\.0 s$", line), line
    p = Progress(["a.mp3", "long.wav"])  # another file, length unknown: no ETA claimed from one file alone
    p.chunk(1, [{"source": "long.wav", "duration_s": 600.0, "cost_usd": 0.01}], length_s=3600.0)
    assert "ETA" not in p.header()
