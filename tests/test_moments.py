"""A moment is a source: --at / start= / end= send only that slice (and bill only for it), and
segment rows — one, or a filtered table of them — send only their moments."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import voxmagic
from voxmagic.errors import ConfigError
from voxmagic.subtitles import transcripts
from voxmagic.moments import GAP_S, check_span, describe, mmss, parse_span, parse_time
from voxmagic.testing.synth import tone_file, write_audio

from conftest import run


@pytest.mark.parametrize("text, seconds", [("90", 90.0), ("90.5", 90.5), ("12:30", 750.0), ("1:02:03", 3723.0),
                                           ("0:07.25", 7.25)])
def test_times_as_people_write_them(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text, span", [("12:30-14:00", (750.0, 840.0)), ("12:30-", (750.0, None)),
                                        ("-1:00", (0.0, 60.0)), ("1:02:03-1:05:00", (3723.0, 3900.0))])
def test_spans(text, span):
    assert parse_span(text) == span


@pytest.mark.parametrize("text, message", [("14:00-12:30", "empty or reversed"), ("1:75-2:00", "is not a time"),
                                           ("1200", "write a moment as START-END"), ("x-2", "'x' is not a time"),
                                           ("nan-", "'nan' is not a time: write seconds")])
def test_bad_moments_are_one_line(text, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_span(text)
    assert "\n" not in str(err.value)


def test_a_negative_time_in_python_is_named_as_given():
    """start=-3 read "the moment -1:57–end is empty or reversed" (m:ss of a negative number)."""
    with pytest.raises(ConfigError, match=r"^start=-3 is before the audio begins: times count seconds from its start$"):
        check_span(-3, None)
    with pytest.raises(ConfigError, match=r"^end=-0.5 is before the audio begins"):
        check_span(None, -0.5)


def test_labels():
    assert mmss(750) == "12:30" and mmss(3723) == "1:02:03" and mmss(None) == "end"
    # a moment's label keeps a fraction as typed (0:07.25 read 0:07.2); tenths elsewhere (7.96 read 0:07.0)
    assert describe(((parse_time("0:07.25"), 7.96),)) == "[0:07.25–0:07.96]"
    assert [mmss(t) for t in (7.25, 7.96, 59.97, 0.04)] == ["0:07.2", "0:08", "1:00", "0:00"]
    assert describe(((750.0, 840.0),)) == "[12:30–14:00]" and describe(((0, 1), (2, 3))) == "[2 moments]"


@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".flac"])
def test_a_moment_decodes_exactly_that_slice(tmp_path, suffix):
    path = tone_file(tmp_path / f"ten{suffix}", 10.0)
    whole = voxmagic.as_source(str(path)).decode().samples
    part = voxmagic.as_source(str(path)).moments((2.5, 6.0)).decode().samples
    assert abs(part.size - 3.5 * 16_000) <= 160  # within 10 ms
    offset = round(2.5 * 16_000)
    lag = np.argmax(np.correlate(part[:4000].astype(float), whole[offset - 200 : offset + 4200].astype(float), "valid"))
    # starts where 2.5 s starts, to the sample: an MP3's frames are stamped after the encoder's
    # delay (its stream's start_time), which a decode from the start does not count
    assert abs(lag - 200) <= 2


@pytest.mark.parametrize("suffix", [".mp3", ".m4a", ".ogg", ".flac", ".mkv"])
def test_a_moment_hears_what_the_whole_file_has_at_that_time(tmp_path, suffix):
    """A click at 10 s is at 10 s in a moment that starts 10 ms or 1 s before it. An MP3's frames
    are stamped after its encoder's delay (a moment was 23–69 ms late), a lossy frame leans on
    the frames before it (a moment starting in the click's frame heard silence), and a video file
    whose audio was muxed ahead of its video lost the audio between a seek's video keyframe and
    the audio's place in the file (an MKV moment sent 1.5 s of other audio, or none)."""
    rate = 48_000
    x = np.zeros(rate * 20, np.float32)
    for t in (5.0, 10.0, 15.0):
        x[int(t * rate) : int(t * rate) + 200] = 0.9
    path = write_audio(tmp_path / f"clicks{suffix}", x[None], rate)

    def click_after(start: float, samples: np.ndarray) -> float:
        return start + np.flatnonzero(np.abs(samples) > 6000)[0] / 16_000

    whole = voxmagic.as_source(str(path)).decode().samples
    assert click_after(9.0, whole[9 * 16_000 :]) == pytest.approx(10.0, abs=0.001)
    for start in (9.0, 9.99):
        part = voxmagic.as_source(str(path)).moments((start, 11.0)).decode().samples
        assert click_after(start, part) == pytest.approx(10.0, abs=0.001), start


def test_start_and_end_send_and_bill_only_the_moment(server, tmp_path):
    path = str(tone_file(tmp_path / "long.wav", 20.0))
    opts = dict(base_url=server.base_url, api_key="k")
    r = voxmagic.ask(path, "What is said here?", start="0:05", end=12, **opts)
    heard = server.requests[-1].audio[0]
    assert heard.duration_s == pytest.approx(7.0, abs=0.05) and r.audio_seconds == pytest.approx(7.0, abs=0.01)
    assert "7.0 s audio" in r.summary and r.sources == [f"{path} [0:05–0:12]"]
    df = voxmagic.transcribe(path, start=15, **opts)
    assert df["duration_s"].iloc[0] == pytest.approx(5.0, abs=0.02) and df["source"].iloc[0].endswith("[0:15–end]")
    assert voxmagic.history()["sources"].iloc[-1] == f'["{path} [0:15–end]"]'  # the dash as written, not \u2013


def test_the_at_option(shell, server, tmp_path):
    path = tone_file(tmp_path / "talk.wav", 30.0)
    out, err = run(shell, f"%%voxtral {path} --at 0:10-0:25\nWhat happens?")
    assert not err and server.requests[-1].audio[0].duration_s == pytest.approx(15.0, abs=0.05)
    assert "15.0 s audio" in out
    _, err = run(shell, f"%voxtral_transcribe {path} --at 0:25-0:10")
    assert err.startswith("UsageError: the moment 0:25–0:10 is empty or reversed") and server.request_count == 1
    # beside a table of moments (which names its own), --at silently replaced them: refused
    shell.user_ns["part"] = pd.DataFrame({"source": [str(path)] * 2, "start": [1.0, 5.0], "end": [2.0, 6.0]})
    for line in ("%voxtral_transcribe part --at 0-16", "%%voxtral part --at 0-16\nWhat?"):
        _, err = run(shell, line)
        assert err.startswith("UsageError: --at (start=/end=) picks one moment of each file, and a table"), err
    assert server.request_count == 1


def test_segment_rows_are_sources(shell, server, tmp_path):
    """'What did speaker 2 promise?' sends only speaker 2's moments: one clip per file."""
    a, b = str(tone_file(tmp_path / "a.wav", 20.0)), str(tone_file(tmp_path / "b.wav", 20.0))
    seg = pd.DataFrame({"source": [a, a, b, a], "start": [0.0, 5.0, 2.0, 12.0], "end": [3.0, 8.0, 6.0, 14.0],
                        "speaker": ["speaker_1", "speaker_2", "speaker_2", "speaker_2"], "text": list("wxyz")})
    opts = dict(base_url=server.base_url, api_key="k")
    voxmagic.ask(seg[seg.speaker == "speaker_2"], "What did speaker 2 promise?", **opts)
    heard = [clip.duration_s for clip in server.requests[-1].audio]
    assert heard == pytest.approx([3.0 + 2.0 + GAP_S, 4.0], abs=0.05)  # a: 5-8 and 12-14; b: 2-6
    voxmagic.ask(seg.iloc[0], "And this one?", **opts)
    assert [c.duration_s for c in server.requests[-1].audio] == pytest.approx([3.0], abs=0.05)
    shell.user_ns["first"] = seg[seg.speaker == "speaker_1"]
    out, err = run(shell, "%%voxtral first\nWho is this?")
    assert not err and [c.duration_s for c in server.requests[-1].audio] == pytest.approx([3.0], abs=0.05)


@pytest.mark.parametrize("dialect", ["mistral", "openrouter"])
def test_a_transcript_of_several_moments_keeps_every_row_inside_its_moment(tmp_path, dialect):
    """A table of moments sent with segments=True came back timed on the joined clip (the second
    moment, 20-28.3 s, read 10-18.6 s); then, joined, a segment ending at a moment's end ran to
    the next moment (a 16-minute row), and a chat transcript's one row spanned every moment, its
    subtitle cues timed over the gaps. Each moment of a transcript now goes on its own."""
    from voxmagic.demo import meeting_path
    from voxmagic.testing.server import LocalServer

    meeting = str(meeting_path())  # 28.3 s; the Mistral-like server answers in 10-s segments
    moments = [(0.0, 10.0), (20.0, 28.0), (12.5, 14.0)]
    part = pd.DataFrame({"source": [meeting] * 3, "start": [a for a, _ in moments], "end": [b for _, b in moments]})
    with LocalServer(dialect=dialect) as srv:
        df = voxmagic.transcribe(part, segments=True, provider="openrouter" if dialect == "openrouter" else "mistral",
                                 base_url=srv.base_url, api_key="k", cache=False)
        heard = [c.duration_s for r in srv.requests for c in r.audio]
    assert heard == pytest.approx([b - a for a, b in sorted(moments)], abs=0.05)  # one request a moment, in order
    rows = list(zip(df["start"], df["end"], strict=True))
    assert all(any(a - 0.01 <= s < e <= b + 0.01 for a, b in moments) for s, e in rows), rows
    assert [min(s for s, _ in rows), max(e for _, e in rows)] == pytest.approx([0.0, 28.0], abs=0.1)
    assert (df["source"] == meeting).all() and df["error"].isna().all()
    (subtitles,) = transcripts(df)  # their cues too: none in audio that was not sent
    assert subtitles.cues and all(any(a - 0.01 <= c.start_s < c.end_s <= b + 0.01 for a, b in moments)
                                  for c in subtitles.cues)


def test_a_table_of_moments_in_any_order_is_sent_in_time_order_once(tmp_path):
    """A table not in time order read "-11.0 s audio" and came back empty after two paid
    requests; overlapping moments lost one moment's segment; --at beside a table replaced its
    moments without a word."""
    from voxmagic.demo import meeting_path
    from voxmagic.testing.server import LocalServer

    meeting = str(meeting_path())
    table = pd.DataFrame({"source": [meeting] * 4, "start": [15.0, 2.0, 5.0, 7.0], "end": [18.0, 4.0, 8.0, 10.0]})
    (source,) = voxmagic.audio.as_list(table)
    assert source.spans == ((2.0, 4.0), (5.0, 10.0), (15.0, 18.0))  # sorted; 5-8 and 7-10 are one moment
    with LocalServer(dialect="mistral") as srv:
        df = voxmagic.transcribe(table, segments=True, provider="mistral", base_url=srv.base_url, api_key="k",
                                 cache=False)
        whole = voxmagic.transcribe(table, provider="mistral", base_url=srv.base_url, api_key="k", cache=False)
        assert [c.duration_s for r in srv.requests[:3] for c in r.audio] == pytest.approx([2.0, 5.0, 3.0], abs=0.05)
        with pytest.raises(ConfigError, match=r"^--at \(start=/end=\) picks one moment of each file, and a table"):
            voxmagic.transcribe(table, start=0, end=16, base_url=srv.base_url, api_key="k")
    assert [*df["start"], *df["end"]] == pytest.approx([2.0, 5.0, 15.0, 4.0, 10.0, 18.0], abs=0.05)
    assert whole["duration_s"].iloc[0] == pytest.approx(10.0, abs=0.05) and whole["error"].isna().all()
    # a moment past the end: the error says which (the row read "holds no audio samples" alone)
    late = pd.DataFrame({"source": [meeting] * 2, "start": [5.0, 40.0], "end": [8.0, 45.0]})
    with LocalServer() as srv:
        (row,) = voxmagic.transcribe(late, base_url=srv.base_url, api_key="k", cache=False).to_dict("records")
    assert row["text"].startswith("Heard 1 clips")
    assert re.search(r": \[0:40–0:45\] holds no audio samples \(0 s\): the audio ends at 0:28\.\d$", row["error"])


def test_a_moment_past_the_end_says_where_the_audio_ends():
    from voxmagic.audio import as_source
    from voxmagic.errors import AudioError

    welcome = str(Path(voxmagic.__file__).parent / "samples" / "welcome.mp3")  # 13.2 s
    with pytest.raises(AudioError, match=r"welcome.mp3 \[1:00–2:00\]: holds no audio samples \(0 s\): the audio ends at 0:13\.2$"):
        list(as_source(welcome).moments((60.0, 120.0)).blocks())
