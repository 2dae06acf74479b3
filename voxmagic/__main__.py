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
    t.add_argument(
        "--offline", action="store_true", help="use voxmagic's local server (the default when no key is set)"
    )
    args = parser.parse_args(argv)

    from .errors import VoxmagicError

    try:
        if args.command == "demo":
            from .demo import main as demo

            return demo(args.notebook)
        return _transcribe(args)
    except VoxmagicError as exc:
        print(f"voxmagic: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head` stopped reading: nothing more to say, and no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _transcribe(args: argparse.Namespace) -> int:
    import os
    from contextlib import ExitStack
    from pathlib import Path

    from . import api
    from .demo import offline_options
    from .errors import ConfigError
    from .files import did_you_mean, expand_all, is_url
    from .frames import table_text
    from .progress import Progress

    if args.csv:  # refused before anything is sent, not after the batch was paid for
        _check_csv(args.csv)
    if args.offline and args.base_url:
        raise ConfigError("--offline uses voxmagic's local server: leave out --base-url, or --offline")
    files = expand_all(args.files)
    missing = [f for f in files if isinstance(f, str) and not is_url(f) and not os.path.exists(f)]
    if missing:  # a typo on the command line, as the magics refuse it: before anything is sent
        raise ConfigError(f"no such file: {missing[0]}{did_you_mean(Path(missing[0]))}")
    progress = Progress(files)

    def report(index: int, row: dict) -> None:  # a line per file as it finishes, on stderr
        line = progress.finished(index, [row])
        print(f"[{progress.done}/{progress.total}] {line}", file=sys.stderr, flush=True)

    with ExitStack() as stack:
        options = {"base_url": args.base_url} if args.base_url and not args.offline else {}
        if not options:
            options = offline_options(stack, force=args.offline)
        df = api.transcribe(files, args.language, concurrency=args.concurrency, model=args.model,
                            on_result=report, **options)  # fmt: skip
    print(progress.header(), file=sys.stderr)
    print(table_text(df[["source", "text", "duration_s", "cost_usd", "error"]]))
    print(f"\n{api.ledger}")
    if args.csv:
        try:
            df.to_csv(args.csv, index=False)
        except OSError as exc:
            raise ConfigError(
                f"could not write --csv {args.csv} ({exc.strerror or exc}); the table is printed above"
            ) from None
    return 1 if df["error"].notna().any() else 0


def _check_csv(path: str) -> None:
    from pathlib import Path

    from .errors import ConfigError

    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigError(f"--csv {path} is a folder: name a file, e.g. {target / 'transcripts.csv'}")
    if not target.parent.is_dir():
        raise ConfigError(f"--csv {path}: the folder {target.parent} does not exist (create it, or name another)")


if __name__ == "__main__":
    sys.exit(main())
