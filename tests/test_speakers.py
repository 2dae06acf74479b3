"""Segments as rows, speakers and vocabulary, against the local server's Mistral dialect (which
diarizes by voice pitch, numbering speakers per request in order of appearance, as Mistral does)."""
from __future__ import annotations

import re

import pytest

import voxmagic
from voxmagic.errors import ConfigError
from voxmagic.testing.server import LocalServer
from voxmagic.testing.synth import voice_turns, voices

from conftest import run

LOW, HIGH = 110.0, 220.0


@pytest.fixture(scope="module")
def mistral():
    with LocalServer(dialect="mistral") as srv:
        yield srv


@pytest.fixture
def opts(mistral, monkeypatch):
    mistral.reset()
    monkeypatch.setenv("MISTRAL_API_KEY", "local-key")
    return dict(provider="mistral", base_url=mistral.base_url)


def who(turns, at):
    """The true speaker (its pitch) at time ``at``."""
    return next((pitch for start, end, pitch in voice_turns(turns) if start - 0.3 <= at <= end + 0.3), None)


def test_diarized_segments_are_rows_with_speakers(opts, mistral, tmp_path):
    turns = [(LOW, 4.0), (HIGH, 3.0), (LOW, 2.5), (HIGH, 3.5)]
    path = voices(tmp_path / "talk.flac", turns)
    seg = voxmagic.transcribe(str(path), segments=True, diarize=True, **opts)
    assert list(seg.columns[:5]) == ["source", "start", "end", "speaker", "text"]
    assert seg["source"].eq(str(path)).all() and seg["error"].isna().all()
    speakers = dict(zip([who(turns, (a + b) / 2) for a, b in zip(seg["start"], seg["end"], strict=True)],
                        seg["speaker"], strict=True))
    assert speakers == {LOW: "speaker_1", HIGH: "speaker_2"}  # one label per voice, in order of appearance
    for (start, end, _), (a, b) in zip(voice_turns(turns), seg[["start", "end"]].itertuples(index=False), strict=False):
        assert abs(a - start) <= 0.3 and abs(b - end) <= 0.3
    sent = mistral.requests[-1].body
    assert sent["diarize"] == "true" and sent["timestamp_granularities"] == ["segment"]
    assert seg["cost_usd"].sum() == pytest.approx(0.003 / 60 * mistral.requests[-1].usage["prompt_audio_seconds"])
    whole = voxmagic.transcribe(str(path), diarize=True, **opts)  # one row per file: a line per turn
    assert [line.split(": ")[0] for line in whole["text"].iloc[0].splitlines()] == ["Speaker 1", "Speaker 2"] * 2


def test_speakers_keep_their_labels_across_the_chunks_of_a_long_file(opts, mistral, tmp_path):
    """The second chunk starts with the other voice: Mistral would call it speaker_1 there; the
    overlap between chunks ties it back to speaker_2."""
    turns = [(LOW, 9.0), (HIGH, 9.0)] * 4 + [(HIGH, 6.0), (LOW, 8.0), (HIGH, 9.0), (LOW, 9.0)]
    path = voices(tmp_path / "long.flac", turns, channels=1)
    seg = voxmagic.transcribe(str(path), segments=True, diarize=True, max_chunk_s=90, **opts)
    assert seg["chunk"].nunique() >= 2 and mistral.request_count == seg["chunk"].nunique()
    starts = [r.body for r in mistral.requests]
    assert all(b["diarize"] == "true" for b in starts)
    pairs = {(who(turns, (a + b) / 2), s) for a, b, s in zip(seg["start"], seg["end"], seg["speaker"], strict=True)}
    assert {p for p in pairs if p[0] is not None} == {(LOW, "speaker_1"), (HIGH, "speaker_2")}
    assert (seg["start"].diff().dropna() > 0).all()  # the overlap is said once, in order
    whole = voxmagic.transcribe(str(path), diarize=True, max_chunk_s=90, **opts)
    assert whole["text"].iloc[0].count("segment ") == len(seg)  # the stitched text, without repeats


