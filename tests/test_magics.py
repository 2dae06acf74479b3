"""The magics through a real InteractiveShell, against the local server."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from conftest import SECRET, run

from voxmagic import runner
from voxmagic.codec import container_blocks
from voxmagic.testing.synth import tone, tone_file

@pytest.fixture
def ip(shell, tmp_path):
    tone_file(tmp_path / "meeting.mp3", 2.0)
    tone_file(tmp_path / "b.flac", 1.0)
    (tmp_path / "clips").mkdir()
    for i in range(3):
        tone_file(tmp_path / "clips" / f"c{i}.wav", 0.5 + i * 0.25, channels=1)
    return shell


def magic(ip):
    return ip.magics_manager.registry["VoxtralMagics"]


# --- %%voxtral -----------------------------------------------------------------------------

def test_cell_body_is_the_prompt_and_result_lands_in_variables(ip, server):
    ip.user_ns["topic"] = "budget"
    out, err = run(ip, "%%voxtral meeting.mp3 -o ans\nWhat was decided about the {topic}? Use {{braces}}.")
    assert not err
    assert server.requests[-1].prompt == "What was decided about the budget? Use {braces}."
    response = ip.user_ns["_voxtral"]
    assert ip.user_ns["ans"] == response.text and response.text.startswith("Heard 1 clips: [1] 2.000 s")
    assert response.text in out  # text fallback printed the streamed answer


def test_an_answer_cut_at_the_output_limit_says_so_and_what_to_do(ip, server):
    out, err = run(ip, "%%voxtral meeting.mp3 --max-tokens 3 -o ans\nQ")
    assert server.requests[-1].body["max_tokens"] == 3
    assert "3 tokens · cut at the output limit · $" in out
    assert err.strip() == ("voxmagic: the answer stopped at --max-tokens 3 after 3 tokens; ask again with a larger "
                           "--max-tokens, or go on from here with %%voxtral --continue")
    assert ip.user_ns["ans"] == ip.user_ns["_voxtral"].text and ip.user_ns["ans"]  # what came is kept
    out, err = run(ip, "%%voxtral meeting.mp3 -o ans\nQ")
    assert "cut at" not in out and not err


def test_every_api_option_reaches_the_request(ip, server):
    run(ip, "%%voxtral meeting.mp3 --model mistralai/voxtral-mini-3b-2507 --max-tokens 7 "
            "--temperature 0.3 --top-p 0.9 --stop END --stop FIN --frequency-penalty 0.5 "
            "--presence-penalty -0.5 --seed 11 --no-stream --format flac --system 'Be brief.'\nQ?")
    rec = server.requests[-1]
    body = rec.body
    assert body["model"] == "mistralai/voxtral-mini-3b-2507" and body["max_tokens"] == 7
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9 and body["stop"] == ["END", "FIN"]
    assert body["frequency_penalty"] == 0.5 and body["presence_penalty"] == -0.5 and body["seed"] == 11
    assert body["stream"] is False and rec.audio[0].format == "flac"
    assert rec.prompt.startswith("Be brief.") and rec.prompt.endswith("Q?")


def test_config_defaults_apply_and_the_line_overrides_them(ip, server):
    ip.run_line_magic("config", "VoxtralMagics.temperature = 0.2")
    ip.run_line_magic("config", "VoxtralMagics.max_tokens = 50")
    ip.run_line_magic("config", "VoxtralMagics.stream = False")
    run(ip, "%%voxtral meeting.mp3\nQ")
    body = server.requests[-1].body
    assert body["temperature"] == 0.2 and body["max_tokens"] == 50 and body["stream"] is False
    run(ip, "%%voxtral meeting.mp3 --temperature 0.7 --max-tokens 9\nQ")
    assert server.requests[-1].body["temperature"] == 0.7 and server.requests[-1].body["max_tokens"] == 9


def test_json_schema_and_pydantic_results(ip, server):
    from pydantic import BaseModel

    class Decision(BaseModel):
        topic: str
        agreed: bool

    ip.user_ns["Decision"] = Decision
    out, _ = run(ip, "%%voxtral meeting.mp3 --schema Decision -o ans\nExtract the decision.")
    assert isinstance(ip.user_ns["ans"], Decision)
    assert out.splitlines()[-3] == repr(ip.user_ns["ans"])  # the object under the JSON that streamed
    assert server.requests[-1].body["response_format"]["json_schema"]["name"] == "Decision"
    run(ip, "%%voxtral meeting.mp3 --json -o ans\nAs JSON.")
    assert isinstance(ip.user_ns["ans"], dict) and "clips" in ip.user_ns["ans"]
    # an answer cut short is no Decision: -o got the raw string, the notice glued to the answer's line
    out, err = run(ip, "%%voxtral meeting.mp3 --schema Decision --stop sample --no-cache -o ans\nExtract.")
    assert ip.user_ns["ans"] is None and ip.user_ns["_voxtral"].text.startswith('{"topic": "')
    assert re.fullmatch(r"voxmagic: the answer is not valid JSON: .+; ans is None; the answer as sent is in "
                        r"_voxtral\.text\n", err) and "voxmagic:" not in out


def test_tools_are_called_with_the_models_arguments(ip, server):
    ip.run_cell('def log_decision(topic: str, votes: int = 0):\n'
                '    """Record a decision.\n\n    topic: what was decided\n    """\n'
                '    return f"logged {topic} with {votes}"')
    run(ip, "%%voxtral meeting.mp3 --tools log_decision --tool-choice log_decision -o ans\nLog it.")
    tool = server.requests[-1].body["tools"][0]["function"]
    assert tool["name"] == "log_decision" and tool["parameters"]["required"] == ["topic"]
    assert tool["parameters"]["properties"]["topic"]["description"] == "what was decided"
    (call,) = ip.user_ns["ans"]  # shown, not run (that takes --auto-tools: test_conversation.py)
    assert call["name"] == "log_decision" and set(call["arguments"]) <= {"topic", "votes"}


def test_dry_run_sends_nothing_and_shows_no_secret(ip, server):
    out, _ = run(ip, "%%voxtral meeting.mp3 --dry-run --max-tokens 100\nQ")
    assert server.request_count == 0
    assert '"max_tokens": 100' in out and "bytes of mp3, 2.00 s" in out and "estimated cost ≤ $" in out
    assert SECRET not in out


def test_audio_from_variables(ip, server, tmp_path):
    ip.user_ns.update(x_array=tone(1.5, 8000, 1)[0], x_bytes=(tmp_path / "b.flac").read_bytes(),
                      x_paths=[str(tmp_path / "meeting.mp3"), str(tmp_path / "b.flac")])
    run(ip, "%%voxtral x_array --sr 8000\nQ")
    assert server.requests[-1].audio[0].duration_s == pytest.approx(1.5, abs=0.02)
    run(ip, "%%voxtral x_bytes x_paths\nQ")
    assert [round(a.duration_s, 1) for a in server.requests[-1].audio] == [1.0, 2.0, 1.0]


def test_a_variable_with_unusable_samples_is_an_error_row_under_its_name(ip, server):
    ip.user_ns["bad"] = (np.array(["a", "b"]), 16_000)
    out, err = run(ip, "%voxtral_transcribe bad meeting.mp3 -o t")
    t = ip.user_ns["t"]
    assert not err and t["source"].tolist() == ["bad", "meeting.mp3"] and t["text"].iloc[1]
    assert t["error"].iloc[0].startswith("array of dtype str32 is not audio samples; pass int or float samples")
    assert server.request_count == 1


def test_a_batch_dry_run_counts_out_what_the_cache_would_answer(ip, server):
    out, err = run(ip, "%voxtral_transcribe meeting.mp3 b.flac --dry-run")
    assert not err and out.startswith("2 files, 2 requests would be sent\n") and server.request_count == 0
    assert "first request:" in out and "estimated cost for all of them" in out
    run(ip, "%voxtral_transcribe meeting.mp3")  # its answer is in the cache now
    sent = server.request_count
    out, _ = run(ip, "%voxtral_transcribe meeting.mp3 b.flac --dry-run")
    assert out.startswith("2 files, 1 request would be sent; 1 of 2 requests answered from the cache ($0)\n")
    assert "(1.0 s audio," in out  # the estimate is b.flac's alone (meeting.mp3 is 2 s)
    out, _ = run(ip, "%voxtral_transcribe meeting.mp3 --dry-run")
    assert out.startswith("1 file, 0 requests would be sent; 1 of 1 request answered") and "first request" not in out
    out, _ = run(ip, "%voxtral_transcribe meeting.mp3 b.flac --dry-run --no-cache")
    assert out.startswith("2 files, 2 requests would be sent\n") and server.request_count == sent


def test_a_dry_run_of_a_long_file_cuts_only_its_first_chunk(ip, server, tmp_path):
    """A 2-hour file's dry run decoded and encoded all of it (34 s, longer than sending it): now
    the first chunk is prepared for the preview and the rest counted from the header's length."""
    tone_file(tmp_path / "long.wav", 200.0, channels=1)
    out, err = run(ip, "%voxtral_transcribe long.wav --chunk-minutes 0.5 --dry-run")
    assert not err and server.request_count == 0
    assert out.startswith("1 file, 7 requests would be sent (6 of them counted from a long file's length: it is cut "
                          "at pauses when sent)\n") and "first request:" in out
    assert "(200.0 s audio," in out
    run(ip, "%voxtral_transcribe long.wav --chunk-minutes 0.5 -o df;")
    assert server.request_count == 7 and ip.user_ns["df"]["error"].isna().all()  # the count was right
    out, _ = run(ip, "%voxtral_transcribe long.wav --chunk-minutes 0.5 --dry-run")
    assert out.startswith("1 file, 0 requests would be sent; 7 of 7 requests answered from the cache ($0)\n")


