"""IPython magics: ``%%voxtral``, ``%voxtral_transcribe``, ``%voxtral_cost`` — parse and delegate.

Options are parsed by IPython's ``magic_arguments`` (so ``%%voxtral?`` lists them all); session
defaults are traitlets (``%config VoxtralMagics.temperature = 0.2``). Each magic turns its
options into the Python API's typed objects and hands over to :mod:`voxmagic.runner`; every
user mistake and API failure surfaces as a one-line ``UsageError``.
"""

from __future__ import annotations

import shlex
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Enum, Float, Int, TraitError, Unicode, observe, validate

from .formats import DEFAULT_FORMAT, UPLOAD_FORMATS
from .errors import VoxmagicError

# settings.PROVIDERS, named here without importing it (and httpx) when the extension loads
PROVIDER_NAMES = ("openrouter", "mistral", "openai-compatible")

COMMON = [
    (("audio",), dict(nargs="*", metavar="AUDIO",
                      help="audio files, globs (clips/*.mp3), folders, http(s) URLs, or names of notebook "
                           "variables (paths, lists/Series of paths, bytes, IPython Audio, arrays with --sr)")),
    (("-o", "--out"), dict(metavar="NAME", help="store the result in this variable")),
    (("--model",), dict(help="model id (default: %%config VoxtralMagics.model, else "
                             "mistralai/voxtral-small-24b-2507)")),
    (("--max-tokens",), dict(type=int, metavar="N", help="upper bound on the answer's tokens")),
    (("--temperature",), dict(type=float, metavar="T", help="sampling temperature, 0-2")),
    (("--top-p",), dict(type=float, metavar="P", help="nucleus sampling, (0, 1]")),
    (("--stop",), dict(action="append", metavar="TEXT", help="stop sequence (repeatable, up to 4)")),
    (("--frequency-penalty",), dict(type=float, metavar="F", help="-2 to 2")),
    (("--presence-penalty",), dict(type=float, metavar="F", help="-2 to 2")),
    (("--seed",), dict(type=int, metavar="N", help="seed for repeatable sampling")),
    (("--no-stream",), dict(action="store_true", help="wait for the whole answer instead of streaming")),
    (("--max-cost",), dict(type=float, metavar="USD", help="refuse to send if the estimate is higher")),
    (("--dry-run",), dict(action="store_true",
                          help="show the request (audio elided) and its cost estimate; send nothing")),
    (("--no-cache",), dict(action="store_true",
                           help="neither answer from the cache nor keep this answer for later")),
    (("--refresh",), dict(action="store_true", help="send even if cached, and keep the new answer")),
    (("--background",), dict(action="store_true",
                             help="return a job handle at once (.done(), .result(), .cancel()); "
                                  "-o is bound when it finishes")),
    (("--sr",), dict(type=int, metavar="HZ", help="sample rate of numpy-array audio variables")),
    (("--format",), dict(choices=UPLOAD_FORMATS, metavar="FMT",
                         help=f"upload encoding: {', '.join(UPLOAD_FORMATS)} (default {DEFAULT_FORMAT})")),
    (("--base-url",), dict(metavar="URL", help="OpenAI-compatible endpoint (default: the provider's)")),
    (("--provider",), dict(choices=list(PROVIDER_NAMES), metavar="NAME",
                           help="openrouter (default), mistral, or openai-compatible (e.g. vLLM: give "
                                "--base-url; no key needed on localhost)")),
]
ASK = [
    (("--system",), dict(metavar="TEXT", help="instructions, folded into the prompt "
                                             "(Voxtral has no system prompt yet)")),
    (("--json",), dict(action="store_true", help="ask for a JSON object; -o gets the parsed dict")),
    (("--schema",), dict(metavar="NAME", help="a JSON-schema dict or pydantic model in the notebook: "
                                              "structured output, parsed into it")),
    (("--tools",), dict(metavar="NAME,...", help="notebook functions the model may call (their "
                                                  "signatures and docstrings are sent)")),
    (("--tool-choice",), dict(metavar="CHOICE", help="auto, none, required, or a tool's name")),
    (("--auto-tools",), dict(action="store_true",
                             help="run the functions the model calls, send the results back and let it "
                                  "answer (without it the calls are shown, -o gets them, nothing runs)")),
    (("--max-tool-rounds",), dict(type=int, metavar="N",
                                  help="with --auto-tools, stop after N rounds of calls (default 5)")),
    (("--continue",), dict(action="store_true", dest="resume",
                           help="a follow-up question about the same audio, with the conversation so "
                                "far (no AUDIO; %%voxtral_reset starts over)")),
    (("--each",), dict(action="store_true",
                       help="ask about each audio source separately: -o gets a DataFrame, one row per "
                            "source (implied by --schema with several sources)")),
    (("--together",), dict(action="store_true",
                           help="with --schema and several sources, one answer about all of them")),
]
TRANSCRIBE = [
    (("--language",), dict(metavar="LANG", help="the spoken language, e.g. en, fr, de")),
    (("--translate-to",), dict(metavar="LANG", help="translate the speech into this language")),
    (("--prompt",), dict(metavar="TEXT", help="context or vocabulary hint, e.g. names and jargon")),
    (("--concurrency",), dict(type=int, metavar="N", help="requests in flight (default: "
                                                           "%%config VoxtralMagics.concurrency = 8)")),
    (("--segments",), dict(action="store_true",
                           help="one row per chunk of long audio, with start_s and end_s")),
    (("--chunk-minutes",), dict(type=float, metavar="M",
                                help="cut audio longer than this at pauses (default 25; 0: never)")),
    (("--schema",), dict(metavar="NAME", help="a JSON-schema dict or pydantic model in the notebook: "
                                              "extract its fields from each source instead of a "
                                              "transcript, one column per field")),
    (("--srt",), dict(metavar="DIR", help="also write one .srt subtitle file per source into DIR")),
    (("--vtt",), dict(metavar="DIR", help="also write one .vtt (WebVTT) subtitle file per source into DIR")),
    (("--api",), dict(choices=["chat", "transcriptions"], metavar="API",
                      help="chat (an instruction to the chat endpoint) or transcriptions (the provider's "
                           "speech-to-text endpoint, with timed segments); default: transcriptions for "
                           "plain transcripts on mistral, else chat")),
]


