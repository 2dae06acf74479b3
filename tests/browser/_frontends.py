"""Helpers for the tests in real frontends: JupyterLab in Chromium, ``jupyter nbconvert --execute``,
terminal IPython.

Every frontend runs in its own process with the environment a user would have, pointed at a local
OpenRouter-compatible server that runs in the test process (so its request log is readable here).
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from voxmagic.testing._fake_answers import build_answer
from voxmagic.testing._fake_requests import ParsedRequest
from voxmagic.testing.synth import tone_file

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "browser-screenshots"

PROMPT = "What is said in this recording?"
NOTEBOOK_CELLS = [
    "%load_ext voxmagic",
    f"%%voxtral talk.mp3 -o ans\n{PROMPT}",
    "%voxtral_transcribe a.mp3 b.mp3 c.mp3 -o df",
    "df",
]
BATCH_FILES = ("a.mp3", "b.mp3", "c.mp3")


def write_notebook(root: Path, name: str = "live.ipynb") -> Path:
    """The notebook every frontend runs, next to its synthesised audio (2 s tones, mp3)."""
    tone_file(root / "talk.mp3", 2.0, freq=330.0)
    for k, name_ in enumerate(BATCH_FILES):
        tone_file(root / name_, 1.0 + 0.5 * k, freq=440.0 + 110 * k)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in NOTEBOOK_CELLS]
    path = root / name
    nbformat.write(nb, path)
    return path


def _private_env(home: Path) -> dict[str, str]:
    """This process's environment without any key, voxmagic setting or Jupyter/IPython state of
    the user's: a private history file and state dirs under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "IPYTHON", "VOXMAGIC_"))}
    env.pop("OPENROUTER_API_KEY", None)
    env.update(
        VOXMAGIC_HISTORY=str(home / "history.db"),
        JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
        JUPYTER_DATA_DIR=str(home / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"),
        IPYTHONDIR=str(home / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    return env


def frontend_env(server, home: Path) -> dict[str, str]:
    """What a user's shell would hold: the endpoint and a key (the local server's), a private
    history file, and Jupyter/IPython state dirs of its own so nothing of the user's leaks in."""
    return dict(_private_env(home), VOXMAGIC_BASE_URL=server.base_url, OPENROUTER_API_KEY="local-server-key")


def offline_env(home: Path) -> dict[str, str]:
    """A new user's shell with no key at all, for notebooks that start voxmagic's local server
    themselves (``voxmagic.testing.use_local_server()``): no ``OPENROUTER_API_KEY``, no endpoint,
    ``VOXMAGIC_OFFLINE=1`` (so a key in a ``.env`` file is never used), a private history file."""
    return dict(_private_env(home), VOXMAGIC_OFFLINE="1")


def chat_requests(server, prompt: str = PROMPT) -> list:
    """The server's log of chat requests whose user text contains ``prompt``."""
    return [r for r in server.requests if prompt in r.prompt]


def server_answer(rec, answer_tokens: int) -> str:
    """The answer the local server sent for a recorded request: its own deterministic model,
    applied to the audio it decoded and the prompt it received."""
    body = rec.body or {}
    stop = body.get("stop") or []
    req = ParsedRequest(model=body["model"], stream=bool(body.get("stream")), prompt=rec.prompt, system="",
                        text_tokens=0, audio=rec.audio, max_tokens=body.get("max_tokens"),
                        stop=[stop] if isinstance(stop, str) else list(stop))
    answer = build_answer(req, answer_tokens, rec.id)
    assert rec.completed and rec.tokens_sent == len(answer.pieces), "the server did not send the whole answer"
    return answer.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path
    proc: subprocess.Popen

    def notebook_url(self, name: str, workspace: str | None = None) -> str:
        """The notebook ``name`` in JupyterLab; with ``workspace``, in that (new) workspace, so
        that no tab of an earlier page is restored next to it."""
        lab = f"lab/workspaces/{workspace}" if workspace else "lab"
        return f"{self.url}/{lab}/tree/{name}?token={self.token}"

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log, lines)


def start_jupyterlab(root: Path, env: dict[str, str], home: Path, timeout: float = 90.0,
                     extra_args: tuple[str, ...] = ()) -> Lab:
    """JupyterLab on 127.0.0.1 and a free port, with a token, no browser, in its own process
    group; returns once ``/api/status`` answers. Announcements, update checks and the news
    prompt are off, and settings/workspaces live in ``home``, so no popup covers the notebook.
    ``extra_args`` go on its command line (e.g. ``--LabApp.expose_app_in_browser=True``)."""
    settings = home / "lab-settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port, token = free_port(), os.urandom(16).hex()
    log = home / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.open_browser=False", "--allow-root", "--LabApp.news_url=",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={home / 'lab-workspaces'}",
           *extra_args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, log, proc)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {proc.returncode} before answering; log tail:\n"
                        f"{lab.log_tail()}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{lab.url}/api/status?token={token}", timeout=2) as resp:
                if resp.status == 200:
                    return lab
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_jupyterlab(lab)
            pytest.fail(f"JupyterLab did not answer within {timeout:.0f} s; log tail:\n{lab.log_tail()}",
                        pytrace=False)
        time.sleep(0.1)