def test_audio_may_follow_the_options(ip, server):
    """As a shell command's files may: ``%voxtral_transcribe a -o t b`` transcribes a and b."""
    out, err = run(ip, "%voxtral_transcribe meeting.mp3 -o t b.flac --no-cache")
    assert not err and ip.user_ns["t"]["source"].tolist() == ["meeting.mp3", "b.flac"]
    _, err = run(ip, "%%voxtral meeting.mp3 --temprature 0.2 b.flac\nQ")
    assert re.search(r"unrecognized arguments: --temprature 0\.2 .*\(did you mean --temperature\?\)$", err.strip())


def test_the_player_and_the_live_widget(ip, server):
    """2,000 tokens at 1,000 tokens/s: bounded update rate, and the exact final text."""
    import time

    ip.run_line_magic("config", "VoxtralMagics.display_mode = 'widget'")
    ip.run_line_magic("config", "VoxtralMagics.updates_per_second = 20")
    server.configure(answer_tokens=2000, token_rate=1000)
    started = time.monotonic()
    out, err = run(ip, "%%voxtral meeting.mp3 -o ans\nTalk a lot.")
    elapsed = time.monotonic() - started
    view = magic(ip).session.last_view
    text = ip.user_ns["ans"]
    assert len(text.split()) == 2000 and not err
    assert view.box.text == text  # the last update brought the front end to the exact final text
    assert 5 <= view.updates <= 25 * elapsed  # coalesced: nowhere near one update per token
    # every flush showed new text, except those before the first token (the request leaving changes
    # only the status line) and perhaps the closing one (the last timed flush may have carried
    # everything already when the machine is slow)
    assert view.updates <= view.throttle.flushes <= min(view.updates + 3, 25 * elapsed)


