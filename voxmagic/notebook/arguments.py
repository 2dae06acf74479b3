"""The magics' command lines: every option with its help line, and a parser that turns a line into
arguments or raises one-line ``UsageError`` s (never ``SystemExit``, never a traceback)."""

from __future__ import annotations

import shlex
from argparse import Namespace
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument

from ..formats import DEFAULT_FORMAT, UPLOAD_FORMATS
from ..providers import PROVIDER_NAMES

COMMON = [
    (
        ("audio",),
        dict(
            nargs="*",
            metavar="AUDIO",
            help="audio files, globs (clips/*.mp3), folders, http(s) URLs, or names of notebook "
            "variables (paths, lists/Series of paths, bytes, IPython Audio, arrays with --sr)",
        ),
    ),
    (("-o", "--out"), dict(metavar="NAME", help="store the result in this variable")),
    (
        ("--model",),
        dict(help="model id (default: %%config VoxtralMagics.model, else mistralai/voxtral-small-24b-2507)"),
    ),
    (("--max-tokens",), dict(type=int, metavar="N", help="upper bound on the answer's tokens")),
    (("--temperature",), dict(type=float, metavar="T", help="sampling temperature, 0-2")),
    (("--top-p",), dict(type=float, metavar="P", help="nucleus sampling, (0, 1]")),
    (("--stop",), dict(action="append", metavar="TEXT", help="stop sequence (repeatable, up to 4)")),
    (("--frequency-penalty",), dict(type=float, metavar="F", help="-2 to 2")),
    (("--presence-penalty",), dict(type=float, metavar="F", help="-2 to 2")),
    (("--seed",), dict(type=int, metavar="N", help="seed for repeatable sampling")),
    (("--no-stream",), dict(action="store_true", help="wait for the whole answer instead of streaming")),
    (("--max-cost",), dict(type=float, metavar="USD", help="refuse to send if the estimate is higher")),
    (
        ("--dry-run",),
        dict(action="store_true", help="show the request (audio elided) and its cost estimate; send nothing"),
    ),
    (("--no-cache",), dict(action="store_true", help="neither answer from the cache nor keep this answer for later")),
    (("--refresh",), dict(action="store_true", help="send even if cached, and keep the new answer")),
    (
        ("--background",),
        dict(
            action="store_true",
            help="return a job handle at once (.done(), .result(), .cancel()); -o is bound when it finishes",
        ),
    ),
    (("--sr",), dict(type=int, metavar="HZ", help="sample rate of numpy-array audio variables")),
    (
        ("--format",),
        dict(
            choices=UPLOAD_FORMATS,
            metavar="FMT",
            help=f"upload encoding: {', '.join(UPLOAD_FORMATS)} (default {DEFAULT_FORMAT})",
        ),
    ),
    (("--base-url",), dict(metavar="URL", help="OpenAI-compatible endpoint (default: the provider's)")),
    (
        ("--provider",),
        dict(
            choices=list(PROVIDER_NAMES),
            metavar="NAME",
            help="openrouter (default), mistral, or openai-compatible (e.g. vLLM: give "
            "--base-url; no key needed on localhost)",
        ),
    ),
]
ASK = [
    (
        ("--system",),
        dict(metavar="TEXT", help="instructions, folded into the prompt (Voxtral has no system prompt yet)"),
    ),
    (("--json",), dict(action="store_true", help="ask for a JSON object; -o gets the parsed dict")),
    (
        ("--schema",),
        dict(
            metavar="NAME",
            help="a JSON-schema dict or pydantic model in the notebook: structured output, parsed into it",
        ),
    ),
    (
        ("--tools",),
        dict(
            metavar="NAME,...", help="notebook functions the model may call (their signatures and docstrings are sent)"
        ),
    ),
    (("--tool-choice",), dict(metavar="CHOICE", help="auto, none, required, or a tool's name")),
    (
        ("--auto-tools",),
        dict(
            action="store_true",
            help="run the functions the model calls, send the results back and let it "
            "answer (without it the calls are shown, -o gets them, nothing runs)",
        ),
    ),
    (
        ("--max-tool-rounds",),
        dict(type=int, metavar="N", help="with --auto-tools, stop after N rounds of calls (default 5)"),
    ),
    (
        ("--continue",),
        dict(
            action="store_true",
            dest="resume",
            help="a follow-up question about the same audio, with the conversation so "
            "far (no AUDIO; %%voxtral_reset starts over)",
        ),
    ),
    (
        ("--each",),
        dict(
            action="store_true",
            help="ask about each audio source separately: -o gets a DataFrame, one row per "
            "source (implied by --schema with several sources)",
        ),
    ),
    (
        ("--together",),
        dict(action="store_true", help="with --schema and several sources, one answer about all of them"),
    ),
]
TRANSCRIBE = [
    (("--language",), dict(metavar="LANG", help="the spoken language, e.g. en, fr, de")),
    (("--translate-to",), dict(metavar="LANG", help="translate the speech into this language")),
    (("--prompt",), dict(metavar="TEXT", help="context or vocabulary hint, e.g. names and jargon")),
    (
        ("--concurrency",),
        dict(type=int, metavar="N", help="requests in flight (default: %%config VoxtralMagics.concurrency = 8)"),
    ),
    (("--segments",), dict(action="store_true", help="one row per chunk of long audio, with start_s and end_s")),
    (
        ("--chunk-minutes",),
        dict(type=float, metavar="M", help="cut audio longer than this at pauses (default 25; 0: never)"),
    ),
    (
        ("--schema",),
        dict(
            metavar="NAME",
            help="a JSON-schema dict or pydantic model in the notebook: "
            "extract its fields from each source instead of a "
            "transcript, one column per field",
        ),
    ),
    (("--srt",), dict(metavar="DIR", help="also write one .srt subtitle file per source into DIR")),
    (("--vtt",), dict(metavar="DIR", help="also write one .vtt (WebVTT) subtitle file per source into DIR")),
    (
        ("--api",),
        dict(
            choices=["chat", "transcriptions"],
            metavar="API",
            help="chat (an instruction to the chat endpoint) or transcriptions (the provider's "
            "speech-to-text endpoint, with timed segments); default: transcriptions for "
            "plain transcripts on mistral, else chat",
        ),
    ),
]


def arguments(*specs: tuple) -> Callable[[Any], Any]:
    """Apply a list of ``@argument`` decorators in the order they are listed."""

    def decorate(fn: Any) -> Any:
        for args, kwargs in reversed(specs):
            fn = argument(*args, **kwargs)(fn)
        return fn

    return decorate


def parse(magic_method: Any, line: str) -> Namespace:
    """POSIX shell splitting (quotes removed, unlike IPython's default) with the magic's parser."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:  # e.g. an unclosed quote
        raise UsageError(f"cannot read the options: {exc}") from None
    args = magic_method.parser.parse_args(argv)
    if getattr(args, "out", None) and not args.out.isidentifier():
        raise UsageError(f"-o {args.out}: not a valid Python variable name")
    return args


def parse_line(magic_method: Any, line: str) -> tuple[Namespace, bool]:
    """A line magic's options, and whether the line ended with ``;`` (store, don't display)."""
    quiet = line.rstrip().endswith(";")
    return parse(magic_method, line.rstrip().rstrip(";")), quiet