def test_a_provider_that_cannot_diarize_says_which_can(server, tmp_path):
    path = voices(tmp_path / "a.wav", [(LOW, 2.0)])
    with pytest.raises(ConfigError, match=r"cannot label speakers .*use --provider mistral$"):
        voxmagic.transcribe(str(path), diarize=True, base_url=server.base_url, api_key="k")
    with pytest.raises(ConfigError, match="not combine with a language"):
        voxmagic.transcribe(str(path), diarize=True, language="en", provider="mistral", api_key="k",
                            base_url=server.base_url)
    assert server.request_count == 0


def test_vocabulary_is_context_bias_on_mistral_and_a_glossary_on_chat(opts, mistral, server, tmp_path):
    path = str(voices(tmp_path / "a.wav", [(LOW, 2.0)]))
    df = voxmagic.transcribe(path, vocab="Voxtral, pgvector, Alder Creek", **opts)
    assert mistral.requests[-1].body["context_bias"] == ["Voxtral", "pgvector", "Alder_Creek"]
    assert df["text"].iloc[0].endswith("(bias: Voxtral pgvector Alder_Creek)")
    with pytest.raises(ConfigError, match="--vocab has 101 terms; Mistral's context_bias takes at most 100"):
        voxmagic.transcribe(path, vocab=[f"term{i}" for i in range(101)], **opts)
    voxmagic.transcribe(path, vocab=["Voxtral", "pgvector"], base_url=server.base_url, api_key="k")
    assert server.requests[-1].prompt.endswith("Spell these words as written: Voxtral, pgvector.")


def test_the_magic_diarizes_and_a_speakers_rows_are_a_source(shell, mistral, tmp_path, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "local-key")
    turns = [(LOW, 3.0), (HIGH, 4.0), (LOW, 2.0)]
    path = voices(tmp_path / "meeting.flac", turns)
    shell.run_line_magic("config", f"VoxtralMagics.base_url = {mistral.base_url!r}")
    out, err = run(shell, f"%voxtral_transcribe {path} --provider mistral --diarize --segments --vtt subs -o seg")
    assert not err and shell.user_ns["seg"]["speaker"].tolist() == ["speaker_1", "speaker_2", "speaker_1"]
    vtt = (tmp_path / "subs" / "meeting.vtt").read_text()
    assert "<v Speaker 1>" in vtt and "<v Speaker 2>" in vtt
    shell.run_cell('two = seg[seg.speaker == "speaker_2"]')
    shell.run_line_magic("config", "VoxtralMagics.provider = 'mistral'")
    out, err = run(shell, "%%voxtral two\nWhat did speaker 2 promise?")
    assert not err, err
    (clip,) = mistral.requests[-1].audio
    assert clip.duration_s == pytest.approx(4.0, abs=0.4)  # speaker 2's turn only
    assert re.search(r"\d\.\d s audio", out)


def test_speakers_of_several_moments_keep_one_numbering(opts, mistral, tmp_path):
    """Sent one moment a request, every moment's voice was speaker_1: a file's moments go to the
    diarizer as one clip, and each segment stays within its moment (none runs into the audio
    between them)."""
    turns = [(LOW, 4.0), (HIGH, 4.0), (LOW, 4.0), (HIGH, 4.0)]
    path = voices(tmp_path / "talk.flac", turns)
    truth = voice_turns(turns)
    picked = [(a + 0.5, b - 0.5) for a, b, _ in truth[1:]]  # the last three turns: HIGH, LOW, HIGH
    import pandas as pd

    table = pd.DataFrame({"source": [str(path)] * 3, "start": [a for a, _ in picked], "end": [b for _, b in picked]})
    seg = voxmagic.transcribe(table, segments=True, diarize=True, **opts)
    assert mistral.request_count == 1 and seg["error"].isna().all()
    assert seg["speaker"].tolist() == ["speaker_1", "speaker_2", "speaker_1"]  # by voice, not by request
    for (a, b), start, end in zip(picked, seg["start"], seg["end"], strict=True):
        assert a - 0.35 <= start < end <= b + 0.05, (a, b, start, end)
