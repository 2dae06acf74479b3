"""The magics' command lines: every option with its help line, and a parser that turns a line into
arguments or raises one-line ``UsageError`` s (never ``SystemExit``, never a traceback)."""

from __future__ import annotations

import builtins
import difflib
import keyword
import shlex
import textwrap
from argparse import Namespace
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument

from ..formats import DEFAULT_FORMAT, UPLOAD_FORMATS
from ..providers import PROVIDER_NAMES


def option(*flags: str, help: str, **kwargs: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """One ``@argument`` of a magic: its flags, its help line, and argparse's other settings."""
    return flags, {"help": help, **kwargs}


COMMON = [
    option(
        "audio",
        nargs="*",
        metavar="AUDIO",
        help="audio files, globs (clips/*.mp3), folders, http(s) URLs, or names of notebook "
        "variables (paths, lists/Series of paths, bytes, IPython Audio, arrays with --sr)",
    ),
    option("-o", "--out", metavar="NAME", help="store the result in this variable"),
    option("--model", help="model id (default: %%config VoxtralMagics.model, else mistralai/voxtral-small-24b-2507)"),
    option("--max-tokens", type=int, metavar="N", help="upper bound on the answer's tokens"),
    option("--temperature", type=float, metavar="T", help="sampling temperature, 0-2"),
    option("--top-p", type=float, metavar="P", help="nucleus sampling, (0, 1]"),
    option("--stop", action="append", metavar="TEXT", help="stop sequence (repeatable, up to 4)"),
    option("--frequency-penalty", type=float, metavar="F", help="-2 to 2"),
    option("--presence-penalty", type=float, metavar="F", help="-2 to 2"),
    option("--seed", type=int, metavar="N", help="seed for repeatable sampling"),
    option("--no-stream", action="store_true", help="wait for the whole answer instead of streaming"),
    option("--max-cost", type=float, metavar="USD", help="refuse to send if the estimate is higher"),
    option(
        "--dry-run", action="store_true", help="show the request (audio elided) and its cost estimate; send nothing"
    ),
    option("--no-cache", action="store_true", help="neither answer from the cache nor keep this answer for later"),
    option("--refresh", action="store_true", help="send even if cached, and keep the new answer"),
    option(
        "--background",
        action="store_true",
        help="return a job handle at once (.done(), .result(), .cancel()); -o is bound when it finishes",
    ),
    option("--sr", type=int, metavar="HZ", help="sample rate of numpy-array audio variables"),
    option(
        "--at",
        metavar="START-END",
        help="only this moment of each source: 12:30-14:00, 1:02:03-1:05:00, 90-120 (seconds), 12:30- (to the end)",
    ),
    option(
        "--trim-silence",
        action="store_true",
        help="cut pauses over 1 s down to 0.25 s a side before upload (not billed); times stay on the "
        "original timeline (Silero VAD with voxmagic[vad], else by loudness)",
    ),
    option(
        "--format",
        choices=UPLOAD_FORMATS,
        metavar="FMT",
        help=f"upload encoding: {', '.join(UPLOAD_FORMATS)} (default {DEFAULT_FORMAT})",
    ),
    option("--base-url", metavar="URL", help="OpenAI-compatible endpoint (default: the provider's)"),
    option(
        "--provider",
        choices=list(PROVIDER_NAMES),
        metavar="NAME",
        help="openrouter (default), mistral, or openai-compatible (e.g. vLLM: give "
        "--base-url; no key needed on localhost)",
    ),
]
ASK = [
    option("--system", metavar="TEXT", help="instructions, folded into the prompt (Voxtral has no system prompt yet)"),
    option("--json", action="store_true", help="ask for a JSON object; -o gets the parsed dict"),
    option(
        "--schema",
        metavar="NAME",
        help="a JSON-schema dict or pydantic model in the notebook: structured output, parsed into it",
    ),
    option(
        "--tools",
        metavar="NAMES",
        help="notebook functions the model may call, comma-separated (their signatures and docstrings are sent)",
    ),
    option("--tool-choice", metavar="CHOICE", help="auto, none, required, or a tool's name"),
    option(
        "--auto-tools",
        action="store_true",
        help="run the functions the model calls, send the results back and let it "
        "answer (without it the calls are shown, -o gets them, nothing runs)",
    ),
    option(
        "--max-tool-rounds", type=int, metavar="N", help="with --auto-tools, stop after N rounds of calls (default 5)"
    ),
    option(
        "--continue",
        action="store_true",
        dest="resume",
        help="a follow-up question about the same audio, with the conversation so "
        "far (no AUDIO; %%voxtral_reset starts over)",
    ),
    option(
        "--each",
        action="store_true",
        help="ask about each audio source separately: -o gets a DataFrame, one row per "
        "source (implied by --schema with several sources)",
    ),
    option("--together", action="store_true", help="with --schema and several sources, one answer about all of them"),
    option(
        "--mic",
        action="store_true",
        help="push-to-talk: record in the notebook (no AUDIO); when you stop, the answer streams",
    ),
]
RECORD = [
    option("-o", "--out", metavar="NAME", help="store the recording here when it stops (and NAME_text its transcript)"),
    option("--no-captions", action="store_true", help="no live captions and no transcript (nothing is sent)"),
    option("--language", metavar="LANG", help="the spoken language of the captions, e.g. en, fr"),
    option("--max-seconds", type=float, metavar="S", help="stop by itself after this long (default 300, at most 3600)"),
    option("--model", help="model of the captions (default: %%config VoxtralMagics.model)"),
    option("--provider", choices=list(PROVIDER_NAMES), metavar="NAME", help="openrouter, mistral or openai-compatible"),
    option("--base-url", metavar="URL", help="OpenAI-compatible endpoint of the captions"),
]
TRANSCRIBE = [
    option("--language", metavar="LANG", help="the spoken language, e.g. en, fr, de"),
    option("--translate-to", metavar="LANG", help="translate the speech into this language"),
    option("--prompt", metavar="TEXT", help="context or vocabulary hint, e.g. names and jargon"),
    option(
        "--concurrency",
        type=int,
        metavar="N",
        help="requests in flight (default: %%config VoxtralMagics.concurrency = 8)",
    ),
    option(
        "--diarize",
        action="store_true",
        help="label who speaks (a speaker column; Mistral's transcriptions endpoint: --provider mistral)",
    ),
    option(
        "--vocab",
        metavar="TERMS",
        help="names and jargon to spell as given, comma-separated: 'Voxtral, pgvector' (Mistral's context_bias, "
        "else a glossary in the instruction)",
    ),
    option(
        "--segments",
        action="store_true",
        help="one row per timed segment: source, start, end, speaker, text (the provider's segments, else pieces of "
        "at most 30 s cut at pauses)",
    ),
    option(
        "--chunk-minutes", type=float, metavar="M", help="cut audio longer than this at pauses (default 25; 0: never)"
    ),
    option(
        "--schema",
        metavar="NAME",
        help="a JSON-schema dict or pydantic model in the notebook: "
        "extract its fields from each source instead of a "
        "transcript, one column per field",
    ),
    option("--srt", metavar="DIR", help="also write one .srt subtitle file per source into DIR"),
    option("--vtt", metavar="DIR", help="also write one .vtt (WebVTT) subtitle file per source into DIR"),
    option(
        "--api",
        choices=["chat", "transcriptions"],
        metavar="API",
        help="chat (an instruction to the chat endpoint) or transcriptions (the provider's "
        "speech-to-text endpoint, with timed segments); default: transcriptions for "
        "plain transcripts on mistral, else chat",
    ),
    option(
        "--dask",
        action="store_true",
        help="run on the active dask.distributed Client (pip install 'voxmagic[dask]'); rows also go to "
        "$VOXMAGIC_DASK_OUTPUT (Parquet; default ./voxmagic-transcripts)",
    ),
]


def arguments(*specs: tuple) -> Callable[[Any], Any]:
    """Apply a list of ``@argument`` decorators in the order they are listed."""

    def decorate(fn: Any) -> Any:
        for args, kwargs in reversed(specs):
            fn = argument(*args, **kwargs)(fn)
        return fn

    return decorate


def plain_help(fn: Any) -> Any:
    """``%%voxtral?`` as a person reads it: IPython's help starts with a reST literal-block marker
    (``::``) and the docstrings use reST ````code````; drop both (apply above ``magic_arguments``)."""
    doc = fn.__doc__ or ""
    if doc.startswith("::"):
        usage, _, rest = doc[2:].lstrip("\n").partition("\n\n")
        doc = textwrap.dedent(usage) + "\n\n" + rest
    fn.__doc__ = doc.replace("``", "")
    return fn


def without_comment(line: str) -> str:
    """The line up to a ``#`` that starts a word outside quotes, as in a shell: ``clips/*.mp3 -o df
    # one row per file`` loses its comment, ``a#b.mp3`` and ``"take #2.mp3"`` keep their ``#``."""
    quote, escaped = "", False
    for i, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def parse(magic_method: Any, line: str) -> Namespace | None:
    """POSIX shell splitting (quotes removed, unlike IPython's default; a trailing ``# comment``
    ignored) with the magic's parser; a misspelt option gets a "did you mean". ``-h``/``--help``
    prints the magic's help (as ``%magic?`` does) and gives None: nothing is run."""
    try:
        argv = shlex.split(without_comment(line))
    except ValueError as exc:  # e.g. an unclosed quote
        raise UsageError(f"cannot read the options: {exc}") from None
    if "-h" in argv or "--help" in argv:
        print(magic_method.__doc__)
        return None
    parser = magic_method.parser
    try:
        args = parser.parse_intermixed_args(argv)  # AUDIO may come after options too
    except UsageError as exc:
        raise UsageError(_suggest(str(exc), parser)) from None
    out = getattr(args, "out", None)
    if out and (not out.isidentifier() or keyword.iskeyword(out)):
        raise UsageError(f"-o {out}: not a valid Python variable name")
    if out and hasattr(builtins, out):  # -o print would hide print() until `del print`
        raise UsageError(f"-o {out}: that would hide Python's own {out}; pick another name")
    if twice := _given_twice(argv, parser):
        raise UsageError(twice)
    return args


def _given_twice(argv: list[str], parser: Any) -> str | None:
    """An option of one value given twice: argparse keeps the last without a word, so
    ``--at 0-5 --at 10-15`` would quietly send only the second moment."""
    seen: set[str] = set()
    for word in argv:
        if word == "--":
            break
        flag = word.split("=", 1)[0]
        action = parser._option_string_actions.get(flag) if flag.startswith("-") else None
        if action is None or action.nargs == 0 or action.dest == "stop":  # flags; --stop is repeatable
            continue
        if action.dest in seen:
            more = "; for several moments, pass a table of them as AUDIO" if action.dest == "at" else ""
            return f"{flag} is given twice: give it once{more}"
        seen.add(action.dest)
    return None


def _suggest(message: str, parser: Any) -> str:
    """argparse's complaint, with the closest real option for each unknown one."""
    if "unrecognized arguments:" not in message:
        return message
    known = [flag for action in parser._actions for flag in action.option_strings]
    unknown = [word for word in message.split("unrecognized arguments:")[1].split() if word.startswith("-")]
    close = {word: found[0] for word in unknown if (found := difflib.get_close_matches(word, known, 1, 0.6))}
    hints = [right if len(close) == 1 else f"{right} for {word}" for word, right in close.items()]
    return message + (f" (did you mean {', '.join(hints)}?)" if hints else "")


def parse_line(magic_method: Any, line: str) -> tuple[Namespace | None, bool]:
    """A line magic's options, and whether the line ended with ``;`` (store, don't display)."""
    line = without_comment(line).rstrip()
    return parse(magic_method, line.rstrip(";")), line.endswith(";")
