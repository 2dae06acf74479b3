"""Proof in a real browser that a transcript plays: JupyterLab in headless Chromium (autoplay allowed
by flag) shows a TranscriptPlayer built from 12 s of synthesized speech in four 3 s rows; a click on
the third row must seek its source's <audio> to the row's start, play it with the row highlighted,
and pause it at the row's end. A sampler inside the page reads the element every 10 ms; Python's
``player.playing`` is read by running a cell while it plays and after. The screenshot, taken while
the row plays, goes to build/browser-screenshots/player.png.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from _frontends import CHROMIUM_ARGS as BROWSER_ARGS
from _frontends import SCREENSHOTS, lab_page, run_cell

from voxmagic.testing.server import LocalServer
from voxmagic.testing.synth import speechlike, write_audio

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [*BROWSER_ARGS, "--autoplay-policy=no-user-gesture-required"]
SECONDS, ROWS = 12.0, 4
STEP = SECONDS / ROWS
OFFSET = 100.0  # the moment's place in its file (the last cell)
ROW = 2  # the third row: 6.0–9.0 s, so the stop at its end is the player's, not the end of the file
START, END = ROW * STEP, (ROW + 1) * STEP
TEXTS = [f"Row {i + 1}: " + " ".join(["a sentence long enough to wrap in its column, never cut"] * 3)
         for i in range(ROWS)]
CELLS = [
    "import pandas as pd\n"
    "from voxmagic.notebook.player import TranscriptPlayer\n"
    f"segments = pd.DataFrame({{'source': ['talk.mp3'] * {ROWS}, 'speaker': ['Ann', 'Bob'] * {ROWS // 2},\n"
    f"    'start': [i * {STEP} for i in range({ROWS})], 'end': [(i + 1) * {STEP} for i in range({ROWS})],\n"
    f"    'text': {TEXTS!r}}})\n"
    "player = TranscriptPlayer.from_segments(segments, {'talk.mp3': open('talk.mp3', 'rb').read()})\n"
    "rows = list(player.rows)\n"
    "player",
    "player.playing",
    "player.rows = player.rows[:2]",
    # the same audio as a moment of a longer file: it begins 100 s in, and the rows keep the file's times
    f"player.sources = [dict(player.sources[0], start={OFFSET})]\n"
    f"player.rows = [dict(r, start=r['start'] + {OFFSET}, end=r['end'] + {OFFSET}) for r in rows]",
]
SCOPE = ".jp-NotebookPanel:not(.lm-mod-hidden)"
KERNEL_IDLE = """() => [...document.querySelectorAll('#jp-main-statusbar .jp-StatusBar-TextItem')]
  .map(e => e.textContent.trim()).some(t => / \\| Idle$/.test(t) && !t.startsWith('No Kernel'))"""

# Installed once the player shows: what the <audio> says every 10 ms, and right after a click (a
# capturing listener's setTimeout runs after the player's own click handler; the first click only).
SAMPLER = """(scope) => {
  const root = document.querySelector(scope + ' .voxmagic-player');
  const audio = root.querySelector('audio'), rows = [...root.querySelectorAll('tbody tr')];
  const vm = window.__vm = {clicked: null, samples: []};
  const t0 = performance.now();
  document.addEventListener('click', e => vm.clicked || !root.contains(e.target) || setTimeout(() => {
    vm.clicked = {t: audio.currentTime, paused: audio.paused, ms: performance.now() - t0};
  }, 0), true);
  setInterval(() => vm.samples.push({
    ms: performance.now() - t0, t: audio.currentTime, paused: audio.paused,
    lit: rows.flatMap((r, i) => r.classList.contains('vm-playing') ? [i] : []),
    bg: rows.map(r => getComputedStyle(r).backgroundColor),
  }), 10);
  return {audios: root.querySelectorAll('audio').length, rows: rows.length, duration: audio.duration,
          src: audio.src.split(':')[0], focusable: rows.map(r => r.tabIndex),
          header: [...root.querySelectorAll('thead th')].map(th => th.textContent),
          text: rows.map(r => r.querySelector('.vm-text').textContent),
          textStyle: (s => [s.textAlign, s.whiteSpace])(getComputedStyle(rows[0].querySelector('.vm-text')))};
}"""


@dataclass
class Seen:
    page: dict = field(default_factory=dict)  # what the sampler found when it started
    clicked: dict = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)
    python: list[str] = field(default_factory=list)  # ``player.playing`` while playing, then after
    keyboard: list[dict] = field(default_factory=list)
    redrawn: dict = field(default_factory=dict)  # the view after Python changed ``rows``
    moment: dict = field(default_factory=dict)  # a click on a row of a moment that starts OFFSET s in
    shot_while_playing: dict = field(default_factory=dict)  # the player right after the screenshot


def _write_notebook(root: Path) -> None:
    write_audio(root / "talk.mp3", speechlike(SECONDS, 16_000, seed=3), 16_000)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, root / "player.ipynb")


def _run_cell(page, index: int) -> str:
    """Cell ``index`` run (see run_cell); its last output's text, empty without one."""
    return (run_cell(page, index) or [""])[-1]


