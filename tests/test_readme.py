"""Every example in README.md runs, top to bottom, against the local server — so none can rot.

The README reads like one notebook session, so it runs as one: every fenced ```python block is a
cell of one real ``InteractiveShell`` (magics and plain Python alike), in README order, so a block
sees the names earlier blocks defined. Each block is its own test (``readme-L<line>``). The
``python -m voxmagic ...`` lines of ```bash blocks run as subprocesses in the same folder; the rest
of a bash block is set-up on the reader's machine (``pip install``, ``export``, ``./run.sh``,
starting a server) and is not run.

The world the examples assume is made in a temporary folder the session works in: every audio
file a block names is synthesised there (a glob such as ``calls/*.mp3`` gets two files, a folder
such as ``interviews/`` two files; a name with ``missing`` in it is left out, as the README means
it to be); three local servers stand in for the providers (OpenRouter, Mistral, a self-hosted
vLLM) with their keys in the environment; ``VOXMAGIC_BASE_URL`` points at the one of the provider
a block names (``--provider mistral``, ``provider="openai-compatible"``), and a base URL on this
machine written in a block (``http://localhost:8000/v1``: the reader's own vLLM) is pointed at the
local server of that kind. A socket guard refuses, and fails the block for, any connection or name
lookup beyond this machine — in this process and in the subprocesses.

A block fails when it raises, prints a ``UsageError`` or a traceback, or leaves a table with error
rows (other than for a ``missing`` file). A plain-Python block goes on after a failing statement,
so one test reports every broken line of its block. Names the README uses but never defines are
not defined here: the block fails with the ``NameError``, which is the README's bug to fix.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

README = Path(__file__).resolve().parent.parent / "README.md"

# What a reader obviously has that no README block can define (their own things). Empty on
# purpose: a name a block uses but no block defines is reported as a README bug, not papered over.
GIVEN: dict[str, object] = {}

PYTHON = {"python", "py", "python3", "ipython", "ipython3", "pycon"}
SHELL = {"bash", "sh", "shell", "console", "zsh", "shell-session"}
AUDIO_SUFFIXES = ("mp3", "m4a", "flac", "wav", "ogg", "opus", "aac", "webm", "mp4", "mkv")
KEYS = {"OPENROUTER_API_KEY": "sk-or-v1-readme-example", "MISTRAL_API_KEY": "mistral-readme-example"}
CLI = re.compile(r"^\s*python3?\s+-m\s+voxmagic(\s|$)")


# --- the README's blocks ------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    lang: str  # first word of the info string, lower case ("" when none)
    source: str


def fenced_blocks(text: str) -> list[Block]:
    """CommonMark fences: ``` or ~~~ (3 or more), indented at most 3 spaces, closed by a fence of
    the same character at least as long; an unclosed fence runs to the end of the document."""
    opening = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = opening.match(lines[i])
        if not m or (m.group(2)[0] == "`" and "`" in m.group(3)):
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3).strip()
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body, j = [], i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(re.sub(rf"^ {{0,{indent}}}", "", lines[j]))
            j += 1
        lang = info.split()[0].strip("{}.").lower() if info else ""
        blocks.append(Block(i + 1, lang, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


@dataclass(frozen=True)
class Step:
    """One test: a python block, or one ``python -m voxmagic`` command of a bash block."""

    id: str
    kind: str  # "python" or "cli"
    line: int
    source: str

    @property
    def first_line(self) -> str:
        return next((s.strip() for s in self.source.splitlines() if s.strip()), "")


def steps(text: str) -> list[Step]:
    found = []
    for block in fenced_blocks(text):
        if block.lang in PYTHON:
            found.append(Step(f"readme-L{block.line}", "python", block.line, block.source))
        elif block.lang in SHELL:
            for offset, command in _commands(block.source):
                if CLI.match(command):
                    line = block.line + 1 + offset
                    found.append(Step(f"readme-L{line}", "cli", line, command))
    return found


def _commands(source: str) -> list[tuple[int, str]]:
    """Shell lines joined over ``\\`` continuations, with their offset in the block; a ``$ ``
    prompt is dropped."""
    out, pending, start = [], "", 0
    for n, raw in enumerate(source.splitlines()):
        if not pending:
            start = n
        line = re.sub(r"^\s*\$\s+", "", raw) if not pending else raw
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


STEPS = steps(README.read_text(encoding="utf-8"))


# --- the world the examples assume ---------------------------------------------------------------

_AUDIO = re.compile(
    r"(?<![\w/.:*-])((?:[\w*.-]+/)*[\w*.-]*\.(?:" + "|".join(AUDIO_SUFFIXES) + r"))(?![\w/])", re.IGNORECASE
)
_FOLDER = re.compile(r"(?<![\w/.:-])([A-Za-z_][\w.-]*/)(?=[\s\"',\])]|$)")


def audio_names(steps: list[Step]) -> tuple[set[str], set[str]]:
    """(file names and globs, folder names) the blocks use as audio; URLs are not names."""
    names, folders = set(), set()
    for step in steps:
        text = re.sub(r"\b[a-z][a-z0-9+.-]*://\S+", " ", step.source)
        names.update(_AUDIO.findall(text))
        magic_lines = [ln for ln in text.splitlines() if step.kind == "cli" or ln.lstrip().startswith("%")]
        for line in magic_lines:
            folders.update(_FOLDER.findall(line))
    return names, folders


def files_for(name: str) -> list[str]:
    """A name as files: itself, or two files matching a glob."""
    if "*" not in name:
        return [name]
    parts = [p for p in name.split("/") if p != "**"]
    stem = (parts[-2] if len(parts) > 1 else "clip").rstrip("s") or "clip"
    return ["/".join(p.replace("*", f"{stem}-{i}") if "*" in p else p for p in parts) for i in (1, 2)]


def make_world(root: Path, steps: list[Step]) -> list[str]:
    import voxmagic
    from voxmagic.demo import meeting_path
    from voxmagic.testing.synth import tone_file, write_audio

    names, folders = audio_names(steps)
    names |= {f"{folder}*.mp3" for folder in folders}
    paths = sorted({path for name in names for path in files_for(name)})
    made = []
    for n, rel in enumerate(paths):
        if "missing" in Path(rel).stem.lower():
            continue  # the README means this one not to exist
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            pass
        elif "meeting" in path.stem.lower():  # speech, two voices, a long pause: --diarize, --trim-silence
            write_audio(path, voxmagic.as_source(meeting_path()).decode().samples[None, :] / np.float32(32768), 16_000)
        else:
            tone_file(path, 1.0 + 0.25 * (n % 4), freq=220.0 + 40 * n)
        made.append(rel)
    return made


# --- nothing leaves this machine ---------------------------------------------------------------


def _guard(report):
    """Refuse name lookups and connections beyond this machine; ``report(host)`` hears of each.
    Returns a function that takes the guard off. (Also run in subprocesses, from sitecustomize.)"""
    import ipaddress
    import socket

    def local(host):
        if host is None:
            return True
        host = (host.decode() if isinstance(host, bytes) else str(host)).split("%")[0].strip("[]")
        if host in ("", "localhost") or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def refuse(host):
        host = host.decode() if isinstance(host, bytes) else str(host)
        report(host)
        raise ConnectionRefusedError(f"test_readme: no connection beyond this machine ({host})")

    real = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex

    def getaddrinfo(host, *args, **kwargs):
        if not local(host):
            refuse(host)
        return real[0](host, *args, **kwargs)

    def check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not local(address[0]):
            refuse(address[0])

    def connect(self, address):
        check(self, address)
        return real[1](self, address)

    def connect_ex(self, address):
        check(self, address)
        return real[2](self, address)

    socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex = getaddrinfo, connect, connect_ex

    def undo():
        socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex = real

    return undo


_SITECUSTOMIZE = (
    "import sys\n"
    + textwrap.dedent(inspect.getsource(_guard))
    + "_guard(lambda host: sys.stderr.write(f'test_readme blocked a connection to {host}\\n'))\n"
)


# --- the session -----------------------------------------------------------------------------


@dataclass
class Readme:
    ip: InteractiveShell
    root: Path
    servers: dict  # provider → LocalServer
    blocked: list[str]
    done: set[str] = field(default_factory=set)

    def provider_of(self, source: str) -> str:
        m = re.search(r"--provider[ =]+['\"]?([\w-]+)|provider\s*=\s*['\"]([\w-]+)['\"]", source)
        name = (m.group(1) or m.group(2)) if m else "openrouter"
        return name if name in self.servers else "openrouter"

    def localise(self, source: str, provider: str) -> str:
        """A base URL on this machine with a port of its own (the reader's vLLM) → our server of
        that kind; URLs beyond this machine are left for the guard to refuse."""

        def swap(m: re.Match) -> str:
            kind = provider if provider != "openrouter" else _provider_for_url(m.group(0))
            return self.servers[kind].base_url

        return re.sub(r"https?://(?:localhost|127\.0\.0\.1|\[::1\]):\d+(?:/[\w./-]*)?(?=[\s\"')]|$)", swap, source)

    def run(self, step: Step) -> list[str]:
        """Run one step in the session; returns what went wrong (empty when all is well)."""
        self.done.add(step.id)
        provider = self.provider_of(step.source)
        os.environ["VOXMAGIC_BASE_URL"] = self.servers[provider].base_url
        before = len(self.blocked)
        source = self.localise(step.source, provider)
        problems = self._run_cli(source) if step.kind == "cli" else self._run_python(source, step.line)
        problems += [f"tried to reach {host}, beyond this machine" for host in self.blocked[before:]]
        return problems

    def _run_cli(self, command: str) -> list[str]:
        guard = self.root.parent / "guard"
        guard.mkdir(exist_ok=True)
        (guard / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(guard), os.environ.get("PYTHONPATH")])),
        }
        proc = subprocess.run(
            ["bash", "-c", command], cwd=self.root, env=env, capture_output=True, text=True, timeout=120
        )
        problems = []
        for line in proc.stderr.splitlines():
            if "test_readme blocked a connection to" in line:
                self.blocked.append(line.rsplit(" ", 1)[-1])
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
            problems.append(f"exit status {proc.returncode}: " + " | ".join(tail))
        elif "Traceback (most recent call last)" in proc.stderr:
            problems.append("printed a traceback: " + proc.stderr.strip().splitlines()[-1])
        return problems

    def _run_python(self, source: str, fence: int) -> list[str]:
        problems, pending, offset = [], source, 0
        while pending.strip():
            frames = _frames(self.ip.user_ns)
            with capture_output() as cap:
                result = self.ip.run_cell(pending)
            printed = cap.stdout + cap.stderr
            error = result.error_before_exec or result.error_in_exec
            if error is not None:
                problems.append(_describe(error, source, offset, fence))
            elif re.search(r"^UsageError\b|Traceback \(most recent call last\)", printed, re.MULTILINE):
                problems.append("printed: " + _first_error_line(printed))
            problems += _error_rows(self.ip.user_ns, frames, result.result)
            pending, offset = _rest_after(self.ip, source, offset, error) if error is not None else ("", 0)
        return problems


def _provider_for_url(url: str) -> str:
    return "openrouter" if url.rstrip("/").endswith("/api/v1") else "openai-compatible"


def _describe(error: BaseException, block: str, offset: int, fence: int) -> str:
    """The error, after the README line it came from (``fence``: the line of the block's fence)."""
    line = _failing_line(error, offset)
    lines = block.splitlines()
    where = f"line {fence + line} `{lines[line - 1].strip()}`: " if line and line <= len(lines) else ""
    return f"{where}{type(error).__name__}: {error}"


def _failing_line(error: BaseException, offset: int) -> int | None:
    """The line of the block (1-based) the error came from: the cell's own frame in the traceback
    (line magics keep their lines when IPython turns them into calls)."""
    if isinstance(error, SyntaxError):
        return None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "<module>":
            return offset + tb.tb_lineno
        tb = tb.tb_next
    return None


def _first_error_line(printed: str) -> str:
    lines = [ln for ln in printed.splitlines() if ln.strip()]
    usage = [ln for ln in lines if ln.startswith("UsageError")]
    return (usage or lines[-1:] or [""])[0]


def _rest_after(ip: InteractiveShell, block: str, offset: int, error: BaseException) -> tuple[str, int]:
    """What a block holds after the top-level statement that raised, so the rest is tried too,
    and where that rest starts; ("", 0) when it cannot be told (a cell magic, a syntax error, the
    last statement). ``offset``: the line of the block where the cell that raised began."""
    if block.lstrip().startswith("%%") or isinstance(error, SyntaxError):
        return "", 0
    python = ip.transform_cell(block)  # line magics become one call each, on their own line
    try:
        starts = [
            min([s.lineno] + [d.lineno for d in getattr(s, "decorator_list", [])]) for s in ast.parse(python).body
        ]
    except SyntaxError:
        return "", 0
    line = _failing_line(error, offset)
    later = [start for start in starts if line is not None and start > line]
    if not later:
        return "", 0
    return "\n".join(python.splitlines()[later[0] - 1 :]) + "\n", later[0] - 1


def _frames(ns: dict) -> dict[str, int]:
    import pandas as pd

    return {k: id(v) for k, v in ns.items() if isinstance(v, pd.DataFrame)}


def _error_rows(ns: dict, before: dict[str, int], shown: object) -> list[str]:
    """Tables the block made or replaced whose rows failed — for files that exist."""
    import pandas as pd

    tables = {k: v for k, v in ns.items() if isinstance(v, pd.DataFrame) and before.get(k) != id(v)}
    if isinstance(shown, pd.DataFrame):
        tables.setdefault("(displayed)", shown)
    problems = []
    for name, df in tables.items():
        if (name.startswith("_") and name != "_voxtral_df") or not {"source", "error"} <= set(df.columns):
            continue
        failed = df[df["error"].notna() & ~df["source"].astype(str).str.contains("missing", case=False)]
        if len(failed):
            row = failed.iloc[0]
            problems.append(f"{name}: {len(failed)} of {len(df)} rows failed, e.g. {row['source']}: {row['error']}")
    return problems


@pytest.fixture(autouse=True)
def _isolated_history():
    """The README is one session: the plugin's reset of history, cache, ledger and budget before
    every test is replaced by one reset for the module (``readme`` below)."""
    yield


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    from voxmagic.testing.server import LocalServer

    base = tmp_path_factory.mktemp("readme")
    root = base / "notebook"
    root.mkdir()
    blocked: list[str] = []
    with (
        pytest.MonkeyPatch.context() as mp,
        LocalServer(latency=0.0, token_rate=0.0) as openrouter,
        LocalServer(latency=0.0, token_rate=0.0, dialect="mistral") as mistral,
        LocalServer(latency=0.0, token_rate=0.0, dialect="vllm") as vllm,
    ):
        for name, value in {**KEYS, "VOXMAGIC_HISTORY": str(base / "history.db"), "VOXMAGIC_OFFLINE": "1"}.items():
            mp.setenv(name, value)
        for name in ("VOXMAGIC_PROVIDER", "VOXMAGIC_MODEL", "OPENAI_API_KEY"):
            mp.delenv(name, raising=False)
        mp.setenv("VOXMAGIC_BASE_URL", openrouter.base_url)
        mp.chdir(root)
        make_world(root, STEPS)
        ip = InteractiveShell.instance()
        names = set(ip.user_ns)
        undo = _guard(blocked.append)
        try:
            fresh_session(ip)
            ip.user_ns.update(GIVEN)
            servers = {"openrouter": openrouter, "mistral": mistral, "openai-compatible": vllm}
            yield Readme(ip, root, servers, blocked)
        finally:
            undo()
            fresh_session(ip)
            for name in set(ip.user_ns) - names:
                ip.user_ns.pop(name, None)


def fresh_session(ip: InteractiveShell) -> None:
    """No voxmagic loaded (the README's first block loads it), no %config of it, and an empty
    history, cache, cost ledger and price list, with no budget."""
    from voxmagic import prices
    from voxmagic.runner import ledger, store

    if "voxmagic" in ip.extension_manager.loaded:
        ip.run_line_magic("unload_ext", "voxmagic")
    ip.config.pop("VoxtralMagics", None)
    store.use(None)
    prices.reset()
    ledger.reset()
    ledger.budget_usd = None


def test_the_readme_has_examples():
    assert any(step.kind == "python" for step in STEPS), "no ```python block found in README.md"


