"""The project's own notebooks in a real browser, as a new user runs them: quickstart and batch.

One JupyterLab (a module fixture) serves a temporary folder holding copies of
``notebooks/quickstart.ipynb`` and ``notebooks/batch.ipynb``, unmodified, in the environment of a
user without a key: no ``OPENROUTER_API_KEY``, ``VOXMAGIC_OFFLINE=1``, a private history file, so
their first cell (``voxmagic.testing.use_local_server()``) starts the local server inside the
kernel, answering at a human pace. Headless Chromium opens each notebook in a workspace of its
own, runs all cells from the Run menu and polls the page: while the batch notebook's
``%voxtral_transcribe`` cell runs, its live progress header is read several times a second; once
a notebook is done, its transcript table is measured in the DOM (columns, alignment, wrapping,
whether it fits, and its text against the kernel's own ``df``), screenshots are taken, the notebook
is saved and the saved file read back. Screenshots go to ``build/browser-screenshots/notebooks/``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from _frontends import REPO, offline_env, register_screenshot_summary, screenshot_dir, start_jupyterlab, stop_jupyterlab

pytestmark = pytest.mark.browser

NOTEBOOKS = ("quickstart", "batch")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 1000}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
RUN_TIMEOUT = 120.0  # seconds for one notebook's Run All
PROGRESS_SHOT = "batch-1-progress.png"

PANEL = "document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)')"

# One JS round trip per poll: every cell of the notebook on screen, its prompt and its outputs.
CELLS = """() => {
  const panel = __PANEL__;
  if (!panel) return [];
  return [...panel.querySelectorAll('.jp-Notebook .jp-Cell')].map(cell => {
    const prompt = cell.querySelector('.jp-InputArea-prompt');
    const header = cell.querySelector('.jp-OutputArea-output .widget-html-content');
    return {
      code: cell.classList.contains('jp-CodeCell'),
      prompt: prompt ? prompt.textContent.trim() : '',
      header: header ? header.textContent : null,  // a live view's first line
      bar: cell.querySelector('.jp-OutputArea-output .widget-hprogress') !== null,
      widgets: cell.querySelectorAll('.jp-OutputArea-output .jupyter-widgets').length,
      tables: cell.querySelectorAll('.jp-OutputArea-output table').length,
    };
  });
}""".replace("__PANEL__", PANEL)

KERNEL_IDLE = ("() => window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel?.status"
               " === 'idle'")

# Run code in the notebook's kernel outside the notebook (its outputs do not go into any cell).
KERNEL_EXEC = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, silent: false, store_history: false});
  let out = '', err = '';
  future.onIOPub = msg => {
    if (msg.header.msg_type === 'stream') out += msg.content.text;
    if (msg.header.msg_type === 'error') err += msg.content.ename + ': ' + msg.content.evalue;
  };
  await future.done;
  return {out, err};
}"""
# The kernel's own table: what each transcript cell must show, whole.
DF_TEXTS = ("print(__import__('json').dumps({'source': [str(s) for s in df['source']], "
            "'text': [None if t is None else str(t) for t in df['text']]}))")

SAVE = """async () => {
  await window.jupyterapp.commands.execute('docmanager:save');
  return window.jupyterapp.shell.currentWidget.context.model.dirty;
}"""
SHUTDOWN = "async () => { await window.jupyterapp.shell.currentWidget.sessionContext.shutdown(); }"