def _drive(page, lab, seen: Seen) -> None:
    page.goto(lab.notebook_url("player.ipynb"), wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector(f"{SCOPE} .jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function(KERNEL_IDLE, timeout=60_000)
    page.keyboard.press("Control+b")  # fold the file browser away
    _run_cell(page, 0)
    rows = page.locator(f"{SCOPE} .voxmagic-player tbody tr")
    rows.nth(ROWS - 1).wait_for(timeout=30_000)
    page.wait_for_function(f"() => document.querySelector('{SCOPE} .voxmagic-player audio').readyState >= 1",
                           timeout=20_000)
    seen.page = page.evaluate(SAMPLER, SCOPE)

    rows.nth(ROW).click()
    seen.python.append(_run_cell(page, 1))  # while the row plays
    time.sleep(0.3)
    page.locator(f"{SCOPE} .voxmagic-player").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "player.png"))
    seen.shot_while_playing = page.evaluate(STATE, SCOPE)
    page.wait_for_function("() => { const s = window.__vm.samples; return s.length && s[s.length - 1].paused"
                           " && s.some(x => !x.paused) && window.__vm.clicked; }", timeout=15_000)
    time.sleep(0.3)  # a little more, to see that it stays paused
    seen.clicked = page.evaluate("() => window.__vm.clicked")
    seen.samples = page.evaluate("() => window.__vm.samples")
    seen.python.append(_run_cell(page, 1))  # after the stop

    rows.nth(0).focus()  # keyboard: Enter on the first row plays it, Enter again pauses it
    page.keyboard.press("Enter")
    time.sleep(0.5)
    seen.keyboard.append(page.evaluate(STATE, SCOPE))
    page.keyboard.press("Enter")
    time.sleep(0.2)
    seen.keyboard.append(page.evaluate(STATE, SCOPE))

    _run_cell(page, 2)
    page.wait_for_function(f"() => document.querySelectorAll('{SCOPE} .voxmagic-player tbody tr').length === 2")
    seen.redrawn = page.evaluate(REDRAWN, SCOPE)

    _run_cell(page, 3)
    page.wait_for_function(f"() => [...document.querySelectorAll('{SCOPE} .voxmagic-player tbody tr')].length"
                           f" === {ROWS} && document.querySelector('{SCOPE} .voxmagic-player audio').readyState >= 1")
    page.evaluate(MOMENT, SCOPE)
    page.locator(f"{SCOPE} .voxmagic-player tbody tr").nth(ROW).click()
    page.wait_for_function("() => { const v = window.__moment.samples; return v.length && v[v.length - 1].paused"
                           " && v.some(x => !x.paused); }", timeout=15_000)
    seen.moment = page.evaluate("() => window.__moment")


# Every 10 ms, what the <audio> of the moment's player says; and the row's shown time.
MOMENT = """(scope) => {
  const root = document.querySelector(scope + ' .voxmagic-player'), audio = root.querySelector('audio');
  const vm = window.__moment = {samples: [], time: root.querySelectorAll('tbody tr .vm-time')[%d].textContent};
  setInterval(() => vm.samples.push({t: audio.currentTime, paused: audio.paused}), 10);
}""" % ROW


REDRAWN = """(scope) => ({audios: document.querySelectorAll(scope + ' .voxmagic-player audio').length,
  players: document.querySelectorAll(scope + ' .voxmagic-player').length,
  rows: [...document.querySelectorAll(scope + ' .voxmagic-player tbody .vm-text')].map(td => td.textContent)})"""