def _arguments(*specs: tuple) -> Any:
    """Apply a list of ``@argument`` decorators in the order they are listed."""
    def decorate(fn: Any) -> Any:
        for args, kwargs in reversed(specs):
            fn = argument(*args, **kwargs)(fn)
        return fn
    return decorate


def _parse(magic_method: Any, line: str) -> Any:
    """POSIX shell splitting (quotes removed, unlike IPython's default) with the magic's parser."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:  # e.g. an unclosed quote
        raise UsageError(f"cannot read the options: {exc}") from None
    args = magic_method.parser.parse_args(argv)
    if getattr(args, "out", None) and not args.out.isidentifier():
        raise UsageError(f"-o {args.out}: not a valid Python variable name")
    return args


def _parse_line(magic_method: Any, line: str) -> tuple[Any, bool]:
    """A line magic's options, and whether the line ended with ``;`` (store, don't display)."""
    quiet = line.rstrip().endswith(";")
    return _parse(magic_method, line.rstrip().rstrip(";")), quiet


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """At the magic boundary every deliberate error becomes one line without a traceback."""
    try:
        yield
    except VoxmagicError as exc:
        kept = " (the partial answer is in _voxtral_error.partial_text)" if getattr(exc, "partial_text", "") else ""
        raise UsageError(f"{exc}{kept}") from None


@magics_class
class VoxtralMagics(Magics):
    """Talk to audio with Voxtral. Session defaults: ``%config VoxtralMagics.<name> = value``."""

    model = Unicode(None, allow_none=True,
                    help="Model id (default mistralai/voxtral-small-24b-2507, or $VOXMAGIC_MODEL).").tag(config=True)
    base_url = Unicode(None, allow_none=True,
                       help="OpenAI-compatible endpoint base (default https://openrouter.ai/api/v1, "
                            "or $VOXMAGIC_BASE_URL).").tag(config=True)
    provider = Enum(list(PROVIDER_NAMES), default_value=None, allow_none=True,
                    help="Where Voxtral runs: openrouter, mistral (Mistral's API) or openai-compatible "
                         "(e.g. a self-hosted vLLM; set base_url). Default: from base_url, else "
                         "openrouter, or $VOXMAGIC_PROVIDER.").tag(config=True)
    api_key_env = Unicode(None, allow_none=True,
                          help="Environment variable (or .env entry) that holds the API key (default: "
                               "the provider's: OPENROUTER_API_KEY, MISTRAL_API_KEY, OPENAI_API_KEY)."
                          ).tag(config=True)
    temperature = Float(None, allow_none=True, help="Default temperature for %%voxtral (0-2).").tag(config=True)
    max_tokens = Int(None, allow_none=True, help="Default max_tokens for %%voxtral.").tag(config=True)
    concurrency = Int(8, help="Requests in flight for %voxtral_transcribe.").tag(config=True)
    max_cost = Float(None, allow_none=True,
                     help="Refuse any call whose estimated cost in USD is higher.").tag(config=True)
    budget = Float(None, allow_none=True,
                   help="What this session may spend in USD; calls that could exceed what is left are "
                        "refused before sending.").tag(config=True)
    cache = Bool(True, help="Answer a request made before from the cache ($0, nothing sent).").tag(config=True)
    chunk_minutes = Float(25.0, help="%voxtral_transcribe cuts audio longer than this at pauses "
                                     "(0: never).").tag(config=True)
    history_path = Unicode(None, allow_none=True,
                           help="SQLite file of history and cache (default: the user cache dir, or "
                                "$VOXMAGIC_HISTORY).").tag(config=True)
    stream = Bool(True, help="Stream answers as they are generated.").tag(config=True)
    referer = Unicode(None, allow_none=True, help="HTTP-Referer header (OpenRouter attribution).").tag(config=True)
    title = Unicode("voxmagic", help="X-Title header (OpenRouter attribution).").tag(config=True)
    audio_format = Enum(UPLOAD_FORMATS, default_value=DEFAULT_FORMAT, help="Upload encoding.").tag(config=True)
    max_attempts = Int(4, help="Attempts for transient failures (429s are waited out separately).").tag(config=True)
    backoff = Float(1.0, help="First retry delay in seconds; doubles each retry, with jitter.").tag(config=True)
    read_timeout = Float(180.0, help="Seconds to wait for the next byte of an answer.").tag(config=True)
    display_mode = Enum(["auto", "widget", "text"], default_value="auto",
                        help="Live widgets in a kernel (auto), always widgets, or plain text.").tag(config=True)
    updates_per_second = Float(10.0, help="Bound on live display updates per second (at most 30).").tag(config=True)
    max_tool_rounds = Int(5, help="With --auto-tools, rounds of tool calls before stopping.").tag(config=True)
    player_max_seconds = Float(30.0, help="Embed an audio player for audio up to this long in seconds "
                               "(it is saved in the notebook; 0: never).").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any):
        super().__init__(shell=shell, **kwargs)
        if shell is not None and self not in shell.configurables:
            shell.configurables.append(self)  # makes %config VoxtralMagics.* work
        self.last_view: Any = None  # the most recent live view (for tests and debugging)
        self.conversation: Any = None  # the last %%voxtral exchange, which --continue follows up

    @validate("temperature")
    def _check_temperature(self, proposal: Any) -> Any:
        if proposal.value is not None and not 0 <= proposal.value <= 2:
            raise TraitError("temperature must be between 0 and 2")
        return proposal.value

    @validate("concurrency", "max_attempts", "max_tool_rounds")
    def _check_positive(self, proposal: Any) -> Any:
        if proposal.value < 1:
            raise TraitError(f"{proposal.trait.name} must be at least 1")
        return proposal.value

    @validate("updates_per_second")
    def _check_rate(self, proposal: Any) -> Any:
        if not 0 < proposal.value <= 30:
            raise TraitError("updates_per_second must be in (0, 30]")
        return proposal.value

    @validate("max_cost", "max_tokens", "budget")
    def _check_non_negative(self, proposal: Any) -> Any:
        if proposal.value is not None and proposal.value <= 0:
            raise TraitError(f"{proposal.trait.name} must be positive (or None)")
        return proposal.value

    @validate("chunk_minutes")
    def _check_chunk(self, proposal: Any) -> Any:
        if proposal.value < 0 or 0 < proposal.value < 1:
            raise TraitError("chunk_minutes must be 0 (never cut) or at least 1")
        return proposal.value

    @observe("budget")
    def _set_budget(self, change: Any) -> None:
        from .runner import ledger

        ledger.budget_usd = change.new

    @observe("history_path")
    def _set_history(self, change: Any) -> None:
        from .runner import store

        store.use(change.new)

    def _table(self, magic_method: Any, line: str, run: Any) -> Any:
        """A line magic that returns a table: shown, unless the line ends with ``;``."""
        args, quiet = _parse_line(magic_method, line)
        with _one_line_errors():
            df = run(self, args)
        return None if quiet else df

    # -- the magics ------------------------------------------------------------------------

    @magic_arguments("%voxtral")  # shown as %%voxtral: it is a cell magic
    @_arguments(*COMMON, *ASK)
    @cell_magic("voxtral")
    def voxtral(self, line: str, cell: str) -> Any:
        """Ask Voxtral about audio: the line names the audio, the cell body is the prompt.

        ``{name}`` in the prompt is filled from the notebook (``{{`` for a literal brace). The
        answer streams into a live view; ``-o NAME`` stores the text (or parsed JSON, schema
        object, tool results) and ``_voxtral`` always holds the last full Response.
        """
        from .commands import run_ask

        args = _parse(self.voxtral, line)
        with _one_line_errors():
            return run_ask(self, args, cell)

    @magic_arguments()
    @_arguments(*COMMON, *TRANSCRIBE)
    @line_magic("voxtral_transcribe")
    def voxtral_transcribe(self, line: str) -> Any:
        """Transcribe (or translate) many audio sources at once into a DataFrame, one row per source.

        Columns: source, duration_s, text, prompt_tokens, completion_tokens, cost_usd, latency_s,
        error (+ attempts, finish_reason, audio_format, audio_sha256, generation_id, cached,
        chunks). A failing source fills its ``error``; the others still come back. Audio longer
        than ``--chunk-minutes`` is cut at pauses, sent in pieces and stitched in order. What was
        answered before comes from the cache at $0; an interrupted run sends only what is missing. With a single source the
        transcript text is also in ``_voxtral_text`` (and ``NAME_text`` with ``-o NAME``). End the
        line with ``;`` to store the table without displaying it.
        """
        from .commands import run_transcribe

        return self._table(self.voxtral_transcribe, line, run_transcribe)

    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="store the table in this variable")
    @argument("--last", type=int, metavar="N", help="only the newest N requests")
    @argument("--since", metavar="WHEN", help="only requests since a time ('2026-11-25 09:00') or for a "
                                             "duration back from now ('2h', '30min')")
    @line_magic("voxtral_history")
    def voxtral_history(self, line: str) -> Any:
        """Every request voxmagic has made, from its SQLite history: time, model, parameters,
        prompt, audio digest and seconds, text, tokens, cost, latency, attempts, error, cached."""
        from .commands import run_history

        return self._table(self.voxtral_history, line, run_history)

    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="store the table in this variable")
    @argument("--refresh", action="store_true", help="fetch the list now instead of using today's copy")
    @argument("--provider", choices=list(PROVIDER_NAMES), metavar="NAME",
              help="whose models (default: the session's provider)")
    @argument("--base-url", metavar="URL", help="whose models, by endpoint")
    @line_magic("voxtral_models")
    def voxtral_models(self, line: str) -> Any:
        """The models that take audio, with their prices (USD per 1M prompt and completion tokens,
        per minute of audio). For OpenRouter the list is fetched at most once a day and cached;
        offline, the built-in prices are shown. ``source`` says which."""
        from .commands import run_models

        return self._table(self.voxtral_models, line, run_models)

    @magic_arguments()
    @line_magic("voxtral_reset")
    def voxtral_reset(self, line: str) -> None:
        """Forget the conversation that ``%%voxtral --continue`` would follow up."""
        _parse(self.voxtral_reset, line)
        asked = len(self.conversation.responses) if self.conversation else 0
        self.conversation = None
        print("conversation cleared" if asked else "no conversation to clear")

    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="store the table in this variable")
    @argument("--reset", action="store_true", help="start the tally again from $0")
    @line_magic("voxtral_cost")
    def voxtral_cost(self, line: str) -> Any:
        """What this session has spent: one row per call, and the total."""
        from .runner import ledger

        args, quiet = _parse_line(self.voxtral_cost, line)
        df = ledger.to_dataframe()
        df.attrs["total_usd"] = total = float(df["cost_usd"].fillna(0).sum())
        if args.out:
            self.shell.user_ns[args.out] = df
        unknown = int(df["cost_usd"].isna().sum())
        notes = [f"{unknown} calls of unknown cost" if unknown else "",
                 f"{ledger.remaining_usd:.6f} of the ${ledger.budget_usd:.4f} budget left"
                 if ledger.budget_usd is not None else ""]
        note = "; ".join(n for n in notes if n)
        print(f"total ${total:.6f} over {len(df)} calls" + (f" ({note})" if note else ""), file=sys.stdout)
        if args.reset:
            ledger.reset()
            print("cost tally reset to $0")
            return None
        return None if quiet else df