# The last table in cell ``index``, as the reader sees it: column names, and for the ``text``
# column each cell's text, computed style, whether its content overflows it, and whether it lies
# inside what its scrolling ancestors show (visible without scrolling sideways).
TABLE = """([index]) => {
  const cell = __PANEL__.querySelectorAll('.jp-Notebook .jp-Cell')[index];
  const tables = [...cell.querySelectorAll('.jp-OutputArea-output table')];
  const table = tables[tables.length - 1];
  if (!table) return null;
  const columns = [...table.querySelector('thead tr').querySelectorAll('th')].slice(1)
    .map(th => th.textContent.trim());
  const col = columns.indexOf('text');
  const clipOf = el => {  // the part of the page el's overflow-clipping ancestors leave visible
    let left = -Infinity, right = Infinity;
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') {
        const r = a.getBoundingClientRect();
        left = Math.max(left, r.left); right = Math.min(right, r.right);
      }
    }
    return {left, right};
  };
  const rows = [...table.querySelectorAll('tbody tr')].map(tr => {
    const td = col >= 0 ? tr.querySelectorAll('td')[col] : null;
    if (!td) return null;
    const cs = getComputedStyle(td), r = td.getBoundingClientRect(), clip = clipOf(td);
    return {
      text: td.textContent, align: cs.textAlign, whiteSpace: cs.whiteSpace, wordBreak: cs.wordBreak,
      left: r.left, right: r.right, width: r.width, height: r.height,
      clipLeft: clip.left, clipRight: clip.right,
      overflows: td.scrollWidth > td.clientWidth + 1,
    };
  });
  const area = cell.querySelector('.jp-OutputArea').getBoundingClientRect();
  return {columns, rows, tableWidth: table.getBoundingClientRect().width, areaWidth: area.width,
          pandasDefault: !table.hasAttribute('style')};
}""".replace("__PANEL__", PANEL)

# Height of the page that shows the whole notebook, down to its last cell, without scrolling it
# (the notebook's own scrollHeight would not do: it leaves room to scroll past the end, as much as
# the page is tall).
WHOLE_HEIGHT = """() => {
  const panel = __PANEL__;
  const outer = panel.querySelector('.jp-WindowedPanel-outer');
  outer.scrollTop = 0;
  const cells = panel.querySelectorAll('.jp-Notebook .jp-Cell');
  const bottom = cells[cells.length - 1].getBoundingClientRect().bottom - outer.getBoundingClientRect().top;
  return Math.ceil(window.innerHeight - outer.clientHeight + bottom + 24);
}""".replace("__PANEL__", PANEL)


@dataclass
class Run:
    """One notebook: what the browser showed, the saved file, the kernel's own table."""

    name: str
    cells: list  # the notebook's cells (nbformat), for indexes and sources
    transcribe: int  # index of its first %voxtral_transcribe cell
    live: list[dict] = field(default_factory=list)  # that cell's live view while it ran: t, header, bar
    final: list[dict] = field(default_factory=list)  # every cell once all finished
    table: dict | None = None  # the transcript table, measured in the DOM
    expected: dict | None = None  # the kernel's df: source, text
    saved: object = None  # the notebook file saved by JupyterLab, read back
    shots: dict[str, Path] = field(default_factory=dict)
    progress_shot: list[str] = field(default_factory=list)  # the header when each progress picture was taken
    timings: dict[str, float] = field(default_factory=dict)
    failure: str = ""


def _copy_notebooks(root: Path) -> dict[str, Run]:
    runs = {}
    for name in NOTEBOOKS:
        src = REPO / "notebooks" / f"{name}.ipynb"
        shutil.copyfile(src, root / src.name)  # byte for byte: the project's notebook as shipped
        cells = nbformat.read(src, as_version=4).cells
        index = next(i for i, c in enumerate(cells)
                     if c.cell_type == "code" and c.source.lstrip().startswith("%voxtral_transcribe"))
        runs[name] = Run(name, cells, index)
    return runs


def _launch(playwright, chromium: str):
    if not Path(chromium).exists():
        pytest.fail(f"Chromium is not installed at {chromium}: apt-get install chromium "
                    "(./run.sh test does it), or set VOXMAGIC_CHROMIUM to its path", pytrace=False)
    try:
        return playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=60_000)
    except Exception as exc:  # noqa: BLE001 - any launch failure is the reason the tests fail
        pytest.fail(f"Chromium at {chromium} did not start: {exc}", pytrace=False)


def _done(state: dict) -> bool:
    return re.fullmatch(r"\[\d+\]:", state["prompt"]) is not None


def _is_live_progress(header: str | None) -> bool:
    return bool(header) and re.search(r"\d+%", header) is not None and "in flight" in header


