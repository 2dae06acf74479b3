"""The transcript player without a browser: its traits from a real segments table, the audio sent
once per source (as ipywidgets puts it on the wire, and in a notebook saved by nbclient), m:ss
times, the text and HTML tables shown where no widget renders (terminal IPython, nbclient), and
the ES module, found through the package and accepted by node. The browser half is
tests/browser/test_player.py."""
from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from ipywidgets.widgets.widget import _remove_buffers

import voxmagic
from voxmagic.codec import PCM, EncodedAudio, container_blocks, encode
from voxmagic import playback as player_module
from voxmagic.notebook.player import TranscriptPlayer
from voxmagic.playback import clock
from voxmagic.testing.synth import speechlike, tone_file, write_audio

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
ROW_KEYS = {"source", "start", "end", "speaker", "text"}
CLOCKS = {0: "0:00", 0.99: "0:01", 59.999: "1:00", 60: "1:00", 61.5: "1:01.5", 600: "10:00", 3599.9: "59:59.9",
          3600: "1:00:00", 3725.2: "1:02:05.2", 36_000: "10:00:00", -1: "0:00", 4.44: "0:04.4", 4.45: "0:04.5",
          4.8: "0:04.8"}  # a 0.4-s row read "0:04–0:04": tenths


def wire(widget):
    """The state as ipywidgets sends it: JSON, and the binary buffers with where each goes."""
    state, paths, buffers = _remove_buffers(widget.get_state())
    return json.dumps(state), paths, [bytes(b) for b in buffers]


def seconds_of(ogg: bytes) -> float:
    return sum(b.size for b in container_blocks(io.BytesIO(ogg), "preview")) / 16_000


def words(text: str) -> str:
    return " ".join(text.split())


def transcript(n: int, sources=("talk.mp3",), seconds: float = 3.0) -> pd.DataFrame:
    """``n`` segments of ``seconds`` per source, two speakers, texts long enough to wrap."""
    rows = [{"source": src, "start": i * seconds, "end": (i + 1) * seconds, "speaker": "AB"[i % 2],
             "text": f"segment {i} of {src}: " + " ".join(f"w{i}x{k} <&>" for k in range(25))}
            for src in sources for i in range(n)]
    return pd.DataFrame(rows)


@pytest.fixture
def talk(tmp_path) -> Path:
    return write_audio(tmp_path / "talk.mp3", speechlike(12, 16_000, seed=1), 16_000)


def test_traits_from_a_real_segments_table(server, tmp_path):
    lecture = str(write_audio(tmp_path / "lecture.flac", speechlike(70, 16_000, seed=5), 16_000))
    memo = str(tone_file(tmp_path / "memo.mp3", 4.0))
    df = voxmagic.transcribe([lecture, memo], segments=True, max_chunk_s=30, base_url=server.base_url, api_key="k")
    assert len(df) >= 4 and df["error"].isna().all()

    player = TranscriptPlayer.from_segments(df, {lecture: Path(lecture).read_bytes(), memo: Path(memo).read_bytes()})
    assert [s["label"] for s in player.sources] == [lecture, memo]
    start, end = ("start", "end") if "start" in df else ("start_s", "end_s")  # the names before segments had speakers
    assert player.rows == [{"source": [lecture, memo].index(r["source"]), "start": r[start], "end": r[end],
                            "speaker": r.get("speaker") or "", "text": r["text"]} for r in df.to_dict("records")]
    assert player.playing == -1
    for source, seconds in zip(player.sources, (70.0, 4.0), strict=True):
        assert (source["mime"], source["note"]) == ("audio/ogg", "")
        assert source["audio"].startswith(b"OggS")  # the 12 kbit/s Opus preview, not the upload bytes
        assert len(source["audio"]) < 2_200 * seconds + 2_000
        assert seconds_of(source["audio"]) == pytest.approx(seconds, abs=0.05)  # the whole source
    assert repr(player) == f"TranscriptPlayer({len(df)} rows, 2 sources)"