def test_one_small_player_per_source(ip, server, tmp_path):
    """The notebook keeps every player it shows: a 20 s clip gets one Opus preview, far smaller
    than the upload, and asking about it again shows no second copy."""
    import base64

    from IPython.utils.capture import capture_output

    tone_file(tmp_path / "twenty.wav", 20.0)
    ip.run_line_magic("config", "VoxtralMagics.display_mode = 'widget'")
    players = []
    for question in ("First?", "Second?"):
        with capture_output() as cap:
            ip.run_cell(f"%%voxtral {tmp_path / 'twenty.wav'}\n{question}")
        players.append([o.data["text/html"] for o in cap.outputs if "<audio" in o.data.get("text/html", "")])
    (first,), second = players
    assert second == [] and 'type="audio/ogg"' in first
    embedded = base64.b64decode(re.search(r'base64,([^"]+)"', first).group(1))
    upload = server.requests[0].audio[0].n_bytes
    assert embedded[:4] == b"OggS" and len(embedded) < 40_000 < upload  # 12 kbit/s Opus vs 32 kbit/s MP3


def test_text_fallback_without_a_kernel(ip):
    out, _ = run(ip, "%%voxtral meeting.mp3\nQ")
    lines = out.strip().splitlines()
    assert lines[0].startswith("Heard 1 clips")
    assert re.fullmatch(r"this call \$0\.\d{6} · session \$0\.\d{6} \(1 call\)", lines[-1])


