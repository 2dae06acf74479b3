"""The Python API a user calls: ask / transcribe (sync and async), keys, the session ledger."""
from __future__ import annotations

import asyncio
import os
import re
import threading
import time

import numpy as np
import pandas as pd
import pytest

import voxmagic
from voxmagic.errors import AudioError, AuthenticationError, ConfigError
from voxmagic.testing.synth import tone, tone_file


@pytest.fixture
def opts(server):
    return {"base_url": server.base_url, "api_key": "test-key", "backoff": 0.01}


@pytest.fixture
def clips(tmp_path):
    return {
        "mp3": tone_file(tmp_path / "interview.mp3", 3.2),
        "flac": tone_file(tmp_path / "lecture.flac", 1.7, freq=300),
        "wav": tone_file(tmp_path / "memo.wav", 0.9, channels=1),
    }


def server_durations(server):
    return {rec.audio[0].sha256: rec.audio[0].duration_s for rec in server.requests}


def test_transcribe_mp3_flac_and_a_missing_file(server, opts, clips):
    df = voxmagic.transcribe([str(clips["mp3"]), str(clips["flac"]), "missing.mp3"], **opts)
    assert list(df["source"]) == [str(clips["mp3"]), str(clips["flac"]), "missing.mp3"]
    for col in ["source", "duration_s", "text", "prompt_tokens", "completion_tokens", "cost_usd",
                "latency_s", "error"]:
        assert col in df.columns
    ok = df.iloc[:2]
    assert abs(ok["duration_s"].iloc[0] - 3.2) < 0.05 and abs(ok["duration_s"].iloc[1] - 1.7) < 0.05
    assert ok["error"].isna().all()
    by_sha = {rec.audio[0].sha256: rec.cost for rec in server.requests}
    for _, row in ok.iterrows():
        assert row["cost_usd"] == by_sha[row["audio_sha256"]]  # exactly what the server reported
        assert row["text"].startswith("Heard 1 clips")
    missing = df.iloc[2]
    assert missing["error"].startswith("no such file") and pd.isna(missing["text"])
    assert server.request_count == 2  # nothing was sent for the missing file


def test_transcribe_defaults_to_temperature_0_and_a_bounded_max_tokens(server, opts, clips):
    voxmagic.transcribe(str(clips["mp3"]), "fr", **opts)
    body = server.requests[-1].body
    assert body["temperature"] == 0.0 and 0 < body["max_tokens"] <= 4096
    assert "The speech is in fr." in server.requests[-1].prompt


def test_a_failing_request_does_not_lose_the_others(server, opts, clips):
    server.add_fault("http_500", times=1)
    paths = [str(clips[k]) for k in ("mp3", "flac", "wav")] * 2
    df = voxmagic.transcribe(paths, concurrency=3, **{**opts, "max_attempts": 1})
    assert len(df) == 6 and df["error"].notna().sum() == 1
    assert "HTTP 500" in df["error"].dropna().iloc[0]
    assert df["text"].notna().sum() == 5


def test_a_rate_limited_batch_finishes_by_honouring_retry_after(server, opts, clips):
    server.configure(rate_limit=10)  # requests per second (bucket of 10); a burst of 20 goes over it
    df = voxmagic.transcribe([str(clips["wav"])] * 20, concurrency=10, cache=False,
                             **{**opts, "max_attempts": 2})
    assert df["error"].isna().all() and df["text"].notna().all()
    assert df["attempts"].max() > 1  # some were refused with 429 and retried
    refused = [r for r in server.requests if r.status == 429]
    assert refused and len(server.requests) == 20 + len(refused)


def test_a_corrupt_file_in_a_batch(server, opts, clips, tmp_path):
    bad = tmp_path / "broken.m4a"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    df = voxmagic.transcribe([str(clips["wav"]), str(bad), str(clips["flac"])], **opts)
    assert df["error"].isna().tolist() == [True, False, True]
    assert df["error"].iloc[1].startswith("not a readable audio or video file")


