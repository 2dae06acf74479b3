"""What a user types → Python objects: audio items, prompt placeholders, functions as tools."""
from __future__ import annotations

import enum
from typing import Literal, Optional

import numpy as np
import pandas as pd
import pytest
from IPython.display import Audio

from voxmagic.audio import AudioSource
from voxmagic.errors import ConfigError
from voxmagic.notebook.resolve import audio_items, lookup, render_prompt
from voxmagic.results import ToolCall
from voxmagic.testing.synth import tone, tone_file
from voxmagic.tools import call_tools, tool_from_function


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "talks").mkdir()
    for name in ["b.mp3", "a.wav", "c.flac"]:
        tone_file(tmp_path / "talks" / name, 0.5)
    (tmp_path / "talks" / "notes.txt").write_text("not audio")
    return tmp_path


def test_folder_lists_audio_files_sorted_and_skips_others(folder):
    assert audio_items(["talks"], {}) == ["talks/a.wav", "talks/b.mp3", "talks/c.flac"]


def test_glob_url_and_plain_path_keep_their_order(folder):
    items = audio_items(["talks/*.mp3", "https://example.org/x.mp3", "talks/a.wav"], {})
    assert items == ["talks/b.mp3", "https://example.org/x.mp3", "talks/a.wav"]


def test_variables_of_every_kind(folder):
    arr = tone(0.5, 8000, 1)[0]
    ns = {"path": "talks/a.wav", "paths": pd.Series(["talks/a.wav", "talks/b.mp3"]), "raw": b"RIFF....",
          "player": Audio(arr, rate=8000), "arr": arr, "pair": (arr, 8000), "cfg": {"clips": ["talks/c.flac"]}}
    assert audio_items(["path"], ns) == ["talks/a.wav"]
    assert audio_items(["paths"], ns) == ["talks/a.wav", "talks/b.mp3"]
    assert audio_items(["cfg[clips]"], ns) == ["talks/c.flac"]
    (raw,) = audio_items(["raw"], ns)
    assert isinstance(raw, AudioSource) and raw.label == "raw" and raw.data == b"RIFF...."
    (player,) = audio_items(["player"], ns)
    assert player.label == "player" and abs(player.decode().duration_s - 0.5) < 0.01
    (a,) = audio_items(["arr"], ns, sample_rate=8000)
    assert a.label == "arr" and a.sample_rate == 8000
    (p,) = audio_items(["pair"], ns)
    assert p.sample_rate == 8000


@pytest.mark.parametrize("items, ns, message", [
    (["arr"], {"arr": np.zeros(10)}, "arr is an array: give its sample rate with --sr"),
    (["n"], {"n": 42}, "n is a int, not audio"),
    (["ghost"], {}, "ghost is neither a file nor a variable in the notebook"),
    (["ghost.mp3"], {}, "no such file: ghost.mp3"),
    (["talks/*.ogg"], {}, "no files match talks/\\*.ogg"),
    (["empty"], {}, "the folder empty holds no audio files"),
    ([], {}, "no audio given"),
    (["clips[1:3]"], {"clips": ["a.mp3", "b.mp3", "c.mp3"]},
     r"cannot read clips\[1:3\] \(.*\); a slice is not read here: put it in a variable first \(part = clips\[1:3\]\)"),
])
def test_mistakes_say_what_to_do(folder, items, ns, message):
    (folder / "empty").mkdir()
    with pytest.raises(ConfigError, match=message):
        audio_items(items, ns)


def test_prompt_placeholders():
    ns = {"topic": "budget", "df": pd.DataFrame({"a": [1, 2]}), "x": 0.12345}
    assert render_prompt("About {topic}: {df.shape[0]} rows, x={x:.2f}, {{literal}}", ns) == \
        "About budget: 2 rows, x=0.12, {literal}"
    with pytest.raises(ConfigError, match=r"uses \{missing\} but there is no variable missing"):
        render_prompt("{missing}", ns)
    with pytest.raises(ConfigError, match="empty {} placeholder"):
        render_prompt("JSON like {} please", ns)
    with pytest.raises(ConfigError, match="literal braces"):
        render_prompt("a { b", ns)


def test_lookup_names_the_option():
    with pytest.raises(ConfigError, match="--schema: no variable named Nope"):
        lookup("Nope", {}, "--schema")


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


def record(name: str, score: float, tags: list[str], mood: Mood, kind: Literal["a", "b"] = "a",
           note: Optional[str] = None, *rest, **extra) -> str:
    """Record a speaker.

    Args:
        name: who spoke
        score (float): how well
    """
    return f"{name}:{score}"


def test_tool_definition_from_a_function():
    fn = tool_from_function(record)["function"]
    assert fn["name"] == "record" and fn["description"] == "Record a speaker."
    props = fn["parameters"]["properties"]
    assert props["name"] == {"type": "string", "description": "who spoke"}
    assert props["score"] == {"type": "number", "description": "how well"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["mood"] == {"enum": ["happy", "sad"]} and props["kind"] == {"enum": ["a", "b"]}
    assert props["note"] == {"type": "string"} and set(props) == {"name", "score", "tags", "mood", "kind", "note"}
    assert fn["parameters"]["required"] == ["name", "score", "tags", "mood"]


def test_bad_tools_are_refused():
    with pytest.raises(ConfigError, match="not a function"):
        tool_from_function(42)
    with pytest.raises(ConfigError, match="not a usable tool name"):
        tool_from_function(lambda x: x)


def test_calling_tools_keeps_every_outcome():
    calls = [ToolCall("1", "record", '{"name": "Ada", "score": 2, "tags": [], "mood": "happy"}'),
             ToolCall("2", "record", '{"name": "Bob"}'),
             ToolCall("3", "unknown", "{}"),
             ToolCall("4", "record", "{not json")]
    results = call_tools(calls, {"record": record})
    assert results[0]["result"] == "Ada:2" and results[0]["error"] is None
    assert results[1]["error"].startswith("TypeError") and "score" in results[1]["error"]
    assert results[2]["error"] == "LookupError: the model called an unknown tool 'unknown'"
    assert results[3]["error"].startswith("JSONDecodeError")
