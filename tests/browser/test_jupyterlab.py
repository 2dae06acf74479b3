"""Proof in a real browser: JupyterLab driven by Chromium runs the notebook, and the answer streams.

One session (a module fixture) starts JupyterLab and the local server, opens the notebook in
headless Chromium, runs all cells from the Run menu and watches the page: while the ``%%voxtral``
cell runs (its prompt shows ``[*]``) the live widget's text is read several times a second, and a
second view of that output, opened mid-answer, is read too; then the final output, the
transcription's progress view and its table. The tests check what it saw.
Screenshots go to ``build/browser-screenshots/``.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from voxmagic.testing.server import LocalServer

from _frontends import (BATCH_FILES, NOTEBOOK_CELLS, chat_requests, frontend_env, screenshot_dir, server_answer,
                       start_jupyterlab, stop_jupyterlab, write_notebook)

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("VOXMAGIC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
# The %%voxtral answer: 100 words at 25 tokens/s, so it streams for about 4 s.
TOKEN_RATE, ANSWER_TOKENS = 25.0, 100

# One JS round trip per poll: for every cell, its prompt and what its output area shows.
CELL_STATES = """() => [...document.querySelectorAll('.jp-Notebook .jp-Cell')].map(cell => {
  const prompt = cell.querySelector('.jp-InputArea-prompt');
  const live = cell.querySelector('.jp-OutputArea-output .voxmagic-live pre.vm-text');
  const status = cell.querySelector(
    '.jp-OutputArea-output .voxmagic-live .vm-status, .jp-OutputArea-output .widget-html-content');
  const rendered = [...cell.querySelectorAll('.jp-OutputArea-output.jp-RenderedHTML')];
  const finalPre = rendered.map(e => e.querySelector('pre')).filter(Boolean).pop();
  return {
    prompt: prompt ? prompt.textContent.trim() : '',
    live: live ? live.textContent : null,  // the answer in the live widget
    status: status ? status.textContent : null,  // the widget's first line (status / progress header)
    progress: cell.querySelector('.jp-OutputArea-output .widget-hprogress') !== null,
    widgets: cell.querySelectorAll('.jp-OutputArea-output .jupyter-widgets').length,
    final: finalPre ? finalPre.textContent : null,  // the answer in the static result
    html: rendered.map(e => e.textContent),
  };
})"""

# A second view of the %%voxtral cell's output (JupyterLab's "Create New View for Cell Output"),
# opened while the answer streams, and what its live text shows.
OPEN_SECOND_VIEW = """async () => {
  await window.jupyterapp.commands.execute('notebook:create-output-view', {path: 'live.ipynb', index: 1});
  return true;
}"""
SECOND_VIEW = """() => {
  const live = document.querySelector('.jp-LinkedOutputView .voxmagic-live pre.vm-text');
  if (!live) return null;
  const style = getComputedStyle(live);
  return {text: live.textContent, wrap: `${style.whiteSpace} ${style.wordBreak}`};
}"""

# The status bar's kernel item: "<kernel name> | Idle" once a kernel is connected and idle.
KERNEL_IDLE = """() => [...document.querySelectorAll('#jp-main-statusbar .jp-StatusBar-TextItem')]
  .map(e => e.textContent.trim()).some(t => / \\| Idle$/.test(t) && !t.startsWith('No Kernel'))"""

# Text a LaTeX typesetter would see: outside <pre>/<code> and elements that opt out of MathJax.
TYPESET = """([index]) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
  const typeset = cell.querySelectorAll('.jp-OutputArea-output mjx-container, .jp-OutputArea-output .MathJax').length;
  const walker = document.createTreeWalker(cell.querySelector('.jp-OutputArea'), NodeFilter.SHOW_TEXT);
  let exposed = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest('pre, code, .mathjax_ignore, .tex2jax_ignore, mjx-container')) continue;
    if ((n.textContent.match(/\\$/g) || []).length >= 2) exposed.push(n.textContent);
  }
  return {typeset, exposed};
}"""


@dataclass
class Session:
    """What the browser showed, and what the server sent."""

    screenshots: Path
    expected: str = ""
    samples: list[dict] = field(default_factory=list)  # %%voxtral cell while its prompt showed [*]
    answer: dict | None = None  # %%voxtral cell once it finished
    batch_live: list[dict] = field(default_factory=list)  # %voxtral_transcribe cell while running
    batch: dict | None = None
    table_rows: dict[int, list[str]] = field(default_factory=dict)  # cell index → first column
    math: dict[int, dict] = field(default_factory=dict)
    elapsed: dict[str, float] = field(default_factory=dict)
    opened_with: str | None = None  # the live text when a second view of the output was opened
    second: list[dict] = field(default_factory=list)  # that view's live text, each time it changed


def _launch(playwright):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium "
                    "(./run.sh test does it), or set VOXMAGIC_CHROMIUM to its path", pytrace=False)
    try:
        return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
    except Exception as exc:  # noqa: BLE001 - any launch failure is the reason the test fails
        pytest.fail(f"Chromium at {CHROMIUM} did not start: {exc}", pytrace=False)


class _Watcher:
    """Polls every cell several times a second; each poll feeds the recorders of the session."""

    def __init__(self, page, session: Session, shot):
        self.page, self.session, self.shot = page, session, shot
        self.t0 = time.monotonic()
        self.states: list[dict] = []
        self.streaming_shot = False

    def wait(self, until, what: str, timeout: float, poll: float = 0.08) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            self.states = self.page.evaluate(CELL_STATES)
            if self.session.opened_with is not None and self.states[1:2] and self.states[1]["prompt"] == "[*]:":
                second = self.page.evaluate(SECOND_VIEW)
                if second and (not self.session.second or self.session.second[-1]["text"] != second["text"]):
                    self.session.second.append(second)
            self.record(self.states)
            if len(self.states) == len(NOTEBOOK_CELLS) and until(self.states):
                return self.states
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; cells: {self.states}")
            time.sleep(poll)

    def record(self, states: list[dict]) -> None:
        if len(states) != len(NOTEBOOK_CELLS):
            return
        ask, batch = states[1], states[2]
        samples = self.session.samples
        if ask["prompt"] == "[*]:" and ask["live"]:  # %%voxtral running: its live widget
            if not samples or samples[-1]["live"] != ask["live"]:
                samples.append(dict(ask, t=time.monotonic() - self.t0))
            if not self.streaming_shot and len(ask["live"]) >= 250:  # about 40% of the answer
                self.shot("1-streaming.png")
                self.streaming_shot = True
                self.session.opened_with = ask["live"]
                self.page.evaluate(OPEN_SECOND_VIEW)  # a view that renders late, mid-answer
        if batch["prompt"] == "[*]:" and batch["widgets"]:  # %voxtral_transcribe running
            self.session.batch_live.append(batch)

    def mark(self, event: str) -> None:
        self.session.elapsed[event] = time.monotonic() - self.t0


def _done(state) -> bool:
    return re.fullmatch(r"\[\d+\]:", state["prompt"]) is not None


def _table(page, index: int) -> list[str]:
    rows = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(
        ".jp-OutputArea-output table.dataframe tbody tr")
    return [rows.nth(i).locator("td").first.text_content().strip() for i in range(rows.count())]


def _drive(page, lab, server, session: Session) -> None:
    cells = page.locator(".jp-Notebook .jp-Cell")
    shot = lambda name: page.screenshot(path=str(session.screenshots / name))  # noqa: E731
    watch = _Watcher(page, session, shot)
    page.goto(lab.notebook_url("live.ipynb"), wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    # The execution indicator says "idle" before a kernel exists; the status bar names the kernel.
    page.wait_for_function(KERNEL_IDLE, timeout=60_000)
    watch.mark("kernel ready")
    page.keyboard.press("Control+b")  # fold the file browser away: more room for the outputs
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

    watch.wait(lambda s: s[1]["prompt"] == "[*]:" or _done(s[1]), "the %%voxtral cell to start", 60)
    watch.mark("%%voxtral started")
    watch.wait(lambda s: _done(s[1]), "the %%voxtral cell to finish", 60)
    watch.mark("%%voxtral finished")
    states = watch.wait(lambda s: s[1]["final"] is not None and s[1]["widgets"] == 0,
                        "the final answer to replace the live widget", 20)
    session.answer = states[1]
    cells.nth(1).scroll_into_view_if_needed()
    shot("2-answer.png")  # the second view below the notebook shows the result too
    page.locator(".lm-TabBar-tab", has_text="Output View").locator(".lm-TabBar-tabCloseIcon").click()

    states = watch.wait(lambda s: _done(s[2]) and s[2]["widgets"] == 0 and len(s[2]["html"]) >= 2,
                        "%voxtral_transcribe's summary and table", 60)
    session.batch = states[2]
    watch.wait(lambda s: _done(s[3]), "the df cell to finish", 30)
    cells.nth(3).locator("table.dataframe").wait_for(timeout=20_000)
    watch.mark("all cells finished")
    for index in (2, 3):
        session.table_rows[index] = _table(page, index)
    cells.nth(2).scroll_into_view_if_needed()
    shot("3-dataframe.png")
    for index in (1, 2):
        session.math[index] = page.evaluate(TYPESET, [index])
    recs = chat_requests(server)
    assert len(recs) == 1, f"expected one %%voxtral request at the server, got {len(recs)}"
    session.expected = server_answer(recs[0], ANSWER_TOKENS)


class _ScreenshotSummary:
    """A plugin registered by the session: names the screenshots at the end of the terminal report."""

    def __init__(self, folder: Path):
        self.folder = folder

    def pytest_terminal_summary(self, terminalreporter) -> None:
        shots = sorted(p.name for p in self.folder.glob("*.png"))
        terminalreporter.write_sep("-", "JupyterLab screenshots")
        terminalreporter.write_line(f"{self.folder}: {', '.join(shots) or '(none)'}")


@pytest.fixture(scope="module")
def session(request, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    root, home = tmp_path_factory.mktemp("lab-root"), tmp_path_factory.mktemp("lab-home")
    write_notebook(root)
    result = Session(screenshot_dir())
    if not request.config.pluginmanager.has_plugin("voxmagic-screenshots"):
        request.config.pluginmanager.register(_ScreenshotSummary(result.screenshots), "voxmagic-screenshots")
    with LocalServer(token_rate=TOKEN_RATE, answer_tokens=ANSWER_TOKENS) as server:
        lab = start_jupyterlab(root, frontend_env(server, home), home,
                               extra_args=("--LabApp.expose_app_in_browser=True",))  # its commands: a second view
        try:
            with sync_playwright() as playwright:
                browser = _launch(playwright)
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 1000})
                    try:
                        _drive(page, lab, server, result)
                    except Exception as exc:
                        try:
                            page.screenshot(path=str(result.screenshots / "failure.png"))
                        except Exception:  # noqa: BLE001 - the page may be gone; report the first error
                            pass
                        raise AssertionError(
                            f"{exc}\nscreenshot: {result.screenshots / 'failure.png'}\n"
                            f"JupyterLab log tail:\n{lab.log_tail(25)}") from exc
                finally:
                    browser.close()
        finally:
            stop_jupyterlab(lab)
    print(f"\nJupyterLab screenshots: {result.screenshots}; timings: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in result.elapsed.items()))
    return result


@pytest.fixture(autouse=True)
def _report(request, record_property):
    if "session" in request.fixturenames:
        record_property("screenshots", str(request.getfixturevalue("session").screenshots))


def test_the_answer_grows_in_the_live_widget_while_the_cell_runs(session):
    lengths = [len(s["live"]) for s in session.samples]
    partial = [n for n in lengths if 0 < n < len(session.expected)]
    assert len(partial) >= 3, f"saw {lengths} of {len(session.expected)} characters while the cell ran"
    assert lengths == sorted(set(lengths)), f"the text did not only grow: {lengths}"
    for before, after in zip(session.samples, session.samples[1:]):
        assert after["live"].startswith(before["live"])  # each update extends the last one
    assert all(session.expected.startswith(s["live"]) for s in session.samples)  # ... of the real answer
    span = session.samples[-1]["t"] - session.samples[0]["t"]
    assert span > 1.0, f"the updates came within {span:.2f} s: not a stream"
    status = session.samples[-1]["status"]
    assert "tokens" in status and "so far" in status, status  # the live status line above the text


def test_a_view_opened_mid_answer_shows_the_whole_text_then_grows(session):
    """A second view of the output renders late, while the cell runs (the kernel, busy, could not
    answer a request): it shows the whole text the page's widget model kept, not only what
    streamed after it appeared, then grows with the first view."""
    assert session.opened_with, "no second view was opened while the answer streamed"
    texts = [s["text"] for s in session.second if s["text"]]
    assert texts, f"the second view showed no text while the cell ran: {session.second}"
    assert len(texts[0]) >= len(session.opened_with), (texts[0], session.opened_with)
    assert all(session.expected.startswith(t) for t in texts)  # prefixes of the answer: from its start
    assert [len(t) for t in texts] == sorted({len(t) for t in texts})  # and then it only grew
    assert all(s["wrap"] == "pre-wrap normal" for s in session.second)  # wrapped at spaces


def test_the_final_output_is_the_answer_the_server_sent(session):
    assert session.answer["final"] == session.expected
    assert session.answer["widgets"] == 0  # the live view was replaced, not left behind
    shown = "\n".join(session.answer["html"])
    assert "this call" in shown and "session" in shown and "(1 call)" in shown  # the cost line


def test_transcribe_shows_progress_then_3_of_3_and_a_table_of_3_rows(session):
    assert session.batch_live, "no live progress view was seen while %voxtral_transcribe ran"
    assert any(s["progress"] for s in session.batch_live) and "/3 files" in session.batch_live[0]["status"]
    summary = session.batch["html"][0]
    assert summary.startswith("3/3 files · ") and "(4 calls)" in summary, summary  # + the %%voxtral call
    assert session.table_rows[2] == session.table_rows[3] == list(BATCH_FILES)


def test_dollar_amounts_are_not_typeset_as_math(session):
    """Cost lines hold two dollar amounts; JupyterLab's MathJax must not typeset what is between."""
    for index, seen in session.math.items():
        assert not seen["typeset"] and not seen["exposed"], f"cell {index}: {seen}"