def test_the_audio_is_sent_once_per_source_not_per_row(tmp_path):
    a, b = tone_file(tmp_path / "a.mp3", 12.0), tone_file(tmp_path / "b.wav", 6.0, channels=1)
    df = transcript(4, sources=("a.mp3", "b.wav"), seconds=1.5)
    player = TranscriptPlayer.from_segments(df, {"a.mp3": a.read_bytes(), "b.wav": b.read_bytes()})
    state, paths, buffers = wire(player)
    assert len(player.rows) == 8 and all(set(r) == ROW_KEYS for r in player.rows)
    assert paths == [["sources", 0, "audio"], ["sources", 1, "audio"]]  # two binary buffers, one per source
    assert buffers == [s["audio"] for s in player.sources]
    assert "data:audio" not in state and "OggS" not in state  # no audio inside the JSON
    data, _ = player._repr_mimebundle_()
    assert "<audio" not in data["text/html"] and "data:" not in data["text/html"]  # the static table has none


def test_times_are_m_ss():
    assert {s: clock(s) for s in CLOCKS} == CLOCKS


def test_the_text_fallback_holds_every_row_whole_with_m_ss_times(talk):
    df = transcript(80, seconds=50.0)  # more rows than pandas shows (display.max_rows 60)
    player = TranscriptPlayer.from_segments(df, {"talk.mp3": talk.read_bytes()})
    data, _ = player._repr_mimebundle_()
    plain, markup = data["text/plain"], data["text/html"]
    assert WIDGET_MIME in data and "TranscriptPlayer(" not in plain
    assert plain.splitlines()[0].split() == ["time", "speaker", "text"]
    flat = words(plain)
    for i, row in df.iterrows():
        span = f"{clock(row.start)}–{clock(row.end)}"
        assert f"{i} {span} {row.speaker} {words(row.text)}" in flat  # wrapped, never cut
        assert html.escape(row.text) in markup and f">{span}<" in markup
    assert "59:10–1:00:00" in plain and "1:00:00–1:00:50" in plain  # h:mm:ss past an hour
    assert "not shown" not in plain + markup and "[80 rows × 3 columns]" in plain
    assert max(map(len, plain.splitlines())) <= 80


def test_sources_without_playable_audio_are_shown_with_a_note(talk, monkeypatch):
    df = transcript(2, sources=("talk.mp3", "gone.mp3", "junk.mp3"))
    player = TranscriptPlayer.from_segments(df, {"talk.mp3": talk.read_bytes(), "junk.mp3": b"not audio" * 100})
    assert [s["audio"] is not None for s in player.sources] == [True, False, False]
    assert player.sources[1]["note"] == "no audio given"
    assert player.sources[2]["note"].startswith("audio not playable: ")
    plain = player._repr_mimebundle_()[0]["text/plain"]
    assert "gone.mp3: no audio given" in plain and plain.splitlines()[0].split() == ["time", "source", "speaker",
                                                                                       "text"]
    monkeypatch.setattr(player_module, "MAX_AUDIO_BYTES", 1_000)
    (big,) = TranscriptPlayer.from_segments(transcript(1), {"talk.mp3": talk.read_bytes()}).sources
    assert big["audio"] is None and re.fullmatch(r"audio not embedded: 0\.0 MB, over 0 MB", big["note"])