class _Driver:
    """Runs one notebook in a page of its own and records what the page showed."""

    def __init__(self, page, lab, run: Run, folder: Path):
        self.page, self.lab, self.run, self.folder = page, lab, run, folder
        self.t0 = time.monotonic()
        self.cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")

    def mark(self, event: str) -> None:
        self.run.timings[event] = time.monotonic() - self.t0

    def shot(self, name: str, **kwargs) -> None:
        path = self.folder / name
        self.page.screenshot(path=str(path), **kwargs)
        self.run.shots[name] = path

    def states(self) -> list[dict]:
        states = self.page.evaluate(CELLS)
        if states and len(states) != len(self.run.cells):
            raise AssertionError(f"the page shows {len(states)} cells, the notebook has {len(self.run.cells)}")
        return states

    def drive(self) -> None:
        page, run = self.page, self.run
        page.goto(self.lab.notebook_url(f"{run.name}.ipynb", workspace=run.name), wait_until="domcontentloaded",
                  timeout=60_000)
        self.cells.first.wait_for(timeout=60_000)
        page.wait_for_function(KERNEL_IDLE, timeout=60_000)
        self.mark("kernel ready")
        page.keyboard.press("Control+b")  # fold the file browser away: more room for the outputs
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        page.mouse.move(VIEWPORT["width"] // 2, VIEWPORT["height"] - 4)  # on the status bar: no hover effects
        self.watch()
        self.mark("all cells finished")
        self.measure()

    def watch(self) -> None:
        """Poll until every code cell has run; record the transcribe cell's live view meanwhile."""
        run, started, scrolled = self.run, False, False
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            states = self.states()
            code = [s for s in states if s["code"]]
            if states and not started and any(s["prompt"] == "[*]:" for s in code):
                started = True  # Run All has cleared the saved outputs and queued every cell
                self.mark("run all started")
            cell = states[run.transcribe] if states else None
            if cell and cell["prompt"] == "[*]:" and cell["widgets"]:
                if not run.live:
                    self.mark("transcribe started")
                if not scrolled:
                    self.cells.nth(run.transcribe).scroll_into_view_if_needed()
                    scrolled = True
                if not run.live or run.live[-1]["header"] != cell["header"]:
                    run.live.append(dict(cell, t=time.monotonic() - self.t0))
                if run.name == "batch" and self._progress_shot_due(cell["header"]):
                    self.shot(PROGRESS_SHOT)
                    run.progress_shot.append(cell["header"])
            if started and code and all(_done(s) for s in code) and self.page.evaluate(KERNEL_IDLE):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{run.name}: not finished after {RUN_TIMEOUT:.0f} s; cells: "
                                     + ", ".join(s["prompt"] for s in code))
            time.sleep(0.08)
        # the live views are replaced by their results through display ids: give the last updates time
        deadline = time.monotonic() + 20
        while True:
            run.final = self.states()
            if not sum(s["widgets"] for s in run.final) and run.final[run.transcribe]["tables"]:
                return
            if time.monotonic() > deadline:
                return  # the tests say what is left
            time.sleep(0.1)

    def _progress_shot_due(self, header: str | None) -> bool:
        """A first picture as soon as the header shows progress (the batch may be quick), then a
        better one once it is at least 40% through, with the bar and recent files filled in."""
        if not _is_live_progress(header):
            return False
        if not self.run.progress_shot:
            return True
        percent = int(re.search(r"(\d+)%", header).group(1))
        return len(self.run.progress_shot) == 1 and 40 <= percent < 100

    def measure(self) -> None:
        page, run = self.page, self.run
        run.table = page.evaluate(TABLE, [run.transcribe])
        # the table with what is above it (the summary line), in a page tall enough to hold them
        area = self.cells.nth(run.transcribe).locator(".jp-OutputArea")
        height = area.evaluate("e => e.getBoundingClientRect().height")
        page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], int(height) + 160)})
        page.wait_for_timeout(300)
        area.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
        self.shot(f"{run.name}-table.png")
        # the whole notebook: a page as tall as it (content-visibility renders what is on screen)
        for _ in range(4):  # cells off screen have estimated heights until they are drawn
            whole = min(page.evaluate(WHOLE_HEIGHT), 20_000)
            if abs(whole - page.viewport_size["height"]) <= 2:
                break
            page.set_viewport_size({"width": VIEWPORT["width"], "height": whole})
            page.wait_for_timeout(500)
        self.shot(f"{run.name}-full.png")
        page.set_viewport_size(VIEWPORT)
        dirty = page.evaluate(SAVE)
        assert not dirty, f"{run.name}: JupyterLab did not save the notebook"
        run.saved = nbformat.read(self.lab.root / f"{run.name}.ipynb", as_version=4)
        result = page.evaluate(KERNEL_EXEC, DF_TEXTS)
        assert not result["err"], f"{run.name}: reading df in the kernel failed: {result['err']}"
        run.expected = json.loads(result["out"])
        self.mark("measured and saved")
        page.evaluate(SHUTDOWN)  # its local server and kernel go; the next notebook has the CPU


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory) -> dict[str, Run]:
    from playwright.sync_api import sync_playwright

    root, home = tmp_path_factory.mktemp("nb-root"), tmp_path_factory.mktemp("nb-home")
    result = _copy_notebooks(root)
    folder = screenshot_dir("notebooks")
    summary = register_screenshot_summary(request.config, folder, "voxmagic-notebook-screenshots",
                                          "screenshots of the project's notebooks in JupyterLab")
    env = offline_env(home)
    assert "OPENROUTER_API_KEY" not in env and env["VOXMAGIC_OFFLINE"] == "1"
    t0 = time.monotonic()
    lab = start_jupyterlab(root, env, home, extra_args=("--LabApp.expose_app_in_browser=True",))
    started = time.monotonic() - t0
    try:
        with sync_playwright() as playwright:
            browser = _launch(playwright, os.environ.get("VOXMAGIC_CHROMIUM", "/usr/bin/chromium"))
            try:
                for name, run in result.items():
                    page = browser.new_page(viewport=VIEWPORT)
                    driver = _Driver(page, lab, run, folder)
                    try:
                        driver.drive()
                    except Exception as exc:  # noqa: BLE001 - recorded: that notebook's tests fail with it
                        try:
                            driver.shot(f"{name}-failure.png")
                        except Exception:  # noqa: BLE001 - the page may be gone; report the first error
                            pass
                        run.failure = (f"{type(exc).__name__}: {exc}\nscreenshot: {folder / f'{name}-failure.png'}\n"
                                       f"JupyterLab log tail:\n{lab.log_tail(25)}")
                    finally:
                        page.close()
            finally:
                browser.close()
    finally:
        stop_jupyterlab(lab)
    total = time.monotonic() - t0
    for run in result.values():  # what the page showed, next to the screenshots
        stderr = [{"cell": i, "text": o.get("text", "")} for i, c in enumerate(run.saved.cells if run.saved else [])
                  for o in c.get("outputs", []) if o.output_type == "stream" and o.name == "stderr"]
        seen = {"timings": run.timings, "live": run.live, "progress_shot": run.progress_shot, "table": run.table,
                "stderr": stderr}
        (folder / f"{run.name}-seen.json").write_text(json.dumps(seen, indent=1, ensure_ascii=False))
    summary.notes.append(f"JupyterLab up in {started:.1f} s; both notebooks done in {total:.1f} s in all")
    for run in result.values():
        summary.notes.append(f"{run.name}: " + ", ".join(f"{k} {v:.1f} s" for k, v in run.timings.items()))
        if run.live:
            summary.notes.append(f"{run.name}: live headers seen: {len(run.live)}, "
                                 f"first {run.live[0]['header']!r}, last {run.live[-1]['header']!r}")
        if run.progress_shot:
            summary.notes.append(f"{run.name}: {PROGRESS_SHOT} taken at {run.progress_shot[-1]!r}")
    return result