def stop_jupyterlab(lab: Lab) -> None:
    """SIGTERM to the server's process group (it shuts its kernels down), SIGKILL if it lingers.
    Kernels run in sessions of their own but exit by themselves once their parent is gone."""
    if lab.proc.poll() is None:
        try:
            os.killpg(lab.proc.pid, signal.SIGTERM)
            lab.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(lab.proc.pid, signal.SIGKILL)
            lab.proc.wait(timeout=5)
        except ProcessLookupError:
            pass
    try:  # anything left in the group (a stuck child)
        os.killpg(lab.proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def screenshot_dir(sub: str = "") -> Path:
    """``build/browser-screenshots`` of the repository (or its folder ``sub``, so that test
    modules keep their own), emptied of an earlier run's pictures."""
    folder = SCREENSHOTS / sub if sub else SCREENSHOTS
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


class ScreenshotSummary:
    """A pytest plugin naming a folder's screenshots at the end of the terminal report."""

    def __init__(self, folder: Path, title: str = "JupyterLab screenshots"):
        self.folder, self.title = folder, title
        self.notes: list[str] = []  # lines printed after the paths (timings, ...)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        shots = sorted(self.folder.glob("*.png"))
        terminalreporter.write_sep("-", self.title)
        if not shots:
            terminalreporter.write_line(f"{self.folder}: (none)")
        for line in [*map(str, shots), *self.notes]:
            terminalreporter.write_line(line)


def register_screenshot_summary(config, folder: Path, name: str,
                                title: str = "JupyterLab screenshots") -> ScreenshotSummary:
    """A :class:`ScreenshotSummary` for ``folder``, registered once per pytest run under ``name``."""
    plugin = config.pluginmanager.get_plugin(name)
    if plugin is None:
        plugin = ScreenshotSummary(folder, title)
        config.pluginmanager.register(plugin, name)
    return plugin


NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in view


def run_cell(page, index: int, timeout: float = 60.0) -> list[str]:
    """Select cell ``index`` (its prompt, so the notebook is in command mode), run it with
    Ctrl+Enter, and return the text of each of its outputs once its prompt shows a number again."""
    cell = page.locator(f"{NOTEBOOK} .jp-Notebook .jp-Cell").nth(index)
    before = cell.locator(".jp-InputArea-prompt").text_content()
    cell.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Control+Enter")
    deadline = time.monotonic() + timeout
    while True:
        prompt = cell.locator(".jp-InputArea-prompt").text_content().strip()
        if re.fullmatch(r"\[\d+\]:", prompt) and prompt != before.strip():
            return [o.strip() for o in cell.locator(".jp-OutputArea-output").all_text_contents()]
        assert time.monotonic() < deadline, f"cell {index} did not finish (prompt {prompt})"
        time.sleep(0.05)


CHROMIUM = os.environ.get("VOXMAGIC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]


@contextmanager
def lab_page(root: Path, home: Path, server, *, args: list[str], height: int, failure: str):
    """JupyterLab on ``root`` against ``server`` and a headless Chromium page (1280 × ``height``,
    launched with ``args``), both stopped after; an error in the block becomes an AssertionError
    with a screenshot (``SCREENSHOTS / failure``) and the end of JupyterLab's log."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium", pytrace=False)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    lab = start_jupyterlab(root, frontend_env(server, home), home)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args, timeout=60_000)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": height})
                try:
                    yield page, lab
                except Exception as exc:
                    page.screenshot(path=str(SCREENSHOTS / failure))
                    raise AssertionError(f"{exc}\nscreenshot: {SCREENSHOTS / failure}\n"
                                         f"JupyterLab log tail:\n{lab.log_tail(25)}") from exc
            finally:
                browser.close()
    finally:
        stop_jupyterlab(lab)