def test_results_come_back_in_input_order_under_concurrency(server, opts, tmp_path):
    server.configure(latency=0.05)
    paths = [str(tone_file(tmp_path / f"c{i}.wav", 0.5 + 0.25 * (7 - i), channels=1)) for i in range(8)]
    seen = []
    df = voxmagic.transcribe(paths, concurrency=4, on_result=lambda i, row: seen.append(i), **opts)
    assert list(df["source"]) == paths
    assert sorted(seen) == list(range(8))
    np.testing.assert_allclose(df["duration_s"], [0.5 + 0.25 * (7 - i) for i in range(8)], atol=0.01)


def test_ask_with_several_sources_and_streaming_events(server, opts, clips):
    deltas = []
    r = voxmagic.ask([str(clips["mp3"]), (tone(1.0, 8000, 1)[0], 8000)], "Compare the two clips.",
                     on_event=lambda e: deltas.append(getattr(e, "text", "")), **opts)
    assert r.text.startswith("Heard 2 clips") and "".join(deltas) == r.text
    assert len(server.requests[-1].audio) == 2
    assert r.audio_seconds == pytest.approx(4.2, abs=0.05)
    assert r.sources[0] == str(clips["mp3"])
    # the events, as the README names them, all importable from voxmagic
    events = []
    voxmagic.ask(str(clips["mp3"]), "Again.", on_event=events.append, cache=False, **opts)
    kinds = [type(e) for e in events]
    assert kinds[:2] == [voxmagic.Planned, voxmagic.Sent] and set(kinds[2:]) == {voxmagic.TextDelta}


def test_ask_records_cost_in_the_session_ledger(server, opts, clips):
    before_total, before_calls = voxmagic.ledger.total_usd, voxmagic.ledger.calls
    r = voxmagic.ask(str(clips["wav"]), "What is this?", **opts)
    assert voxmagic.ledger.calls == before_calls + 1
    assert voxmagic.ledger.total_usd == pytest.approx(before_total + r.cost_usd)
    assert voxmagic.ledger.entries[-1].cost_source == "reported"


def test_sync_api_works_inside_a_running_event_loop(server, opts, clips):
    """As in ipykernel: the caller's thread already runs a loop, and we block in it."""
    async def cell():
        return voxmagic.ask(str(clips["wav"]), "Inside a running loop?", **opts)

    r = asyncio.run(cell())
    assert r.text.startswith("Heard 1 clips")


def test_async_api_from_the_callers_loop(server, opts, clips):
    async def main():
        return await asyncio.gather(
            voxmagic.ask_async(str(clips["wav"]), "one", **opts),
            voxmagic.transcribe_async([str(clips["flac"])], **opts))

    r, df = asyncio.run(main())
    assert r.text.startswith("Heard") and df["error"].isna().all()


def test_interrupt_cancels_a_blocking_call_promptly(server, opts, clips):
    import _thread
    import signal

    # Ctrl-C reaches Python as in a kernel, however pytest was started: a script's `cmd &` starts
    # it with SIGINT ignored, and then interrupt_main() does nothing
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        server.add_fault("stall", seconds=30)
        threading.Timer(0.5, _thread.interrupt_main).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            voxmagic.ask(str(clips["wav"]), "This will stall.", **opts)
        assert time.monotonic() - started < 5
    finally:
        signal.signal(signal.SIGINT, previous)
    r = voxmagic.ask(str(clips["wav"]), "The loop still works.", **opts)  # the loop survived
    assert r.text.startswith("Heard")


def test_no_key_is_one_clear_line(monkeypatch, clips):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"no API key for openrouter: set OPENROUTER_API_KEY") as err:
        voxmagic.ask(str(clips["wav"]), "hi")
    assert "\n" not in str(err.value)


def test_key_from_the_environment(server, monkeypatch, clips):
    monkeypatch.setenv("OPENROUTER_API_KEY", "env-key")
    server.configure(api_key="env-key")
    r = voxmagic.ask(str(clips["wav"]), "hi", base_url=server.base_url)
    assert r.text.startswith("Heard")