# --- %voxtral_transcribe -------------------------------------------------------------------

def test_transcribe_a_folder_and_a_glob(ip, server):
    df = ip.run_line_magic("voxtral_transcribe", "clips meeting.* --language en -o df --concurrency 2")
    assert df is ip.user_ns["df"]
    assert [s.split("/")[-1] for s in df["source"]] == ["c0.wav", "c1.wav", "c2.wav", "meeting.mp3"]
    np.testing.assert_allclose(df["duration_s"], [0.5, 0.75, 1.0, 2.0], atol=0.01)
    assert df["error"].isna().all()
    assert "The speech is in en." in server.requests[-1].prompt
    assert server.requests[-1].body["temperature"] == 0.0


def test_transcribe_options(ip, server):
    ip.run_line_magic("voxtral_transcribe", "meeting.mp3 --translate-to French --prompt 'Names: Ada' "
                                           "--max-tokens 30 -o t")
    rec = server.requests[-1]
    assert rec.prompt.startswith("Translate the speech in this audio into French.")
    assert rec.prompt.endswith("Context and vocabulary: Names: Ada") and rec.body["max_tokens"] == 30
    assert ip.user_ns["t_text"] == ip.user_ns["_voxtral_text"] == ip.user_ns["t"]["text"].iloc[0]


def test_a_trailing_semicolon_stores_without_displaying(ip):
    with capture_output():
        assert ip.run_line_magic("voxtral_transcribe", "clips -o df;") is None
    assert len(ip.user_ns["df"]) == 3
    out, _ = run(ip, "%voxtral_transcribe clips -o df")
    # all three answered from the cache: nothing sent this time, and cached answers are not calls
    assert re.search(r"^nothing sent · session \$0\.\d+ \(3 calls, 3 answers from the cache\)$", out, re.M)


def test_transcribe_progress_widget(ip, server):
    ip.run_line_magic("config", "VoxtralMagics.display_mode = 'widget'")
    with capture_output():
        df = ip.run_line_magic("voxtral_transcribe", "clips")
    view = magic(ip).session.last_view
    assert view.progress.done == view.progress.total == 3 and view.bar.value == 3
    assert view.progress.cost == pytest.approx(df["cost_usd"].sum())


