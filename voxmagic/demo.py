"""The main job: transcribe the bundled samples and show what it cost.

With ``OPENROUTER_API_KEY`` set it asks the real Voxtral on OpenRouter; without one it starts
voxmagic's local OpenRouter-compatible server on 127.0.0.1 so the whole path runs offline.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from importlib import resources
from pathlib import Path

from .settings import KEY_ENV


def sample_paths() -> list[Path]:
    """The audio files shipped with the package (short espeak-ng speech, English and French)."""
    folder = resources.files("voxmagic") / "samples"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".mp3"))


def main() -> int:
    import pandas as pd

    from . import api

    with ExitStack() as stack:
        options: dict = {}
        if os.environ.get(KEY_ENV):
            print(f"Using OpenRouter ({KEY_ENV} is set).")
        else:
            from .testing.server import LocalServer

            server = stack.enter_context(LocalServer(latency=0.3, token_rate=200))
            options = {"base_url": server.base_url, "api_key": "local-demo-key"}
            print(f"{KEY_ENV} is not set: using voxmagic's local server at {server.base_url}.\n"
                  "Its answers describe the audio it received (duration, digest) instead of the words.")
        df = api.transcribe(sample_paths(), **options)
    table = df[["source", "duration_s", "text", "prompt_tokens", "completion_tokens", "cost_usd",
                "latency_s", "error"]].assign(source=df["source"].map(lambda s: Path(s).name))
    with pd.option_context("display.max_colwidth", 60, "display.width", 200, "display.max_columns", None):
        print(table.to_string(max_colwidth=60))
    print(f"\nthis run ${df['cost_usd'].sum():.6f} · {api.ledger}")
    return 1 if df["error"].notna().any() else 0
