"""Subtitles: cues readable on screen, and SRT/WebVTT files that real parsers read back exactly."""
from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import pandas as pd
import pytest
import srt
import webvtt

import voxmagic
from voxmagic.subtitles import Cue, Transcript, split_text, transcripts
from voxmagic.testing.synth import speechlike, write_audio

SENTENCES = ("The committee met on Tuesday to review the budget for next year. "
             "After a long discussion, members agreed to cut travel costs by a fifth, "
             "to move the spring workshop online, and to hire two more engineers. "
             "The chair thanked everyone and closed the meeting at noon.")


def parsed_srt(text: str) -> list[tuple[int, int, list[str]]]:
    """(start ms, end ms, lines) per cue, as the `srt` package reads them."""
    ms = timedelta(milliseconds=1)
    return [(s.start // ms, s.end // ms, s.content.split("\n")) for s in srt.parse(text)]


def parsed_vtt(text: str) -> list[tuple[int, int, list[str]]]:
    """(start ms, end ms, unescaped lines) per cue, as webvtt-py reads them."""
    return [(c.start_time.in_milliseconds(), c.end_time.in_milliseconds(),
             [html.unescape(line) for line in c.raw_text.split("\n")])
            for c in webvtt.from_string(text)]


def joined(cues) -> str:
    return " ".join(" ".join(lines) for _, _, lines in cues)


def assert_timeline(cues) -> None:
    for start, end, _ in cues:
        assert end > start
    for (_, end, _), (start, _, _) in zip(cues, cues[1:]):
        assert start >= end  # in order, never overlapping


# --- times --------------------------------------------------------------------------------

def test_times_round_trip_to_the_millisecond():
    segments = [{"start_s": 0.0, "end_s": 1.2344, "text": "one"},
                {"start_s": 1.2346, "end_s": 2.9996, "text": "two"},
                {"start_s": 3.001, "end_s": 59.999, "text": "three"},
                {"start_s": 60.0, "end_s": 61.0005, "text": "four"}]
    t = Transcript.from_segments("a.wav", segments)
    expected = [(0, 1234, ["one"]), (1235, 3000, ["two"]), (3001, 59999, ["three"]), (60000, 61000, ["four"])]
    assert [(round(c.start_s * 1000), round(c.end_s * 1000), [c.text]) for c in t.cues] == expected
    assert parsed_srt(t.to_srt()) == expected
    assert parsed_vtt(t.to_vtt()) == expected
    srt_text = t.to_srt()
    assert srt_text.startswith("1\n00:00:00,000 --> 00:00:01,234\none\n\n2\n")
    assert t.to_vtt().startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.234\none\n\n")


def test_hour_long_offsets():
    t = Transcript.from_segments("a.wav", [{"start": 125.5, "end": 127.25, "text": "late"}], offset_s=3600)
    assert "01:02:05,500 --> 01:02:07,250" in t.to_srt()
    assert "01:02:05.500 --> 01:02:07.250" in t.to_vtt()
    assert parsed_srt(t.to_srt()) == parsed_vtt(t.to_vtt()) == [(3725500, 3727250, ["late"])]
    far = Transcript("a.wav", [Cue(100 * 3600 + 0.25, 100 * 3600 + 1, "far")])  # past 99 hours
    assert "100:00:00,250 --> 100:00:01,000" in far.to_srt()
    assert parsed_srt(far.to_srt()) == parsed_vtt(far.to_vtt()) == [(360000250, 360001000, ["far"])]


def test_overlapping_and_unordered_segments_become_a_valid_timeline():
    segments = [{"start_s": 5.0, "end_s": 9.0, "text": "third"},
                {"start_s": 0.0, "end_s": 3.0, "text": "first"},
                {"start_s": 2.5, "end_s": 4.0, "text": "second"},  # overlaps the first
                {"start_s": 5.0, "end_s": 5.0, "text": "zero length, same start"},
                {"start_s": 9.5, "end_s": 9.4, "text": "ends before it starts"}]
    t = Transcript.from_segments("a.wav", segments)
    for cues in (parsed_srt(t.to_srt()), parsed_vtt(t.to_vtt())):
        assert_timeline(cues)
        assert [" ".join(lines) for *_, lines in cues] == [
            "first", "second", "zero length, same start", "third", "ends before it starts"]
        assert cues[0][:2] == (0, 2500) and cues[1][:2] == (2500, 4000)  # trimmed where the next starts
        assert cues[2][:2] == (5000, 5001) and cues[3][:2] == (5001, 9000)
        assert cues[4][:2] == (9500, 9501)


# --- long text into cues --------------------------------------------------------------------

def test_a_long_chunk_becomes_readable_cues_tiling_its_span():
    text = SENTENCES + " Questions were taken afterwards by the secretary."
    assert 280 <= len(text) <= 320
    t = Transcript.from_rows("a.wav", [{"start_s": 10.0, "end_s": 40.0, "text": text}])
    cues = parsed_srt(t.to_srt())
    assert len(cues) >= 4
    assert cues[0][0] == 10_000 and cues[-1][1] == 40_000  # exactly the chunk's span
    for (_, end, _), (start, _, _) in zip(cues, cues[1:]):
        assert start == end  # no gap, no overlap
    assert joined(cues) == text
    for start, end, lines in cues:
        assert 1 <= len(lines) <= 2 and all(0 < len(line) <= 42 for line in lines)
        chars = len(" ".join(lines))
        assert chars <= 84
        assert (end - start) == pytest.approx(30_000 * chars / (len(text) - len(cues) + 1), abs=2)
    # cut at sentence ends, then at commas, never inside a word
    pieces = [" ".join(lines) for *_, lines in cues]
    assert pieces[0] == "The committee met on Tuesday to review the budget for next year."
    assert pieces[1].startswith("After a long discussion,") and pieces[1].endswith(",")
    assert all(p.endswith((".", ",")) for p in pieces)


def test_words_are_packed_evenly_when_there_is_no_punctuation():
    text = " ".join(["lorem ipsum dolor sit amet"] * 20)  # 539 characters
    pieces = split_text(text)
    assert " ".join(pieces) == text
    assert all(len(p) <= 84 for p in pieces) and len(pieces) == 7  # the fewest that fit
    assert max(map(len, pieces)) - min(map(len, pieces)) <= 12  # no 5-letter leftover cue


def test_short_cues_last_half_a_second_when_the_span_allows():
    long = "and this sentence is surely long enough to need a cue of its very own on the screen"
    text = f"Yes. {long.capitalize()}. {long.capitalize()}!"
    t = Transcript.from_segments("a.wav", [{"start_s": 0, "end_s": 6, "text": text}])
    assert [c.text for c in t.cues] == ["Yes.", f"{long.capitalize()}.", f"{long.capitalize()}!"]
    assert t.cues[0].end_s == pytest.approx(0.5)  # proportional share would be 0.17 s
    assert t.cues[-1].end_s == 6
    cramped = Transcript.from_segments("a.wav", [{"start_s": 0, "end_s": 0.9, "text": text}])
    assert [c.end_s - c.start_s for c in cramped.cues] == pytest.approx(
        [0.9 * len(c.text) / (len(text) - 2) for c in cramped.cues], abs=0.001)  # no room: proportional


def test_a_word_too_long_for_a_line_stays_whole():
    url = "https://example.com/" + "x" * 60
    t = Transcript.from_segments("a.wav", [{"start_s": 0, "end_s": 5, "text": f"See {url} now"}])
    assert joined(parsed_srt(t.to_srt())) == f"See {url} now"
    assert url in t.to_srt().splitlines()


# --- text that could break the formats ----------------------------------------------------

def test_special_characters_survive_as_text():
    text = "Use <b>bold</b> & <i>this</i>, then a --> b."
    t = Transcript.from_segments("a.wav", [{"start_s": 1, "end_s": 3, "text": text}])
    assert joined(parsed_vtt(t.to_vtt())) == text  # escaped, so exactly the words
    assert "&amp;" in t.to_vtt() and "<b>" not in t.to_vtt()
    assert joined(parsed_srt(t.to_srt())) == text.replace("-->", "→")  # SRT has no escapes
    assert t.text == text


def test_blank_lines_and_empty_texts_cannot_break_a_cue():
    segments = [{"start_s": 0, "end_s": 2, "text": "first paragraph\n\n\nsecond  paragraph\r\n"},
                {"start_s": 2, "end_s": 3, "text": "   \n "},
                {"start_s": 3, "end_s": 4, "text": ""},
                {"start_s": 4, "end_s": 5, "text": None},
                {"start_s": 5, "end_s": 6, "text": "42"},  # a number alone, like a cue index
                {"start_s": 6, "end_s": 7, "text": "00:00:01,000 --> 00:00:02,000"}]
    t = Transcript.from_segments("a.wav", segments)
    assert len(t.cues) == 3
    for cues in (parsed_srt(t.to_srt()), parsed_vtt(t.to_vtt())):
        assert [(s, e) for s, e, _ in cues] == [(0, 2000), (5000, 6000), (6000, 7000)]
        assert " ".join(cues[0][2]) == "first paragraph second paragraph"
        assert cues[1][2] == ["42"]
    assert parsed_vtt(t.to_vtt())[2][2] == ["00:00:01,000 --> 00:00:02,000"]
    assert "\n\n\n" not in t.to_srt()


# --- from rows and provider segments --------------------------------------------------------

def test_failed_and_empty_rows_are_skipped():
    rows = [{"start_s": 0.0, "end_s": 10.0, "text": "Hello there.", "error": float("nan")},
            {"start_s": 10.0, "end_s": 20.0, "text": None, "error": "server error 500"},
            {"start_s": 20.0, "end_s": 30.0, "text": "Half an answer", "error": "stream cut"},
            {"start_s": 30.0, "end_s": 40.0, "text": float("nan"), "error": None},
            {"start_s": 40.0, "end_s": 50.0, "text": "  ", "error": None},
            {"start_s": 50.0, "end_s": 60.0, "text": "Goodbye.", "error": pd.NA}]
    t = Transcript.from_rows("a.wav", rows)
    assert [(c.start_s, c.end_s, c.text) for c in t.cues] == [(0, 10, "Hello there."), (50, 60, "Goodbye.")]


def test_provider_segments_win_over_the_chunk_span_and_are_offset():
    rows = [{"start_s": 0.0, "end_s": 28.0, "text": "ignored, the segments are finer",
             "segments": [{"start": 0.5, "end": 2.0, "text": "Good morning."},
                          {"start": 2.4, "end": 27.5, "text": "Let us begin."}]},
            {"start_s": 28.0, "end_s": 56.0, "text": "Second chunk.",
             "segments": [{"start_s": 1.25, "end_s": 3.75, "text": "Second chunk."}]},
            {"start_s": 56.0, "end_s": 60.0, "text": "No segments here.", "segments": []}]
    t = Transcript.from_rows("a.wav", rows)
    assert [(c.start_s, c.end_s, c.text) for c in t.cues] == [
        (0.5, 2.0, "Good morning."), (2.4, 27.5, "Let us begin."), (29.25, 31.75, "Second chunk."),
        (56.0, 60.0, "No segments here.")]
    long = Transcript.from_segments("a.wav", [{"start": 1, "end": 31, "text": SENTENCES}], offset_s=100)
    assert len(long.cues) > 1 and long.cues[0].start_s == 101 and long.cues[-1].end_s == 131


def test_a_segment_without_times_is_an_error():
    with pytest.raises(ValueError, match="segment 1 has no start"):
        Transcript.from_segments("a.wav", [{"start": 0, "end": 1, "text": "a"}, {"text": "b"}])


def test_transcripts_groups_sources_in_first_appearance_order():
    df = pd.DataFrame([
        {"source": "b/two.mp3", "chunk": 1, "start_s": 30.0, "end_s": 60.0, "text": "Two, later.", "error": None},
        {"source": "a/one.mp3", "chunk": 0, "start_s": 0.0, "end_s": 25.0, "text": "One, first.", "error": None},
        {"source": "b/two.mp3", "chunk": 0, "start_s": 0.0, "end_s": 30.0, "text": "Two, first.", "error": None},
        {"source": "a/one.mp3", "chunk": 1, "start_s": 25.0, "end_s": 50.0, "text": None, "error": "boom"},
        {"source": "c/none.mp3", "chunk": 0, "start_s": 0.0, "end_s": 9.0, "text": None, "error": "not audio"},
        {"source": "a/one.mp3", "chunk": 2, "start_s": 50.0, "end_s": 70.0, "text": "One, last.", "error": None},
    ])
    got = transcripts(df)
    assert [t.source for t in got] == ["b/two.mp3", "a/one.mp3", "c/none.mp3"]
    assert [(c.start_s, c.text) for c in got[0].cues] == [(0, "Two, first."), (30, "Two, later.")]
    assert [(c.start_s, c.end_s, c.text) for c in got[1].cues] == [(0, 25, "One, first."), (50, 70, "One, last.")]
    assert got[2].cues == [] and got[2].to_srt() == "" and list(webvtt.from_string(got[2].to_vtt())) == []
    assert [t.text for t in transcripts(df.to_dict("records"))] == [t.text for t in got]
    frame = got[1].to_dataframe()
    assert list(frame.columns) == ["start_s", "end_s", "text"] and frame["end_s"].tolist() == [25, 70]


def test_a_table_with_one_row_per_source_uses_the_duration():
    (t,) = transcripts([{"source": "x.wav", "duration_s": 12.5, "text": "Whole file.", "error": None}])
    assert [(c.start_s, c.end_s) for c in t.cues] == [(0, 12.5)]


def test_the_text_form_is_a_short_srt_preview():
    t = Transcript.from_segments("talks/a.wav", [{"start_s": i, "end_s": i + 1, "text": f"cue {i}"}
                                                 for i in range(10)])
    shown = str(t)
    assert shown.startswith("talks/a.wav · 10 cues · 00:00:10,000")
    assert "00:00:05,000 --> 00:00:06,000\ncue 5" in shown and "cue 6" not in shown
    assert shown.endswith("… 4 more cues")
    assert repr(t) == "Transcript('talks/a.wav', 10 cues, 10.0 s)"
    assert len(t) == 10 and t.text.startswith("cue 0 cue 1")


# --- files ----------------------------------------------------------------------------------

def test_save_writes_parseable_files_and_never_overwrites_another_source(tmp_path):
    out = tmp_path / "subs" / "nested"
    first = Transcript.from_segments(str(tmp_path / "a" / "talk.flac"),
                                     [{"start_s": 0, "end_s": 70, "text": SENTENCES}])
    other = Transcript.from_segments(str(tmp_path / "b" / "talk.flac"),
                                     [{"start_s": 1, "end_s": 2, "text": "Another talk."}])
    paths = first.save(out, formats=("srt", "vtt"))
    assert [p.name for p in paths] == ["talk.srt", "talk.vtt"]
    assert joined(parsed_srt(paths[0].read_text(encoding="utf-8"))) == SENTENCES
    assert joined(parsed_vtt(paths[1].read_text(encoding="utf-8"))) == SENTENCES
    assert [p.name for p in other.save(out, ("srt", "vtt"))] == ["talk-2.srt", "talk-2.vtt"]
    assert joined(parsed_srt((out / "talk.srt").read_text(encoding="utf-8"))) == SENTENCES  # intact
    assert joined(parsed_vtt((out / "talk-2.vtt").read_text(encoding="utf-8"))) == "Another talk."
    # a rerun rewrites its own files, whatever the path's spelling
    again = Transcript(str(tmp_path / "a" / ".." / "a" / "talk.flac"), first.cues[:1])
    assert [p.name for p in again.save(out, "vtt")] == ["talk.vtt"]
    assert len(parsed_vtt((out / "talk.vtt").read_text(encoding="utf-8"))) == 1
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "talk-2.srt", "talk-2.vtt", "talk.srt", "talk.vtt"]
    # files voxmagic did not write are left alone
    (out / "mine.srt").write_text("keep me", encoding="utf-8")
    (path,) = Transcript("elsewhere/mine.mp3", first.cues).save(out)
    assert path.name == "mine-2.srt" and (out / "mine.srt").read_text(encoding="utf-8") == "keep me"
    index = json.loads((out / ".voxmagic-subtitles.json").read_text(encoding="utf-8"))
    assert index["talk-2.srt"] == str((tmp_path / "b" / "talk.flac").resolve())


def test_file_names_for_urls_and_odd_sources(tmp_path):
    cues = [Cue(0, 1, "hi")]
    names = [Transcript(source, cues).save(tmp_path)[0].name for source in (
        "https://example.com/media/Episode%2012.mp3?token=abc", "<1,234 bytes>", "clips/ä b:c.wav",
        "https://example.com/")]
    assert names == ["Episode_2012.srt", "1_234_bytes.srt", "ä_b_c.srt", "example.com.srt"]
    with pytest.raises(ValueError, match="formats"):
        Transcript("a.wav", cues).save(tmp_path, formats=("ass",))


# --- end to end -----------------------------------------------------------------------------

def test_subtitles_from_a_real_transcription(server, tmp_path):
    path = write_audio(tmp_path / "talk.flac", speechlike(70, 16_000, seed=5), 16_000)
    df = voxmagic.transcribe([str(path)], segments=True, max_chunk_s=30, base_url=server.base_url,
                             api_key="k")
    assert len(df) >= 3 and df["error"].isna().all()
    (t,) = transcripts(df)
    assert t.source == str(path)
    srt_path, vtt_path = t.save(tmp_path / "subs", formats=("srt", "vtt"))
    chunk_text = " ".join(df["text"])
    for cues in (parsed_srt(srt_path.read_text(encoding="utf-8")),
                 parsed_vtt(vtt_path.read_text(encoding="utf-8"))):
        assert len(cues) > len(df)  # each chunk's answer is longer than one cue
        assert_timeline(cues)
        assert cues[0][0] == round(df["start"].iloc[0] * 1000)
        assert cues[-1][1] == round(df["end"].iloc[-1] * 1000)
        assert re.sub(r"\s+", " ", joined(cues)) == re.sub(r"\s+", " ", chunk_text).strip()
        for *_, lines in cues:
            assert len(lines) <= 2 and all(len(line) <= 42 for line in lines)
        # every chunk boundary is also a cue boundary: a cue never straddles two chunks
        bounds = {s for s, _, _ in cues} | {e for _, e, _ in cues}
        assert {round(x * 1000) for x in df["start"]} <= bounds