def test_a_failed_file_keeps_the_others(ip, server):
    server.add_fault("http_500", times=1)
    ip.run_line_magic("config", "VoxtralMagics.max_attempts = 1")
    with capture_output() as shown:
        df = ip.run_line_magic("voxtral_transcribe", "clips")
    assert df["error"].notna().sum() == 1 and df["text"].notna().sum() == 2
    # the failed request was sent too: the cost line counts it, as %voxtral_cost does
    cost = sum(r.cost for r in server.requests if r.cost)
    assert f"these 3 calls ${cost:.6f} · session" in shown.stdout  # refused (HTTP 500): a call, not billed
    server.add_fault("http_500", times=1)
    out, _ = run(ip, "%voxtral_transcribe b.flac --no-cache -o failed;")
    assert "this call $0.000000 · session" in out and "nothing sent" not in out
    out, _ = run(ip, "%voxtral_transcribe meeting.mp3 -o first;")
    assert "this call $" in out
    out, _ = run(ip, "%voxtral_transcribe meeting.mp3 -o cached;")
    assert "nothing sent · session" in out


# --- cost -----------------------------------------------------------------------------------

def test_cost_tally_equals_what_the_server_reported(ip, server):
    run(ip, "%%voxtral meeting.mp3\nQ1")
    run(ip, "%%voxtral b.flac\nQ2")
    with capture_output():
        ip.run_line_magic("voxtral_transcribe", "clips")
    out, _ = run(ip, "%voxtral_cost -o c")
    reported = sum(r.cost for r in server.requests)
    c = ip.user_ns["c"]
    assert len(c) == 5 and c["cost_usd"].sum() == pytest.approx(reported, rel=1e-12)
    assert f"total ${reported:.6f} over 5 calls" in out
    out, _ = run(ip, "%voxtral_cost --reset")
    assert runner.ledger.calls == 0 and out.endswith("cost tally reset to $0\n")
    ip.run_line_magic("config", "VoxtralMagics.budget = 0.5")
    out, _ = run(ip, "%voxtral_cost --reset")  # a reset lifts what the budget had held back: said
    assert out.endswith("cost tally reset to $0; the session budget of $0.5000 is all available again\n")


# --- errors: one line, no traceback, no secret ---------------------------------------------