@pytest.mark.parametrize("step", STEPS, ids=[step.id for step in STEPS])
def test_readme_example(step, readme):
    # a block selected alone (-k) still runs after the blocks before it, as in the notebook
    for earlier in STEPS[: STEPS.index(step)]:
        if earlier.id not in readme.done:
            readme.run(earlier)
    problems = readme.run(step)
    assert not problems, f"README.md line {step.line} `{step.first_line}`:\n  " + "\n  ".join(problems)


def test_blocks_are_found_as_markdown_renders_them():
    text = (
        "intro\n"
        "```python\nx = 1\n```\n"
        "  ~~~~ Python title=a.py\n  y = 2\n  ~~~\n  ~~~~\n"  # indented, longer fence, a shorter one inside
        "```bash\n$ python -m voxmagic transcribe a.mp3 \\\n    --csv out.csv\npip install voxmagic\n```\n"
        "``` text ` not a fence\n"
        "````\nno language\n````\n"
        "```py\nz = 3\n"  # never closed: runs to the end
    )
    blocks = fenced_blocks(text)
    assert [(b.line, b.lang) for b in blocks] == [(2, "python"), (5, "python"), (9, "bash"), (15, ""), (18, "py")]
    assert blocks[1].source == "y = 2\n~~~\n" and blocks[4].source == "z = 3\n"
    found = steps(text)
    assert [(s.id, s.kind) for s in found] == [
        ("readme-L2", "python"),
        ("readme-L5", "python"),
        ("readme-L10", "cli"),
        ("readme-L18", "python"),
    ]
    assert found[2].source == "python -m voxmagic transcribe a.mp3      --csv out.csv"