def test_a_moment_embeds_only_its_stretch_placed_on_the_files_timeline(talk):
    """A moment of a recording plays without the recording: only [start, end) is decoded (by
    seeking) and embedded, and the front end is told where it begins."""
    df = transcript(2, seconds=2.0).assign(start=[6.0, 8.0], end=[8.0, 10.0], source="talk.mp3 [0:06–0:10]")
    (source,) = TranscriptPlayer.from_segments(df, {"talk.mp3 [0:06–0:10]": player_module.Stretch(str(talk), 6.0,
                                                                                                  10.0)}).sources
    assert source["start"] == 6.0 and source["mime"] == "audio/ogg" and source["note"] == ""
    assert seconds_of(source["audio"]) == pytest.approx(4.0, abs=0.05)  # not the file's 12 s
    heard = np.concatenate(list(container_blocks(io.BytesIO(source["audio"]), "preview"))).astype(float)
    whole = voxmagic.as_source(str(talk)).decode().samples.astype(float)
    lag = np.argmax(np.correlate(whole[6 * 16_000 : 6 * 16_000 + 9600], heard[1600:9600], "valid"))
    assert abs(lag - 1600) <= 16  # the preview at 0.1 s is the file at 6.1 s (within 1 ms; Opus shifts a little)
    (whole_source,) = TranscriptPlayer.from_segments(transcript(1), {"talk.mp3": talk.read_bytes()}).sources
    assert whole_source["start"] == 0.0 and seconds_of(whole_source["audio"]) == pytest.approx(12.0, abs=0.05)
    (past,) = TranscriptPlayer.from_segments(df, {"talk.mp3 [0:06–0:10]": player_module.Stretch(str(talk), 60.0,
                                                                                                61.0)}).sources
    assert past["audio"] is None and past["note"] == "audio not embedded: has no audio at 1:00"


def test_a_recording_too_long_to_embed_is_known_before_encoding_it(talk, monkeypatch):
    """A 2-hour recording's preview (~10 MB) was encoded (~70 s) only to be found too big."""
    monkeypatch.setattr(player_module, "MAX_PREVIEW_S", 10.0)
    monkeypatch.setattr(player_module, "_preview_of", lambda *a: pytest.fail("a preview was encoded"))
    (source,) = TranscriptPlayer.from_segments(transcript(1), {"talk.mp3": talk.read_bytes()}).sources
    assert source["audio"] is None
    assert source["note"] == "audio not embedded: it is 0:12, more than the 0:10 a player holds (a moment of it plays: --at)"
    (moment,) = TranscriptPlayer.from_segments(transcript(1), {"talk.mp3": player_module.Stretch(str(talk), 0, 11)}
                                               ).sources
    assert moment["audio"] is None and moment["note"] == ("audio not embedded: its rows span 0:11, more than the 0:10 a "
                                                          "player holds (play fewer moments at a time)")


def test_ready_bytes_are_embedded_as_given(talk):
    opus = encode(PCM((np.sin(np.arange(16_000) / 5) * 8_000).astype(np.int16)), "ogg", bit_rate=12_000).data
    clip = EncodedAudio(talk.read_bytes(), "mp3", 12.0, "talk.mp3")
    player = TranscriptPlayer.from_segments(transcript(2, sources=("a", "b")), {"a": opus, "b": clip}, compress=False)
    assert [(s["mime"], s["audio"]) for s in player.sources] == [("audio/ogg", opus), ("audio/mpeg", clip.data)]