def test_a_refused_key_points_at_where_it_came_from(server, monkeypatch, clips):
    monkeypatch.setenv("OPENROUTER_API_KEY", "env-key")
    server.configure(api_key="the-right-key")
    with pytest.raises(AuthenticationError, match=r"check the key in OPENROUTER_API_KEY, or pass api_key=\)$"):
        voxmagic.ask(str(clips["wav"]), "hi", base_url=server.base_url)
    with pytest.raises(AuthenticationError, match=r"check the key given as api_key=") as err:
        voxmagic.ask(str(clips["wav"]), "hi", base_url=server.base_url, api_key="a-wrong-key")
    assert "OPENROUTER_API_KEY" not in str(err.value) and "a-wrong-key" not in str(err.value)
    monkeypatch.setenv("OPENROUTER_API_KEY", " env-key\n")  # stripped: still the variable's key, not api_key=
    with pytest.raises(AuthenticationError, match=r"check the key in OPENROUTER_API_KEY, or pass api_key=\)$"):
        voxmagic.ask(str(clips["wav"]), "hi", base_url=server.base_url)


def test_an_address_read_as_openai_compatible_sent_no_key_and_says_so(server, monkeypatch, clips):
    """A /v1 address with OPENROUTER_API_KEY or MISTRAL_API_KEY set, and no provider named: no key
    was sent, and the 401 said 'check the key in OPENAI_API_KEY'."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.configure(api_key="the-right-key")
    with pytest.raises(AuthenticationError, match=r"\(no key was sent: set OPENAI_API_KEY, or name with --provider the "
                                                  r"provider whose key is set\)$"):
        voxmagic.ask(str(clips["wav"]), "hi", base_url=server.base_url, provider="openai-compatible")


def test_key_from_a_dotenv_file_and_a_custom_variable(server, monkeypatch, tmp_path, clips):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("MY_VOX_KEY=from-dotenv\n")
    server.configure(api_key="from-dotenv")
    r = voxmagic.ask(str(clips["wav"]), "hi", base_url=server.base_url, key_env="MY_VOX_KEY")
    assert r.text.startswith("Heard")
    with pytest.raises(ConfigError, match="set OPENROUTER_API_KEY in the environment or in a .env file"):
        voxmagic.ask(str(clips["wav"]), "hi", base_url=server.base_url)


def test_unknown_option_is_named(opts, clips):
    with pytest.raises(ConfigError, match=r"unknown option\(s\) temprature \(did you mean temperature\?\)"):
        voxmagic.ask(str(clips["wav"]), "hi", temprature=0.2, **opts)
    # one of the function's own keywords, which the list of options leaves out: named anyway
    with pytest.raises(ConfigError, match=r"unknown option\(s\) langauge \(did you mean language\?\); besides"):
        voxmagic.transcribe(str(clips["wav"]), langauge="en", **opts)
    # the right name for another call: not "did you mean language?" about language itself
    with pytest.raises(ConfigError, match=r"unknown option\(s\) language \(language: an option of other calls"):
        voxmagic.ask(str(clips["wav"]), "hi", language="en", **opts)


def test_bad_audio_in_ask_raises_audio_error(opts):
    with pytest.raises(AudioError, match=re.escape("nope.wav: no such file")):
        voxmagic.ask("nope.wav", "hi", **opts)


def test_public_names_are_exported():
    for name in voxmagic.__all__:
        assert getattr(voxmagic, name) is not None


def test_plan_sends_nothing_and_hides_audio_and_key(server, opts, clips):
    p = voxmagic.plan(str(clips["mp3"]), "What is said?", max_tokens=200, **opts)
    text = str(p)
    assert server.request_count == 0
    assert "test-key" not in text and p.request.audio[0].base64() not in text
    assert '"max_tokens": 200' in text and "estimated cost ≤ $" in text
    assert p.estimate.audio_seconds == pytest.approx(3.2, abs=0.05)


def test_max_cost_refuses_before_sending(server, opts, clips):
    from voxmagic.errors import BudgetError

    with pytest.raises(BudgetError, match=r"could cost up to \$0\.00\d+, over the \$0\.000100 limit; nothing was sent"):
        voxmagic.ask(str(clips["mp3"]), "hi", max_cost=0.0001, **opts)
    with pytest.raises(BudgetError, match="this batch of 3 files"):
        voxmagic.transcribe([str(clips[k]) for k in ("mp3", "flac", "wav")], max_cost=0.0001, **opts)
    assert server.request_count == 0
    r = voxmagic.ask(str(clips["mp3"]), "hi", max_cost=0.01, **opts)
    assert r.cost_usd <= voxmagic.estimate([r.audio_seconds], "hi", None).usd  # the estimate bounds it


def test_translate_to_changes_the_instruction(server, opts, clips):
    voxmagic.transcribe(str(clips["wav"]), translate_to="German", **opts)
    assert server.requests[-1].prompt.startswith("Translate the speech in this audio into German.")


def test_a_pandas_series_of_paths(server, opts, clips):
    df = voxmagic.transcribe(pd.Series([str(clips["wav"]), str(clips["flac"])]), **opts)
    assert len(df) == 2 and df["error"].isna().all()


def test_the_command_line_falls_back_to_the_local_server_without_a_key(tmp_path):
    """Like ``demo``: no key → the local server, said on stderr; the table is printed."""
    import subprocess
    import sys

    clip = tone_file(tmp_path / "hello.wav", 1.5)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "VOXMAGIC_BASE_URL"}
    cli = subprocess.run([sys.executable, "-m", "voxmagic", "transcribe", str(clip), "--csv", str(tmp_path / "t.csv")],
                         env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert "OPENROUTER_API_KEY is not set: using voxmagic's local server at http://127.0.0.1:" in cli.stderr
    assert "Heard 1 clips" in cli.stdout and "session $" in cli.stdout
    assert pd.read_csv(tmp_path / "t.csv")["text"].str.startswith("Heard").all()


def test_the_command_lines_mistakes_are_one_line_before_anything_is_sent(tmp_path, capsys):
    """--csv into a missing folder was a traceback after the batch was sent and paid; a missing
    or non-notebook file for demo was a 27-line traceback; --offline dropped --base-url silently."""
    from voxmagic.__main__ import main

    clip = str(tone_file(tmp_path / "hello.wav", 1.0))
    cases = [(["transcribe", clip, "--csv", str(tmp_path / "no" / "out.csv")],
              f"voxmagic: --csv {tmp_path / 'no' / 'out.csv'}: the folder {tmp_path / 'no'} does not exist"),
             (["transcribe", clip, "--csv", str(tmp_path)], f"voxmagic: --csv {tmp_path} is a folder: name a file"),
             (["transcribe", clip, "--offline", "--base-url", "http://127.0.0.1:9/v1"],
              "voxmagic: --offline uses voxmagic's local server: leave out --base-url, or --offline"),
             (["demo", str(tmp_path / "nothere.ipynb")], f"voxmagic: no notebook at {tmp_path / 'nothere.ipynb'}"),
             (["demo", clip], f"voxmagic: {clip} is not a notebook (UnicodeDecodeError)"),
             (["transcribe", str(tmp_path / "helo.wav")], f"voxmagic: no such file: {tmp_path / 'helo.wav'}; did you "
                                                          f"mean {tmp_path / 'hello.wav'}?")]  # fmt: skip
    for argv, said in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(said) and err.count("\n") == 1 and "Traceback" not in err, err


def test_the_python_api_expands_paths_as_the_magics_do(server, tmp_path, monkeypatch):
    """Globs, folders and ~ in transcribe, transcripts and ask; a pattern that matches nothing and
    a folder without audio are one-line errors; a missing file is that source's error row."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    talks = tmp_path / "talks"
    talks.mkdir()
    for name in ("b.mp3", "a.mp3"):
        tone_file(talks / name, 1.0)
    (tmp_path / "empty").mkdir()
    opts = dict(base_url=server.base_url, api_key="k")
    by_glob = voxmagic.transcribe("talks/*.mp3", **opts)
    by_folder = voxmagic.transcribe("talks/", **opts)
    by_home = voxmagic.transcribe("~/talks", **opts)
    assert [s.rsplit("/", 1)[-1] for s in by_glob["source"]] == ["a.mp3", "b.mp3"]
    assert by_folder["source"].tolist() == by_glob["source"].tolist() and len(by_home) == 2
    found = voxmagic.transcripts("talks/*.mp3", **opts)
    assert len(found) == 2 and all(t.cues for t in found)
    assert voxmagic.ask("talks/*.mp3", "Compare.", **opts).text.startswith("Heard 2 clips")
    with pytest.raises(ConfigError, match=r"^no files match talks/\*\.wav \(relative to "):
        voxmagic.transcribe("talks/*.wav", **opts)
    with pytest.raises(ConfigError, match=r"^the folder empty holds no audio files"):
        voxmagic.transcripts("empty", **opts)
    rows = voxmagic.transcribe(["talks/a.mp3", "talks/c.mp3"], **opts)
    assert rows["error"].tolist()[0] is None and rows["error"].iloc[1].startswith("no such file")
    assert re.search(r"; did you mean talks/[ab]\.mp3\?$", rows["error"].iloc[1])