def _ran(runs: dict[str, Run], name: str) -> Run:
    run = runs[name]
    if run.failure:
        pytest.fail(f"{name}.ipynb did not run to the end in JupyterLab:\n{run.failure}", pytrace=False)
    return run


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_cell_ran_without_an_error(runs, name):
    run = _ran(runs, name)
    code = [c for c in run.saved.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # one fresh kernel, in order
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(run.saved.cells)
              for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"cells that raised: {errors}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_widget_is_left_in_the_output_area(runs, name):
    run = _ran(runs, name)
    on_screen = {i: s["widgets"] for i, s in enumerate(run.final) if s["widgets"]}
    assert not on_screen, f"live views still on screen (cell index → widgets): {on_screen}"
    saved = [i for i, c in enumerate(run.saved.cells) for o in c.get("outputs", [])
             if WIDGET_MIME in o.get("data", {})]
    assert not saved, f"widget views saved in the outputs of cells {saved}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_transcript_table_starts_with_source_and_text(runs, name):
    table = _ran(runs, name).table
    assert table is not None, "no table in the %voxtral_transcribe cell"
    assert table["columns"][:2] == ["source", "text"], f"the table's columns are {table['columns']}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_transcript_text_is_left_aligned_and_wraps(runs, name):
    table = _ran(runs, name).table
    assert table is not None and "text" in table["columns"], table
    bad = [(r, cell["align"], cell["whiteSpace"]) for r, cell in enumerate(table["rows"])
           if cell["align"] not in ("left", "start")
           or cell["whiteSpace"] not in ("pre-wrap", "normal", "pre-line", "break-spaces")]
    assert not bad, f"text cells (row, text-align, white-space) not left-aligned and wrapping: {bad}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_transcript_text_is_shown_whole(runs, name):
    run = _ran(runs, name)
    assert run.table is not None and "text" in run.table["columns"], run.table
    shown = [cell["text"] for cell in run.table["rows"]]
    expected = [t or "" for t in run.expected["text"]]
    assert len(shown) == len(expected), f"{len(shown)} rows shown, df has {len(expected)}"
    cut = [(r, s, e) for r, (s, e) in enumerate(zip(shown, expected, strict=True)) if s != e]
    assert not cut, "text cells that are not the whole transcript (row, shown, df's text):\n" + "\n".join(
        f"  {r}: {s!r}\n     {e!r}" for r, s, e in cut)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_transcript_text_fits_on_screen(runs, name):
    """Nothing of a transcript is hidden: no cell's content overflows it, and the text column lies
    inside the visible part of the output (no sideways scrolling needed to read it)."""
    table = _ran(runs, name).table
    assert table is not None and "text" in table["columns"], table
    overflow = [r for r, cell in enumerate(table["rows"]) if cell["overflows"]]
    assert not overflow, f"text overflows its cell in rows {overflow}"
    hidden = [(r, round(cell["left"]), round(cell["right"]), round(cell["clipLeft"]), round(cell["clipRight"]))
              for r, cell in enumerate(table["rows"])
              if cell["right"] > cell["clipRight"] + 1 or cell["left"] < cell["clipLeft"] - 1]
    assert not hidden, f"text cells outside the visible output (row, left, right, visible from, to): {hidden}"


def test_the_batch_progress_header_ticks_while_the_cell_runs(runs):
    run = _ran(runs, "batch")
    headers = [s["header"] for s in run.live if s["header"]]
    assert len(set(headers)) >= 2, f"the live header did not change while the cell ran: {headers}"
    assert any(_is_live_progress(h) for h in headers), f"no header with a percentage and 'in flight': {headers}"
    assert any(s["bar"] for s in run.live), "no progress bar in the live view"
    assert run.progress_shot and run.shots[PROGRESS_SHOT].exists(), "no picture of the live progress view"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_screenshots_of_the_tables_and_the_whole_notebook(runs, name):
    run = _ran(runs, name)
    for shot in (f"{name}-table.png", f"{name}-full.png"):
        assert run.shots.get(shot) and run.shots[shot].stat().st_size > 10_000, f"missing or empty: {shot}"
