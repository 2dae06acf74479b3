"""``python -m voxmagic demo`` runs the bundled demo; ``python -m voxmagic transcribe FILE...`` a batch."""

from __future__ import annotations

import argparse
import sys

from .limits import DEFAULT_CONCURRENCY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voxmagic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser(
        "demo", help="run a notebook, or transcribe the bundled samples (local server when no key is set)"
    )
    d.add_argument("notebook", nargs="?", help="a notebook to execute and print, e.g. notebooks/quickstart.ipynb")
    t = sub.add_parser("transcribe", help="transcribe audio files and print a table")
    t.add_argument("files", nargs="+", help="audio or video files, or http(s) URLs")
    t.add_argument("--language", help="the spoken language, e.g. en, fr")
    t.add_argument("--base-url", help="an OpenAI-compatible endpoint (default OpenRouter)")
    t.add_argument("--model", help="model id (default mistralai/voxtral-small-24b-2507)")
    t.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"requests in flight (default {DEFAULT_CONCURRENCY})",
    )
    t.add_argument("--csv", help="also write the table to this CSV file")
    args = parser.parse_args(argv)

    from .errors import VoxmagicError

    try:
        if args.command == "demo":
            from .demo import main as demo

            return demo(args.notebook)
        from . import api

        df = api.transcribe(
            args.files, args.language, concurrency=args.concurrency, base_url=args.base_url, model=args.model
        )
        print(df[["source", "duration_s", "text", "cost_usd", "error"]].to_string())
        print(f"\n{api.ledger}")
        if args.csv:
            df.to_csv(args.csv, index=False)
        return 1 if df["error"].notna().any() else 0
    except VoxmagicError as exc:
        print(f"voxmagic: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
