"""Talking to the notebook, below the browser: the take (``voxmagic.recording``) cut at pauses,
and the record/stop control's Python twin (``voxmagic.notebook.recorder``) fed 16 kHz PCM blocks
as the front end sends them — in a real shell, against the local server — then ``%%voxtral
--mic``, a refused microphone, and where no microphone can be had: a terminal, and a real kernel
driven by nbclient (nbconvert's way), where one line says so and nothing waits.

The browser's half (a fake microphone in Chromium) is tests/browser/test_microphone.py.
"""
from __future__ import annotations

import time

import nbformat
import numpy as np
import pytest
from ipywidgets.widgets.widget import _instances
from nbclient import NotebookClient

from conftest import run
from voxmagic.audio import AudioSource, as_source
from voxmagic.codec import PCM
from voxmagic.demo import meeting_path
from voxmagic.loop import LOOP
from voxmagic.notebook.recorder import Recorder
from voxmagic.recording import MAX_PIECE_S, MIN_PIECE_S, Take, next_cut
from voxmagic.silence import detect, trim

RATE = 16_000
BLOCK = 2048  # what the front end sends at a time (128 ms)
NO_MIC = "no microphone here: "


def speech(seconds: float = 6.0) -> np.ndarray:
    """The first ``seconds`` of the bundled meeting (espeak-ng voices), 16 kHz int16."""
    return as_source(str(meeting_path())).decode().samples[: round(seconds * RATE)].copy()


def latest_recorder() -> Recorder:
    return [w for w in list(_instances.values()) if isinstance(w, Recorder)][-1]


def send(recorder: Recorder, samples: np.ndarray, pace_s: float = 0.0) -> None:
    """As the front end does: start, PCM blocks in binary buffers, stop."""
    recorder._handle_custom_msg({"kind": "start"}, [])
    for seq, i in enumerate(range(0, samples.size, BLOCK)):
        recorder._handle_custom_msg({"kind": "pcm", "seq": seq}, [memoryview(samples[i : i + BLOCK].tobytes())])
        time.sleep(pace_s)
    recorder._handle_custom_msg({"kind": "stop"}, [])


async def _settled(take: Take) -> None:
    await take.settled()


@pytest.fixture
def ip(shell):
    shell.run_line_magic("config", "VoxtralMagics.display_mode = 'widget'")
    return shell


# --- the take -------------------------------------------------------------------------------


