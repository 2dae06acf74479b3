"""Proof in a real browser that the notebook hears the person in the room: JupyterLab in headless
Chromium whose microphone is a speech file (``--use-fake-device-for-media-stream
--use-file-for-fake-audio-capture``, permission granted by ``--use-fake-ui-for-media-stream``).

``%voxtral_record -o clip`` is recorded for about 4 s: the kernel's ``clip`` must last as long as
the control said it was recording (±0.3 s) and its samples must correlate with the file's; live
captions must grow at least twice before the stop, and the transcript of the whole replace them.
Then ``%%voxtral --mic`` is recorded for about 3 s, and its answer must stream into the widget
under the control (the local server sends it at 20 tokens a second). A page sampler reads the
controls every 20 ms. Screenshots go to build/browser-screenshots/microphone*.png.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
import pytest
from _frontends import CHROMIUM_ARGS, SCREENSHOTS, lab_page, run_cell

from voxmagic.testing.server import LocalServer

pytestmark = pytest.mark.browser

RATE = 16_000
RECORD_S, MIC_S = 4.0, 3.0
PHRASES = ["Good morning.", "Rivers flow.", "Fish swim.", "The sea is salty.", "Birds sing.", "Thank you."]
PROMPT = "What is said in this recording?"
CELLS = [
    "%load_ext voxmagic",
    "%voxtral_record -o clip",
    "import numpy as np\nnp.save('clip.npy', clip.array)\nprint(f'{clip.array.size / 16000:.3f} s')\nclip_text",
    f"%%voxtral --mic -o said\n{PROMPT}",
    f"%%voxtral --mic\n{PROMPT}",  # recorded where the browser refuses the microphone
    "from ipywidgets.widgets.widget import _instances\n"
    "print([w.state for w in list(_instances.values()) if type(w).__name__ == 'Recorder'][-1])",
]
SCOPE = ".jp-NotebookPanel:not(.lm-mod-hidden)"
KERNEL_IDLE = """() => [...document.querySelectorAll('#jp-main-statusbar .jp-StatusBar-TextItem')]
  .map(e => e.textContent.trim()).some(t => / \\| Idle$/.test(t) && !t.startsWith('No Kernel'))"""

# Installed on a cell's recorder: every 20 ms its state, status and captions, and the cell's live
# answer; the time of the click that stops it.
SAMPLER = """(root) => {
  const cell = root.closest('.jp-Cell');
  const vm = window.__vm = {samples: [], stopClick: null, startClick: null};
  root.querySelector('.vm-record').addEventListener('click', () => {
    if (root.dataset.state === 'recording') vm.stopClick = performance.now();
    else if (vm.startClick === null) vm.startClick = performance.now();
  }, true);
  vm.timer = setInterval(() => {
    const live = cell.querySelector('.voxmagic-live pre.vm-text');
    const final = [...cell.querySelectorAll('.jp-RenderedHTMLCommon pre')].pop();
    vm.samples.push({ms: performance.now(), state: root.dataset.state,
      status: root.querySelector('.vm-status').textContent, captions: root.querySelector('.vm-captions').textContent,
      live: live ? live.textContent : null, final: final ? final.textContent : null,
      player: root.querySelectorAll('.vm-player audio').length});
  }, 20);
}"""


@dataclass
class Take:
    samples: list[dict] = field(default_factory=list)
    start_click: float = 0.0
    stop_click: float = 0.0


@dataclass
class Seen:
    record: Take = field(default_factory=Take)
    mic: Take = field(default_factory=Take)
    printed: str = ""  # cell 2's output: the kernel's duration and transcript
    refused: dict = field(default_factory=dict)  # what the page and the kernel said when refused
    clip: np.ndarray | None = None
    speech: np.ndarray | None = None


def speech_wav(path: Path) -> np.ndarray:
    """Short espeak-ng phrases with 0.5 s between them, 16 kHz mono 16-bit WAV; the samples."""
    parts = []
    for phrase in PHRASES:
        out = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "--stdout", phrase],
                             capture_output=True, check=True).stdout
        with wave.open(io.BytesIO(out)) as f:
            rate, x = f.getframerate(), np.frombuffer(f.readframes(f.getnframes()), np.int16).astype(np.float64)
        t = np.arange(int(x.size * RATE / rate)) * rate / RATE
        parts += [np.interp(t, np.arange(x.size), x), np.zeros(RATE // 2)]
    samples = np.concatenate(parts).astype(np.int16)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(RATE)
        f.writeframes(samples.tobytes())
    return samples


def _run_cell(page, index: int) -> str:
    """Cell ``index`` run (see run_cell); its outputs' text."""
    return "\n".join(run_cell(page, index))