@pytest.mark.parametrize("cell, message", [
    ("%%voxtral nowhere.mp3\nQ", r"no such file: nowhere\.mp3"),
    ("%%voxtral some_name\nQ", r"some_name is neither a file nor a variable"),
    ("%%voxtral clips/*.ogg\nQ", r"no files match clips/\*\.ogg"),
    ("%%voxtral meeting.mp3\nAbout {nothing_here}", r"the prompt uses \{nothing_here\} but there is no variable"),
    ("%%voxtral meeting.mp3\n   \n", r"the cell is empty: write your question"),
    ("%%voxtral meeting.mp3 --temperature 3\nQ", r"--temperature 3 is out of range: use a number from 0 to 2$"),
    # one table of bounds (voxmagic.limits): each refusal names the option and the bound
    ("%voxtral_transcribe clips --concurrency 0", r"--concurrency 0 is out of range: use a whole number from 1 to 64$"),
    ("%voxtral_transcribe clips --chunk-minutes -1", r"--chunk-minutes -1 is out of range: .*, or 0 \(never cut\)$"),
    ("%voxtral_transcribe clips --chunk-minutes 0.2", r"--chunk-minutes 0\.2 is out of range: use a number from 0\.5 to 40"),
    ("%voxtral_transcribe clips --max-cost -1", r"--max-cost -1 is out of range: use a number above 0 USD$"),
    ("%%voxtral meeting.mp3 --max-tool-rounds 0 --auto-tools --tools f\nQ", r"--max-tool-rounds 0 is out of range"),
    ("%%voxtral meeting.mp3 --max-tool-rounds 3\nQ", r"--max-tool-rounds limits --auto-tools: add --auto-tools"),
    ("%%voxtral meeting.mp3 b.flac --together\nQ", r"--together only changes what --schema does"),
    ("%%voxtral meeting.mp3 --sr -5\nQ", r"--sr -5 is out of range: use a whole number from 1000 to 768000 Hz"),
    ("%%voxtral meeting.mp3 --temperature hot\nQ", r"argument --temperature: invalid float value"),
    ("%%voxtral meeting.mp3 --base-url notaurl\nQ", r"^UsageError: the base URL 'notaurl' is not a URL: give the API's"),
    ("%%voxtral meeting.mp3 --colour blue\nQ", r"unrecognized arguments: --colour blue"),
    ("%%voxtral meeting.mp3 --schema Missing\nQ", r"--schema: no variable named Missing"),
    ("%%voxtral meeting.mp3 --max-cost 0.00001\nQ", r"could cost up to \$0\.\d+, over the \$0\.000010 limit"),
    ("%voxtral_transcribe clips --max-cost 0.00001", r"this batch of 3 files could cost"),
    ("%voxtral_transcribe clips -o 'my df'", r"-o my df: not a valid Python variable name"),
    ("%voxtral_transcribe clips -o class", r"-o class: not a valid Python variable name"),
    ("%voxtral_transcribe clips -o print", r"-o print: that would hide Python's own print; pick another name"),
    ("%%voxtral meeting.mp3 --format 'x\nQ", r"cannot read the options: No closing quotation"),
    # argparse keeps the last of an option given twice: the first moment would be dropped unsaid
    ("%voxtral_transcribe clips --at 0-5 --at 10-15", r"--at is given twice: give it once; for several moments, pass"),
    ("%%voxtral meeting.mp3 --temperature 0.2 --temperature=0.5\nQ", r"--temperature is given twice: give it once$"),
    ("%%voxtral --continue --at 0-3\nQ", r"--continue asks about the audio .* as it was sent: --at cannot change it"),
    ("%%voxtral --continue --trim-silence\nQ", r"as it was sent: --trim-silence cannot change it"),
    ("%voxtral_transcribe clips --srt meeting.mp3", r"--srt meeting\.mp3: that is a file name; --srt takes a folder"),
    ("%voxtral_transcribe clips --vtt subs/new.vtt", r"--vtt subs/new\.vtt: that is a file name; --vtt takes a folder"),
    ("%voxtral_transcribe (x, 16000)", r"^UsageError: \(x,: the line takes names, not Python expressions; put it in a"),
])
def test_user_mistakes_are_one_line(ip, server, cell, message):
    out, err = run(ip, cell)
    assert err.count("\n") == 1 and err.startswith("UsageError: ") and "Traceback" not in err
    assert re.search(message, err), err
    assert server.request_count == 0


def test_a_moments_subtitles_are_a_file_of_their_own(ip, server, tmp_path):
    """They wrote meeting.srt too: the whole file's, or another moment's, was overwritten."""
    run(ip, "%voxtral_transcribe meeting.mp3 --at 0:00.5-0:01.5 --srt subs --vtt subs -o a;")  # a 2-s file
    run(ip, "%voxtral_transcribe meeting.mp3 --srt subs -o b;")
    run(ip, "%voxtral_transcribe meeting.mp3 --at 0:00.5-0:01.5 --srt subs -o c;")  # a rerun: the same name
    subs = tmp_path / "subs"
    assert sorted(p.name for p in subs.iterdir()) == [
        ".voxmagic-subtitles.json", "meeting.srt", "meeting_0m00.5s-0m01.5s.srt", "meeting_0m00.5s-0m01.5s.vtt"]
    moment, whole = (subs / "meeting_0m00.5s-0m01.5s.srt").read_text(), (subs / "meeting.srt").read_text()
    assert "00:00:00,500 -->" in moment and "00:00:00,000 -->" in whole
    # moments from a table: a file of their own too (they overwrote meeting.srt)
    import pandas as pd

    ip.user_ns["part"] = pd.DataFrame({"source": ["meeting.mp3"] * 2, "start": [0.0, 1.2], "end": [0.5, 1.8]})
    run(ip, "%voxtral_transcribe part --srt subs -o d;")
    assert (subs / "meeting.srt").read_text() == whole and (subs / "meeting_2_moments.srt").exists()