def test_the_es_module_is_found_through_the_package_and_node_accepts_it(tmp_path):
    esm, css = files("voxmagic.notebook") / "player.js", files("voxmagic.notebook") / "player.css"
    assert esm.is_file() and css.is_file()
    assert TranscriptPlayer._esm == esm.read_text(encoding="utf-8")
    assert ".voxmagic-player" in TranscriptPlayer._css == css.read_text(encoding="utf-8")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the ES module was not checked")
    module = tmp_path / "player.mjs"  # .mjs: node reads it as an ES module whatever its version
    module.write_text(esm.read_text(encoding="utf-8"), encoding="utf-8")
    check = subprocess.run([node, "--check", str(module)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    script = (f"import m, {{ clock }} from {json.dumps(module.as_uri())};"
              f"console.log(JSON.stringify([typeof m.render, {json.dumps(list(CLOCKS))}.map(clock)]))")
    run = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == ["function", list(CLOCKS.values())]  # the same m:ss as Python's


NOTEBOOK = """import pandas as pd
from voxmagic.notebook.player import TranscriptPlayer
segments = pd.read_json("segments.json")
TranscriptPlayer.from_segments(segments, {"talk.mp3": open("talk.mp3", "rb").read()})"""


def test_a_notebook_saved_by_nbclient_keeps_the_table_and_the_audio_once(talk, tmp_path):
    from nbclient import NotebookClient

    df = transcript(4)
    df.to_json(tmp_path / "segments.json")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / "saved.ipynb")
    (out,) = nb.cells[0].outputs
    data = out["data"]
    assert WIDGET_MIME in data
    for row in df.itertuples():
        assert f"{clock(row.start)}–{clock(row.end)}" in data["text/plain"]
        assert words(row.text) in words(data["text/plain"]) and html.escape(row.text) in data["text/html"]

    states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()
    (buffer,) = [b for state in states for b in state.get("buffers", [])]  # the one audio of the notebook
    assert buffer["path"] == ["sources", 0, "audio"]
    audio = base64.b64decode(buffer["data"])
    assert audio.startswith(b"OggS") and seconds_of(audio) == pytest.approx(12.0, abs=0.05)
    saved = (tmp_path / "saved.ipynb").read_text(encoding="utf-8")
    assert saved.count(buffer["data"][:4000]) == 1  # once in the file: not in the outputs, not per row

    from nbconvert import HTMLExporter

    del nb.metadata["widgets"]  # a viewer without the widget state (nbviewer, GitHub, --to html without it)
    page, _ = HTMLExporter().from_notebook_node(nb)
    assert all(html.escape(row.text) in page for row in df.itertuples())


def test_terminal_ipython_prints_the_table(talk):
    df = transcript(3)
    df.to_json(talk.parent / "segments.json")
    code = NOTEBOOK.replace("TranscriptPlayer.from_segments", "player = TranscriptPlayer.from_segments") + "\nplayer"
    out = subprocess.run([sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", "--quick", "-c", code],
                         cwd=talk.parent, capture_output=True, encoding="utf-8", timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^Out\[\d+\]: \n +time +speaker +text\n", out.stdout, re.M), out.stdout
    for row in df.itertuples():
        assert f"{row.Index}  {clock(row.start)}–{clock(row.end)}  {row.speaker}" in out.stdout
        assert words(row.text) in words(out.stdout)
    assert "model_id" not in out.stdout and "TranscriptPlayer(" not in out.stdout


def test_the_magic_shows_diarized_segments_as_a_player_in_a_kernel(tmp_path):
    """``%voxtral_transcribe --segments`` in a real kernel: the shown result is the player, its
    rows are the table bound to ``-o`` (speakers too), and the recording is embedded once."""
    from nbclient import NotebookClient

    from voxmagic.demo import meeting_path

    shutil.copy(meeting_path(), tmp_path / "meeting.mp3")
    cells = ["from voxmagic.testing import use_local_server\n"
             "server = use_local_server(provider='mistral', force=True, latency=0, token_rate=0)\n"
             "%load_ext voxmagic",
             "%voxtral_transcribe meeting.mp3 --diarize --segments -o seg",
             "print(seg[['start', 'end', 'speaker']].to_json(orient='values'))"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = [o for o in nb.cells[1].outputs if WIDGET_MIME in o.get("data", {})]
    (view,) = [o for o in shown if "meeting.mp3" in o["data"]["text/plain"]]
    rows = json.loads(nb.cells[2].outputs[0]["text"])
    assert len(rows) >= 5 and {r[2] for r in rows} == {"speaker_1", "speaker_2"}
    states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    player = states[view["data"][WIDGET_MIME]["model_id"]]["state"]
    assert [[r["start"], r["end"], r["speaker"]] for r in player["rows"]] == rows
    (source,) = player["sources"]
    assert source["label"].endswith("meeting.mp3") and source["mime"] == "audio/ogg" and not source["note"]


def test_a_failed_chunk_shows_why_in_its_row():
    """It was an empty row; the error was only in the progress line."""
    df = pd.DataFrame({"source": ["a.mp3", "a.mp3"], "start": [0.0, 30.0], "end": [30.0, 45.0],
                       "text": ["first part", None], "error": [None, "HTTP 400: bad audio"]})
    player = TranscriptPlayer.from_segments(df, {})
    assert [r["text"] for r in player.rows] == ["first part", "[failed: HTTP 400: bad audio]"]