STATE = """(scope) => { const a = document.querySelector(scope + ' .voxmagic-player audio');
  return {t: a.currentTime, paused: a.paused, lit: [...document.querySelectorAll(scope + ' .vm-playing')].length,
          active: document.activeElement.dataset.row}; }"""


@pytest.fixture(scope="module")
def seen(tmp_path_factory) -> Seen:
    root, home = tmp_path_factory.mktemp("player-root"), tmp_path_factory.mktemp("player-home")
    _write_notebook(root)
    (SCREENSHOTS / "player-failure.png").unlink(missing_ok=True)  # an earlier run's
    result = Seen()
    with LocalServer() as server, lab_page(root, home, server, args=CHROMIUM_ARGS, height=900,
                                           failure="player-failure.png") as (page, lab):  # fmt: skip
        _drive(page, lab, result)
    return result


def _playing(seen: Seen) -> list[dict]:
    return [s for s in seen.samples if not s["paused"]]


def test_one_audio_element_for_the_source_and_a_readable_table(seen):
    page = seen.page
    assert page["audios"] == 1 and page["rows"] == ROWS and page["src"] == "blob"  # bytes in, one blob URL
    assert page["duration"] == pytest.approx(SECONDS, abs=0.1)
    assert page["header"] == ["time", "speaker", "text"] and page["focusable"] == [0] * ROWS
    assert page["text"] == TEXTS  # whole
    assert page["textStyle"] == ["left", "pre-wrap"]


def test_a_click_seeks_to_the_rows_start(seen):
    assert seen.clicked["t"] == pytest.approx(START, abs=0.05), seen.clicked


def test_it_plays_with_the_row_highlighted(seen):
    playing = _playing(seen)
    assert len(playing) > 50, f"{len(playing)} samples while playing"
    times = [s["t"] for s in playing]
    assert times == sorted(times) and times[-1] - times[0] > 2.5  # advancing
    wall = (playing[-1]["ms"] - playing[0]["ms"]) / 1000
    assert times[-1] - times[0] == pytest.approx(wall, abs=0.3)  # at normal speed
    assert all(s["lit"] == [ROW] for s in playing)
    colours = {s["bg"][ROW] for s in playing}
    assert len(colours) == 1 and colours.isdisjoint({s["bg"][0] for s in playing} | {"rgba(0, 0, 0, 0)"})


def test_it_pauses_at_the_rows_end(seen):
    first = seen.samples.index(_playing(seen)[0])
    after = seen.samples[first:]
    stop = next(s for s in after if s["paused"])
    assert END <= stop["t"] <= END + 0.15, stop
    assert all(s["paused"] and s["t"] == stop["t"] and s["lit"] == [] for s in after[after.index(stop):])
    assert (stop["ms"] - seen.clicked["ms"]) / 1000 == pytest.approx(END - START, abs=0.35)


def test_python_sees_the_row_playing(seen):
    assert seen.python == [str(ROW), "-1"]


def test_the_screenshot_shows_the_row_playing(seen):
    assert not seen.shot_while_playing["paused"] and seen.shot_while_playing["lit"] == 1, seen.shot_while_playing
    assert (SCREENSHOTS / "player.png").stat().st_size > 10_000


def test_the_keyboard_plays_and_pauses_a_row(seen):
    playing, paused = seen.keyboard
    assert not playing["paused"] and 0.2 < playing["t"] < 1.0 and playing["lit"] == 1, playing
    assert paused["paused"] and paused["lit"] == 0 and paused["active"] == "0", paused



def test_the_view_follows_rows_changed_from_python(seen):
    assert seen.redrawn == {"audios": 1, "players": 1, "rows": TEXTS[:2]}


def test_a_moment_plays_its_own_audio_at_the_files_times(seen):
    """The rows of a moment 100 s into a file show the file's times, and play the moment's audio
    from the row's place in it (its start less the moment's), pausing at the row's end."""
    assert seen.moment["time"] == "1:46–1:49"
    playing = [s for s in seen.moment["samples"] if not s["paused"]]
    assert playing and playing[0]["t"] == pytest.approx(START, abs=0.1), playing[:3]
    stop = next(s for s in seen.moment["samples"][seen.moment["samples"].index(playing[0]):] if s["paused"])
    assert END <= stop["t"] <= END + 0.15, stop