def test_a_hidden_transcript_builds_no_player(ip, server, monkeypatch):
    """With ";" the player was built anyway: its preview encoded (seconds for a long file) and its
    audio kept in the widget state, for a result nobody sees."""
    from voxmagic.notebook.player import TranscriptPlayer

    built = []
    monkeypatch.setattr(TranscriptPlayer, "from_segments", classmethod(lambda cls, *a, **k: built.append(a)))
    ip.run_line_magic("config", "VoxtralMagics.display_mode = 'widget'")
    run(ip, "%voxtral_transcribe meeting.mp3 --segments -o seg;")
    assert built == [] and len(ip.user_ns["seg"]) >= 1 and ip.user_ns["_voxtral_df"] is ip.user_ns["seg"]
    run(ip, "%voxtral_transcribe meeting.mp3 --segments -o seg")
    assert len(built) == 1  # shown: the player is made


def test_the_transcript_player_is_the_result_and_embeds_nothing_at_player_max_seconds_0(ip, server):
    ip.run_line_magic("config", "VoxtralMagics.display_mode = 'widget'")
    with capture_output():
        player = ip.run_line_magic("voxtral_transcribe", "meeting.mp3 --segments -o seg")
    assert type(player).__name__ == "TranscriptPlayer" and ip.user_ns["_voxtral_df"] is ip.user_ns["seg"]
    assert player.sources[0]["audio"].startswith(b"OggS")  # a 2-s file: its preview is embedded
    with capture_output():  # a moment: only its stretch is embedded, placed where it starts
        player = ip.run_line_magic("voxtral_transcribe", "meeting.mp3 --at 0.5-1.5 --segments")
    (moment,) = player.sources
    assert moment["start"] == min(r["start"] for r in player.rows) >= 0.5
    heard = sum(b.size for b in container_blocks(io.BytesIO(moment["audio"]), "preview")) / 16_000
    assert heard == pytest.approx(max(r["end"] for r in player.rows) - moment["start"], abs=0.05) and heard < 1.1
    ip.run_line_magic("config", "VoxtralMagics.player_max_seconds = 0")
    with capture_output():
        player = ip.run_line_magic("voxtral_transcribe", "meeting.mp3 --segments")
    (source,) = player.sources
    assert source["audio"] is None and source["note"] == "not embedded: player_max_seconds is 0"
    data, _ = player._repr_mimebundle_()
    assert data["text/plain"].endswith("\nmeeting.mp3: not embedded: player_max_seconds is 0")  # the name once


def test_subtitles_with_a_failed_chunk_say_so(ip, server):
    server.add_fault("http_500", times=1)
    ip.run_line_magic("config", "VoxtralMagics.max_attempts = 1")
    out, err = run(ip, "%voxtral_transcribe meeting.mp3 b.flac --srt subs --concurrency 1 -o df;")
    assert not err and ip.user_ns["df"]["error"].notna().sum() == 1
    assert "wrote 1 subtitle file to subs (1 failed chunk left out: see the error column)" in out


def test_subtitles_that_cannot_be_written_keep_the_paid_answers(ip, server):
    out, err = run(ip, "%voxtral_transcribe meeting.mp3 --srt meeting.mp3/subs -o df;")
    assert not err and server.request_count == 1
    assert "subtitles not written to meeting.mp3/subs: " in out and "Traceback" not in out
    assert ip.user_ns["df"]["text"].iloc[0]


@pytest.mark.parametrize("fault, message", [
    ("http_401", "check the key in OPENROUTER_API_KEY"),
    ("http_402", "add credits"),
    ("http_503", "gave up after 4 attempts"),
])
def test_api_failures_say_what_to_do(ip, server, fault, message):
    server.add_fault(fault, times=4)
    ip.run_line_magic("config", "VoxtralMagics.backoff = 0.01")
    out, err = run(ip, "%%voxtral meeting.mp3\nQ")
    assert err.startswith("UsageError: ") and err.count("\n") == 1 and message in err
    assert SECRET not in out + err + repr(ip.user_ns.get("_voxtral_error"))