def test_python_keywords_are_checked_in_one_line_before_anything_is_sent(server, tmp_path):
    """max_cost=-1 was accepted ("over the $-1.0000 limit"), max_cost="1", stop=5 and extra="x"
    raised bare TypeErrors/ValueErrors, and stream="no", tool_choice="required" without tools and
    max_tokens=2.0 went out to come back as HTTP 400s."""
    path = tone_file(tmp_path / "a.wav", 1.0, channels=1)
    kw = {"base_url": server.base_url, "api_key": "k"}
    cases = [({"max_cost": 0}, r"^max_cost=0 is out of range: use a number above 0 USD$"),
             ({"max_cost": -1}, r"^max_cost=-1 is out of range"),
             ({"max_cost": "1"}, r"^max_cost='1' is not a number: use a number above 0 USD$"),
             ({"stop": 5}, r"^stop=5: give a string, or a list of at most 4$"),
             ({"extra": "x"}, r"^extra='x': give a dict of more request fields"),
             ({"stream": "no"}, r"^stream='no': use True or False$"),
             ({"tool_choice": "required"}, r"^tool_choice='required' needs tools")]
    for options, message in cases:
        with pytest.raises(voxmagic.ConfigError, match=message):
            voxmagic.ask(path, "q", **kw, **options)
    assert server.request_count == 0
    voxmagic.ask(path, "q", max_tokens=2.0, **kw)
    assert server.requests[-1].body["max_tokens"] == 2 and type(server.requests[-1].body["max_tokens"]) is int