def _record(page, index: int, seconds: float, take: Take, until: str) -> None:
    """Record with cell ``index``'s control for ``seconds`` from when it says it records, stop,
    and sample until ``until`` (a JS condition on the last sample ``s``) holds."""
    root = page.locator(f"{SCOPE} .jp-Notebook .jp-Cell").nth(index).locator(".voxmagic-recorder")
    root.wait_for(timeout=30_000)
    page.evaluate(SAMPLER, root.element_handle())
    root.locator(".vm-record").click()
    page.wait_for_function("() => document.querySelector('" + SCOPE + " .voxmagic-recorder[data-state=recording]')",
                           timeout=20_000)
    time.sleep(seconds)
    root.locator(".vm-record").click()
    page.wait_for_function(f"() => {{ const v = window.__vm.samples; const s = v[v.length - 1]; return {until}; }}",
                           timeout=30_000)
    time.sleep(0.2)
    vm = page.evaluate("() => { clearInterval(window.__vm.timer); return window.__vm; }")
    take.samples, take.start_click, take.stop_click = vm["samples"], vm["startClick"], vm["stopClick"]


def _drive(page, lab, server, seen: Seen) -> None:
    page.goto(lab.notebook_url("mic.ipynb"), wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector(f"{SCOPE} .jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function(KERNEL_IDLE, timeout=60_000)
    page.keyboard.press("Control+b")  # fold the file browser away
    _run_cell(page, 0)
    _run_cell(page, 1)
    _record(page, 1, RECORD_S, seen.record, "s.state === 'stopped' && s.player && !s.captions.includes('…')"
            " && /recorded/.test(s.status) && s.captions === s.captions.trim() && s.captions.length > 0")
    page.locator(f"{SCOPE} .voxmagic-recorder").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "microphone-record.png"))
    seen.printed = _run_cell(page, 2)
    server.configure(token_rate=20.0, answer_tokens=60)  # from now on answers stream for ~3 s
    _run_cell(page, 3)
    _record(page, 3, MIC_S, seen.mic, "s.final !== null")
    page.screenshot(path=str(SCREENSHOTS / "microphone-mic.png"))
    _refuse(page, seen)


# A browser that refuses: getUserMedia rejects as it does when the permission is denied.
REFUSE = """() => { navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException('Permission denied', 'NotAllowedError')); }"""


def _refuse(page, seen: Seen) -> None:
    page.evaluate(REFUSE)
    _run_cell(page, 4)
    cell = page.locator(f"{SCOPE} .jp-Notebook .jp-Cell").nth(4)
    cell.locator(".voxmagic-recorder .vm-record").click()
    cell.locator(".voxmagic-recorder[data-state=failed]").wait_for(timeout=10_000)
    cell.locator(".jp-RenderedHTMLCommon", has_text="no microphone here").wait_for(timeout=10_000)
    seen.refused = {"control": cell.locator(".voxmagic-recorder .vm-status").text_content(),
                    "view": cell.locator(".jp-RenderedHTMLCommon", has_text="no microphone here").text_content(),
                    "kernel": _run_cell(page, 5)}


