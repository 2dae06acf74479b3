"""The main job: run the quickstart notebook (or transcribe the bundled samples) and show the cost.

With ``OPENROUTER_API_KEY`` set it asks the real Voxtral on OpenRouter; without one it uses
voxmagic's local OpenRouter-compatible server on 127.0.0.1 so the whole path runs offline.
"""

from __future__ import annotations

import re
import sys
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .providers import KEY_ENV


def sample_paths() -> list[Path]:
    """The audio files shipped with the package (short espeak-ng speech, English and French)."""
    folder = resources.files("voxmagic") / "samples"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".mp3"))


def meeting_path() -> Path:
    """A 28 s meeting of two voices (espeak-ng) with one long pause: see samples/meeting/README.md."""
    return Path(str(resources.files("voxmagic") / "samples" / "meeting" / "meeting.mp3"))


def run_notebook(path: str | Path, out_dir: str | Path = "build") -> int:
    """Execute a notebook in a real kernel, print what each cell showed, save the executed copy."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise ConfigError(f"no notebook at {path}: name an .ipynb file, e.g. notebooks/quickstart.ipynb") from None
    except (UnicodeDecodeError, ValueError) as exc:  # not a notebook (an audio file, broken JSON)
        raise ConfigError(f"{path} is not a notebook ({type(exc).__name__}): name an .ipynb file") from None
    # the live views are replaced by static results when they end: their widget state is dead weight
    for cell in nb.cells:  # a cell that never runs (after a failure) shows nothing, not the saved copy's outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=False,
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    status = 0
    try:
        client.execute()
    except CellExecutionError as exc:
        status = 1
        last = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()[-1]  # no terminal colour codes
        print(f"a cell failed: {last}")
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.get("execution_count"):
            _print_cell(cell)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    saved = Path(out_dir) / path.name
    nbformat.write(nb, saved)
    print(f"\nexecuted notebook saved to {saved}")
    return status


def _print_cell(cell: Any) -> None:
    """A cell as a reader of the terminal wants it: the code without test markers, what it showed
    as text (a player as ``[audio player]``, not an object's repr)."""
    source = "\n".join(line for line in cell.source.splitlines() if not line.startswith("# NBVAL_"))
    print(f"\nIn [{cell.execution_count}]: " + source.replace("\n", "\n    "))
    for output in cell.outputs:
        data = output.get("data", {})
        text = output.get("text") or data.get("text/plain") or ""
        if output.output_type == "error":
            text = f"{output.ename}: {output.evalue}"
        elif "<audio" in data.get("text/html", ""):
            text = "[audio player]"
        if text.strip():
            print(text.rstrip())


def offline_options(stack: ExitStack, *, force: bool = False) -> dict:
    """Without a key (or when ``force``d): start voxmagic's local server for the length of
    ``stack``, say so, and return the options that point a call at it; else ``{}``."""
    from .settings import Settings

    if not force and Settings.resolve().api_key:
        return {}
    from .testing import local_server_class

    server = stack.enter_context(local_server_class()(latency=0.3, token_rate=200))
    print(f"{KEY_ENV} is not set: using voxmagic's local server at {server.base_url}; its answers "
          "describe the audio it received (duration, digest) instead of the words.", file=sys.stderr)  # fmt: skip
    return {"base_url": server.base_url, "api_key": "local-demo-key"}


def main(notebook: str | None = None) -> int:
    if notebook:
        return run_notebook(notebook)

    from . import api

    with ExitStack() as stack:
        options = offline_options(stack)
        if not options:
            from .settings import Settings

            print(f"Using {Settings.resolve().base_url} (an API key is set).")
        df = api.transcribe(sample_paths(), **options)
    from .frames import as_table, table_text

    shown = df[["source", "text", "duration_s", "cost_usd", "error"]].assign(
        source=df["source"].map(lambda s: Path(s).name)
    )
    print(table_text(as_table(shown)))  # whole texts, wrapped; times and money as everywhere else
    print(f"\nthis run ${df['cost_usd'].sum():.6f} · {api.ledger}")
    return 1 if df["error"].notna().any() else 0