def test_no_key_says_how_to_set_it(ip, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY")
    _, err = run(ip, "%%voxtral meeting.mp3\nQ")
    assert err.startswith("UsageError: no API key for openrouter: set OPENROUTER_API_KEY in the environment or in a .env file")


def test_key_from_dotenv_under_a_configured_name(ip, server, monkeypatch, tmp_path):
    monkeypatch.delenv("OPENROUTER_API_KEY")
    (tmp_path / ".env").write_text("TEAM_KEY=team-secret\n")
    server.configure(api_key="team-secret")
    ip.run_line_magic("config", "VoxtralMagics.api_key_env = 'TEAM_KEY'")
    _, err = run(ip, "%%voxtral meeting.mp3 -o ans\nQ")
    assert not err and ip.user_ns["ans"].startswith("Heard")


def test_help_lists_every_option(ip):
    doc = ip.magics_manager.magics["cell"]["voxtral"].__doc__
    for option in ["--model", "--max-tokens", "--temperature", "--top-p", "--stop", "--frequency-penalty",
                   "--presence-penalty", "--seed", "--json", "--schema", "--tools", "--tool-choice",
                   "--no-stream", "--system", "--out", "--dry-run", "--max-cost", "--sr", "--format"]:
        assert option in doc
    tdoc = ip.magics_manager.magics["line"]["voxtral_transcribe"].__doc__
    for option in ["--language", "--translate-to", "--prompt", "--concurrency", "--out"]:
        assert option in tdoc


def test_unload_ext(ip):
    ip.run_line_magic("unload_ext", "voxmagic")
    assert "voxtral" not in ip.magics_manager.magics["cell"]
    with pytest.raises(UsageError):
        ip.run_cell_magic("voxtral", "meeting.mp3", "Q")


@pytest.mark.parametrize("line", ["%%voxtral --help\nignored", "%voxtral_transcribe x.mp3 --help",
                                  "%voxtral_cost -h", "%voxtral_history --help", "%voxtral_models --help",
                                  "%voxtral_reset --help"])
def test_help_on_the_line_prints_every_option_and_runs_nothing(ip, server, line):
    name = line.split()[0].lstrip("%")
    out, err = run(ip, line)
    assert not err and server.request_count == 0
    magic = ip.find_cell_magic(name) if line.startswith("%%") else ip.find_line_magic(name)
    flags = [f for action in magic.__func__.parser._actions for f in action.option_strings]
    assert all(flag in out for flag in flags) and "--help" not in flags  # each with its help line
    assert ip.user_ns.get("_voxtral_error") is None


def test_the_player_is_made_while_the_question_goes_out(ip, server, tmp_path, monkeypatch):
    """Encoding the player's preview (~0.2 s a minute) must not hold up the request: the preview is
    made once the request is on its way, in the place kept for it above the answer."""
    import time

    from IPython.utils.capture import capture_output

    from voxmagic.notebook import ask

    seen: list[int] = []

    def after_the_request(clip):
        deadline = time.monotonic() + 5
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)  # made before sending (as it was), this would wait in vain
        seen.append(len(server.requests))
        return real(clip)

    real = ask.preview
    monkeypatch.setattr(ask, "preview", after_the_request)
    tone_file(tmp_path / "five.wav", 5.0)
    ip.run_line_magic("config", "VoxtralMagics.display_mode = 'widget'")
    with capture_output() as cap:
        ip.run_cell(f"%%voxtral {tmp_path / 'five.wav'} -o ans\nQ?")
    assert seen == [1] and ip.user_ns["ans"]
    assert any('type="audio/ogg"' in o.data.get("text/html", "") for o in cap.outputs)