def test_an_on_result_that_raises_does_not_cost_the_batch(server, opts, clips):
    """A mistake in the callback ended the batch at the first finished file with a raw traceback:
    the rows already paid for were lost and the other sources never sent."""
    paths = [str(clips["mp3"]), str(clips["wav"])]
    with pytest.warns(UserWarning, match=r"^on_result raised ZeroDivisionError: division by zero; it is not called"):
        df = voxmagic.transcribe(paths, on_result=lambda i, row: 1 / 0, cache=False, **opts)
    assert df["error"].isna().all() and df["text"].notna().all() and server.request_count == 2


def test_keywords_that_would_be_ignored_are_refused(server, opts, clips):
    """dialect='claude', hint= beside prompt=, auto_tools without tools, trim_silence='yes' and
    language=5 were accepted and ignored (or sent as 'The speech is in 5.')."""
    wav = str(clips["wav"])
    cases = [(lambda: voxmagic.ask(wav, "q", dialect="claude", **opts), r"^dialect='claude': use openrouter"),
             (lambda: voxmagic.transcribe(wav, prompt="Just the first word.", hint="XYZ", **opts),
              r"^prompt= replaces the whole instruction, so hint= would be dropped"),
             (lambda: voxmagic.ask(wav, "q", auto_tools=True, **opts), r"^auto_tools=True runs the Python functions"),
             (lambda: voxmagic.transcribe(wav, trim_silence="yes", **opts), r"^trim_silence='yes': use True or False"),
             (lambda: voxmagic.transcribe(wav, 5, **opts), r"^language=5: give its name or code as text"),
             (lambda: voxmagic.ask(wav, None, **opts), r"^prompt=None: give the question as text"),
             (lambda: voxmagic.ask(wav, "  ", **opts), r"^prompt='  ': give the question as text"),
             (lambda: voxmagic.ask(wav, "q", on_event=5, **opts), r"^on_event=5: give a function of one event"),
             (lambda: voxmagic.ask(wav, "q", transport="x", **opts), r"^transport='x': give an httpx"),
             (lambda: voxmagic.ask(wav, "q", max_tokens=np.int64(0), **opts), r"^max_tokens=np.int64\(0\) is out of"),
             (lambda: voxmagic.ask_each([wav], ["q"], **opts), r"^prompt=\['q'\]: give the question as text"),
             (lambda: voxmagic.transcribe(wav, translate_to=5, **opts), r"^translate_to=5: give it as text"),
             (lambda: voxmagic.transcribe(wav, hint=5, **opts), r"^hint=5: give it as text"),
             (lambda: voxmagic.Conversation(wav, temprature=0.2, **opts), r"temprature \(did you mean temperature"),
             (lambda: voxmagic.ask_each([wav], "q", system=5, **opts), r"^system=5: give the instructions as text"),
             (lambda: voxmagic.ask(wav, "q", system=5, **opts), r"^system=5: give the instructions as text"),
             (lambda: voxmagic.transcribe(wav, vocab=5, **opts), r"^vocab=5: give the terms as text"),
             (lambda: voxmagic.transcribe(wav, segments="yes", **opts), r"^segments='yes': use True or False")]
    for call, message in cases:
        with pytest.raises(ConfigError, match=message):
            call()
    assert server.request_count == 0
    # numpy's numbers are numbers, and numpy's bools are bools
    voxmagic.transcribe(wav, trim_silence=np.bool_(False), max_tokens=np.int64(200), temperature=np.float32(0), **opts)
    assert server.requests[-1].body["max_tokens"] == 200 and type(server.requests[-1].body["max_tokens"]) is int
    voxmagic.ask(wav, "q", stream=np.False_, **opts)  # refused before, and not JSON as it was
    assert server.requests[-1].body["stream"] is False