@pytest.fixture(scope="module")
def seen(tmp_path_factory) -> Seen:
    if not shutil.which("espeak-ng"):
        pytest.fail("espeak-ng is not installed: apt-get install espeak-ng", pytrace=False)
    root, home = tmp_path_factory.mktemp("mic-root"), tmp_path_factory.mktemp("mic-home")
    result = Seen(speech=speech_wav(home / "speech.wav"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, root / "mic.ipynb")
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={home / 'speech.wav'}"]
    with LocalServer() as server, lab_page(root, home, server, args=args, height=1000,
                                           failure="microphone-failure.png") as (page, lab):  # fmt: skip
        _drive(page, lab, server, result)
    result.clip = np.load(root / "clip.npy")
    return result


def _recording_s(take: Take) -> float:
    """From the first sample where the control said it records to the click that stopped it."""
    began = next(s["ms"] for s in take.samples if s["state"] == "recording")
    return (take.stop_click - began) / 1000


def test_the_kernel_holds_as_much_audio_as_was_recorded(seen):
    kernel_s = seen.clip.size / RATE
    recorded = _recording_s(seen.record)
    print(f"recording {recorded:.3f} s (click to click {(seen.record.stop_click - seen.record.start_click) / 1000:.3f} s)"
          f" → kernel {kernel_s:.3f} s")
    assert kernel_s == pytest.approx(recorded, abs=0.3)
    assert f"{kernel_s:.3f} s" in seen.printed


def _best_match(looped: np.ndarray, piece: np.ndarray) -> tuple[int, float]:
    """Where in ``looped`` ``piece`` fits best (cross-correlation by FFT), and how well (Pearson)."""
    n = 1 << (looped.size + piece.size - 1).bit_length()
    scores = np.fft.irfft(np.fft.rfft(looped, n) * np.conj(np.fft.rfft(piece, n)), n)[: looped.size - piece.size]
    lag = int(np.argmax(scores))
    ref = looped[lag : lag + piece.size]
    return lag, float(np.corrcoef(ref, piece)[0, 1]) if ref.std() else 0.0


def test_its_samples_are_the_file_s(seen):
    """Each 0.5 s window of what the kernel received is found in the (looping) file on its own,
    correlates with it, and they are found in the order recorded: each window's place in the file,
    less its place in the clip, is the same for all of them within 50 ms (a late audio callback under
    load shifts what follows it a little, which is why one whole-clip correlation is not asked for:
    a shift of one millisecond decorrelates speech)."""
    x = seen.clip.astype(np.float64)
    looped = np.tile(seen.speech.astype(np.float64), 3)
    w, near, period = RATE // 2, RATE // 20, seen.speech.size
    found = []  # (offset of the window's place in the file from its place in the clip, correlation)
    for start in range(0, x.size - w + 1, w):
        piece = x[start : start + w]
        if piece.std() < 100:  # a pause: nothing to correlate
            continue
        lag, r = _best_match(looped, piece)
        found.append(((lag - start) % period, r))
    offsets = np.array([o for o, _ in found])
    centre = float(np.median(offsets))
    drift = np.abs((offsets - centre + period / 2) % period - period / 2)  # distance around the loop
    scores = [r for _, r in found]
    print(f"{len(found)} windows of 0.5 s: correlation median {np.median(scores):.3f}, lowest {min(scores):.3f};"
          f" at {centre / RATE:.3f} s into the file, drift at most {drift.max() / RATE * 1000:.0f} ms")
    assert len(found) >= 4 and np.median(scores) > 0.9
    assert np.mean(drift <= near) >= 0.75, drift / RATE


def test_live_captions_grow_while_recording_and_the_transcript_replaces_them(seen):
    take = seen.record
    before = [s["captions"] for s in take.samples if s["ms"] < take.stop_click]
    shown = [c for i, c in enumerate(before) if c and "…" not in c and (i == 0 or c != before[i - 1])]
    began = next(s["ms"] for s in take.samples if s["state"] == "recording")
    when = [next(s["ms"] for s in take.samples if s["captions"] == c) for c in shown]
    print(f"captions before the stop: {len(shown)}, at " + ", ".join(f"{(t - began) / 1000:.2f}" for t in when)
          + f" s of {(take.stop_click - began) / 1000:.2f} s")
    assert len(set(shown)) >= 2, before
    last = take.samples[-1]
    assert last["captions"] not in shown and "Heard 1 clips" in last["captions"]  # the local server's transcript
    assert last["captions"] in seen.printed  # clip_text, the same text in the kernel
    assert last["player"] == 1 and last["status"].startswith("recorded")


def test_the_mic_answer_streams_in_the_widget(seen):
    take = seen.mic
    after = [s for s in take.samples if s["ms"] > take.stop_click]
    growing = [s["live"] for s in after if s["live"]]
    distinct = list(dict.fromkeys(growing))
    print(f"--mic: {len(distinct)} distinct live texts, recorded {_recording_s(take):.2f} s")
    assert len(distinct) >= 5, distinct
    assert all(b.startswith(a) for a, b in zip(distinct, distinct[1:], strict=False))
    final = after[-1]["final"]
    assert final and final.startswith(distinct[-1].strip()[:20])


def test_a_refused_microphone_is_one_line_in_the_control_the_kernel_knows_and_nothing_waits(seen):
    line = ("no microphone here: the browser refused the microphone (Permission denied); "
            "pass a file instead: %%voxtral path/to/clip.wav")
    assert seen.refused["control"] == line
    assert seen.refused["view"].strip() == line  # the --mic answer's view ended with it
    assert seen.refused["kernel"] == "failed"