def test_pieces_end_in_pauses_never_in_a_word():
    """The meeting fed as the front end sends it: every cut falls where the detector, run over the
    whole recording, hears no speech; pieces with speech are 1–8 s; silence costs no request."""
    x = speech(30.0)
    cuts, start = [], 0
    for end in range(BLOCK, x.size, BLOCK):
        found = next_cut(x[start:end])
        if found:
            cuts.append((start, start + found[0], found[1]))
            start += found[0]
    flags, hop, _, _ = detect(PCM(x))
    assert not any(flags[end // hop] for _, end, _ in cuts)
    spoken = [(a, b) for a, b, has_speech in cuts if has_speech]
    assert len(spoken) >= 6 and all(MIN_PIECE_S * RATE <= b - a <= MAX_PIECE_S * RATE for a, b in spoken)
    for a, b, has_speech in cuts:
        assert has_speech == bool(flags[a // hop : b // hop].any())


def test_silence_is_let_go_without_a_request_and_speech_without_pauses_is_cut_by_eight_seconds():
    silent = np.zeros(round(1.5 * RATE), np.int16)
    end, has_speech = next_cut(silent)
    assert not has_speech and end == silent.size - round(0.3 * RATE)
    assert next_cut(silent[: round(0.5 * RATE)]) is None  # shorter than a piece
    talk = trim(PCM(speech(30.0)), min_pause_s=0.05, keep_s=0.0).pcm.samples  # the meeting without its pauses
    assert next_cut(talk[: round((MAX_PIECE_S - 0.5) * RATE)]) is None
    end, has_speech = next_cut(talk[: round(MAX_PIECE_S * RATE)])
    assert has_speech and MIN_PIECE_S * RATE <= end <= MAX_PIECE_S * RATE


def test_a_take_holds_exactly_the_samples_fed_and_its_own_bounds():
    take = Take(max_seconds=1)
    x = speech(2.0)

    async def feed() -> AudioSource | None:
        for i in range(0, x.size, 1000):
            take.feed(x[i : i + 1000].tobytes())
        return take.stop()

    source = LOOP.run(feed())
    assert source is not None and take.state == "stopped"
    assert np.array_equal(source.array, x[:RATE])  # stopped by itself at max_seconds
    assert source.sample_rate == RATE and source.label == "recording"
    LOOP.run(_settled(take))
    assert take.preview[:4] == b"OggS" and take.final is None  # no transcriber: no transcript

    empty = Take()
    assert LOOP.run(_call(empty.stop)) is None
    assert empty.state == "failed" and empty.message.startswith("nothing was recorded")


async def _call(function):
    return function()


# --- the control's Python twin, in a shell ----------------------------------------------------


def test_captions_grow_while_recording_then_the_clip_is_audio_like_any_other(ip, server):
    out, _ = run(ip, "%voxtral_record -o clip")
    assert out == ""
    recorder = latest_recorder()
    assert recorder.state == "waiting" and recorder.max_seconds == 300
    x = speech()
    seen = []
    recorder.observe(lambda change: seen.append(change.new), "captions")
    send(recorder, x, pace_s=0.002)
    clip = ip.user_ns["clip"]  # bound by the time the stop returned
    assert isinstance(clip, AudioSource) and np.array_equal(clip.array, x) and ip.user_ns["_voxtral_clip"] is clip
    LOOP.run(_settled(recorder.take))
    pieces = recorder.take.pieces
    assert [p.speech for p in pieces] == [True, True] and all(p.text.startswith("Heard 1 clips") for p in pieces)
    captions = [c for c in seen if c and "…" not in c]
    assert len(captions) >= 2 and captions[-1] == recorder.captions  # pieces, then the whole
    assert f"{x.size / RATE:.3f} s" in recorder.captions and ip.user_ns["clip_text"] == recorder.captions
    assert recorder.state == "stopped" and recorder.status == "recorded 6.0 s"
    assert recorder.audio[:4] == b"OggS"  # the player's audio
    assert len(server.requests) == 3  # two pieces and the whole

    out, err = run(ip, "%%voxtral clip -o said\nWhat is said?")
    assert err == "" and ip.user_ns["said"].startswith("Heard 1 clips: [1] 6.000 s")
    run(ip, f"import voxmagic\ndf = voxmagic.transcribe(clip, base_url={server.base_url!r})")
    df = ip.user_ns["df"]
    assert df["error"].isna().all() and df["source"].tolist() == ["clip"] and df["duration_s"][0] == 6.0


def test_mic_asks_about_what_was_said_when_the_recording_stops(ip, server):
    out, err = run(ip, "%%voxtral --mic -o said --max-tokens 50\nWhat did I say?")
    assert err == "" and "said" not in ip.user_ns  # the cell returned at once
    send(latest_recorder(), speech(4.0))
    said = ip.user_ns["_voxtral_job"].result(timeout=30)
    assert ip.user_ns["said"] == said and said.startswith("Heard 1 clips: [1] 4.000 s")
    asked = [r for r in server.requests if "What did I say?" in r.prompt]
    assert len(asked) == 1 and asked[0].body["max_tokens"] == 50


def test_a_refused_microphone_is_one_line_and_the_mic_question_ends_with_it(ip, server):
    run(ip, "%%voxtral --mic\nWhat did I say?")
    view = ip.magics_manager.registry["VoxtralMagics"].session.last_view
    recorder = latest_recorder()
    recorder._handle_custom_msg({"kind": "refused", "why": "the browser refused the microphone (denied)"}, [])
    LOOP.run(_settled(recorder.take))
    line = "no microphone here: the browser refused the microphone (denied); pass a file instead: %%voxtral"
    assert recorder.state == "failed" and recorder.status.startswith(line)
    assert view.throttle.closed  # the answer's view is finished: nothing waits
    assert server.requests == [] and "_voxtral_job" not in ip.user_ns
    assert recorder.refused.replace("{why}", "x") == "no microphone here: x; pass a file instead: %%voxtral path/to/clip.wav"


def test_the_options_are_checked_before_anything_is_shown(ip):
    for line, message in [
        ("%voxtral_record --max-seconds 0", "--max-seconds 0 is out of range"),
        ("%%voxtral --mic talk.mp3\nHi", "--mic records the audio to ask about"),
        ("%voxtral_record --captions", "unrecognized arguments: --captions (did you mean --no-captions?)"),
    ]:
        _, err = run(ip, line)
        assert message in err, err
    out, _ = run(ip, "%voxtral_record --help")
    assert "--no-captions" in out and "--max-seconds" in out


def test_in_a_terminal_one_line_says_so_and_returns(shell):
    out, err = run(shell, "%voxtral_record -o clip")
    assert out == (f"{NO_MIC}no widgets show here (a terminal, or display_mode 'text'); "
                   "pass a file instead: %%voxtral path/to/clip.wav\n") and err == ""
    out, err = run(shell, "%%voxtral --mic\nWhat did I say?")
    assert out.startswith(NO_MIC) and out.count("\n") == 1 and err == ""
    assert "clip" not in shell.user_ns


def test_in_a_kernel_driven_by_nbclient_one_line_says_so_and_nothing_waits(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", "local-key")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in
                ["%load_ext voxmagic", "%voxtral_record -o clip", "%%voxtral --mic\nWhat did I say?", "print('after')"]]
    began = time.monotonic()
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert time.monotonic() - began < 60
    line = (f"{NO_MIC}this notebook runs without a browser (nbconvert, nbclient, papermill); "
            "pass a file instead: %%voxtral path/to/clip.wav\n")
    for cell in nb.cells[1:3]:
        assert [o.get("text") for o in cell.outputs] == [line]
    assert nb.cells[3].outputs[0]["text"] == "after\n"