def test_without_the_server_extra_the_offline_paths_say_what_to_install(tmp_path, monkeypatch, capsys):
    """After `pip install -e .` alone, every offline path was a 17-line ModuleNotFoundError."""
    import sys

    from voxmagic.__main__ import main
    from voxmagic.testing import use_local_server

    monkeypatch.setitem(sys.modules, "aiohttp", None)  # `import aiohttp` now fails
    monkeypatch.delitem(sys.modules, "voxmagic.testing.server", raising=False)
    with pytest.raises(ConfigError, match=r"^voxmagic's local server needs aiohttp: pip install 'voxmagic\[server\]'"):
        use_local_server(force=True)
    assert main(["transcribe", str(tone_file(tmp_path / "a.wav", 1.0)), "--offline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("voxmagic: voxmagic's local server needs aiohttp") and err.count("\n") == 1


def test_a_demo_notebook_that_fails_prints_only_what_ran(tmp_path, capsys, monkeypatch):
    """After a failing cell, demo printed the outputs saved in the notebook for cells that never
    ran (costs included), and the failure line carried terminal colour codes."""
    import nbformat

    from voxmagic.__main__ import main

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('ran')"),
                                         nbformat.v4.new_code_cell("1 / 0"),
                                         nbformat.v4.new_code_cell("print('never')")])
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="SAVED-OUTPUT $9.99\n")]
    nb.cells[2].execution_count = 3
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "fails.ipynb")
    monkeypatch.chdir(tmp_path)  # its executed copy goes to ./build
    assert main(["demo", str(tmp_path / "fails.ipynb")]) == 1
    out = capsys.readouterr().out
    assert "a cell failed: ZeroDivisionError: division by zero" in out and "\x1b[" not in out
    assert "ran" in out and "SAVED-OUTPUT" not in out
