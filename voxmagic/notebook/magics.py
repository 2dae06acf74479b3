"""IPython magics: ``%%voxtral``, ``%voxtral_transcribe``, ``%voxtral_cost`` and friends — parse
and dispatch only.

Each magic parses its line (:mod:`.arguments`), turns it and the session defaults into frozen,
typed options (:mod:`.options`) and hands them to a command (:mod:`.ask`, :mod:`.tables`) with
the user's namespace and the :class:`~.session.Session`; commands never see this class. Session
defaults are traitlets (``%config VoxtralMagics.temperature = 0.2``), checked against the same
bounds as the options (:mod:`voxmagic.limits`). Every user mistake and API failure surfaces as a
one-line ``UsageError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Enum, Float, Int, TraitError, Unicode, observe, validate

from .. import limits, warmup
from ..errors import ConfigError, VoxmagicError
from ..formats import DEFAULT_FORMAT, UPLOAD_FORMATS
from ..providers import PROVIDER_NAMES
from ..settings import Settings, url_for
from .arguments import ASK, COMMON, RECORD, TRANSCRIBE, arguments, parse, parse_line, plain_help
from .session import Session

MAGICS = {
    "cell": ["voxtral"],
    "line": ["voxtral_transcribe", "voxtral_cost", "voxtral_history", "voxtral_reset", "voxtral_models",
             "voxtral_record"],
}  # fmt: skip


@contextmanager
def one_line_errors() -> Iterator[None]:
    """At the magic boundary every deliberate error becomes one line without a traceback; so does
    a stop pressed before the call began (once it has, the call says what it kept)."""
    try:
        warmup.settle()
        yield
    except VoxmagicError as exc:
        kept = " (the partial answer is in _voxtral_error.partial_text)" if getattr(exc, "partial_text", "") else ""
        raise UsageError(f"{exc}{kept}") from None
    except KeyboardInterrupt:
        raise UsageError("interrupted before any request was sent") from None


def setting(kind: Any, default: Any, help: str, choices: Any = None) -> Any:
    """A session default, ``%config VoxtralMagics.<name> = value``; None means "not set"."""
    first = (list(choices), default) if choices is not None else (default,)
    return kind(*first, allow_none=default is None, help=help).tag(config=True)


@magics_class
class VoxtralMagics(Magics):
    """Talk to audio with Voxtral. Session defaults: ``%config VoxtralMagics.<name> = value``."""

    model = setting(Unicode, None, "Model id (default mistralai/voxtral-small-24b-2507, or $VOXMAGIC_MODEL).")
    base_url = setting(
        Unicode, None, "OpenAI-compatible endpoint base (default https://openrouter.ai/api/v1, or $VOXMAGIC_BASE_URL)."
    )
    provider = setting(
        Enum, None, "Where Voxtral runs: openrouter, mistral (Mistral's API) or openai-compatible (e.g. a "
        "self-hosted vLLM; set base_url). Default: from base_url, else openrouter, or $VOXMAGIC_PROVIDER.",
        choices=PROVIDER_NAMES,
    )  # fmt: skip
    api_key_env = setting(
        Unicode, None, "Environment variable (or .env entry) that holds the API key (default: the provider's: "
        "OPENROUTER_API_KEY, MISTRAL_API_KEY, OPENAI_API_KEY).",
    )  # fmt: skip
    temperature = setting(Float, None, "Default temperature for %%voxtral (0-2).")
    max_tokens = setting(Int, None, "Default max_tokens for %%voxtral.")
    concurrency = setting(Int, limits.DEFAULT_CONCURRENCY, "Requests in flight for %voxtral_transcribe and --each.")
    max_cost = setting(Float, None, "Refuse any call whose estimated cost in USD is higher.")
    budget = setting(Float, None, "What this session may spend in USD; what could exceed it is refused unsent.")
    cache = setting(Bool, True, "Answer a request made before from the cache ($0, nothing sent).")
    chunk_minutes = setting(
        Float, limits.DEFAULT_CHUNK_MINUTES, "%voxtral_transcribe cuts audio longer than this at pauses (0: never)."
    )
    history_path = setting(
        Unicode, None, "SQLite file of history and cache (default: the user cache dir, or $VOXMAGIC_HISTORY)."
    )
    stream = setting(Bool, True, "Stream answers as they are generated.")
    referer = setting(Unicode, None, "HTTP-Referer header (OpenRouter attribution).")
    title = setting(Unicode, Settings.title, "X-Title header (OpenRouter attribution).")
    audio_format = setting(Enum, DEFAULT_FORMAT, "Upload encoding.", choices=UPLOAD_FORMATS)
    trim_silence = setting(Bool, False, "Cut long pauses out of the audio before upload (as --trim-silence).")
    max_attempts = setting(Int, Settings.max_attempts, "Attempts for transient failures (429s are waited out apart).")
    backoff = setting(Float, Settings.backoff, "First retry delay in seconds; doubles each retry, with jitter.")
    read_timeout = setting(Float, Settings.read_timeout, "Seconds to wait for the next byte of an answer.")
    rate_limit_patience = setting(
        Float, Settings.rate_limit_patience, "Seconds to keep waiting out 429s (with Retry-After) before failing."
    )
    download_timeout = setting(Float, Settings.download_timeout, "Seconds an http(s) audio download may take.")
    display_mode = setting(
        Enum, "auto", "Live widgets in a kernel (auto), always widgets, or plain text.", ("auto", "widget", "text")
    )
    updates_per_second = setting(
        Float, limits.DEFAULT_UPDATES_PER_SECOND, "Bound on live display updates per second (at most 30)."
    )
    max_tool_rounds = setting(
        Int, limits.DEFAULT_TOOL_ROUNDS, "With --auto-tools, rounds of tool calls before stopping."
    )
    player_max_seconds = setting(
        Float, limits.DEFAULT_PLAYER_MAX_SECONDS, "Embed a player for audio up to this long, in s (0: never)."
    )

    def __init__(self, shell: Any = None, **kwargs: Any):
        super().__init__(shell=shell, **kwargs)
        if shell is not None and self not in shell.configurables:
            shell.configurables.append(self)  # makes %config VoxtralMagics.* work
        self.session = Session()

    @validate(
        "temperature",
        "max_tokens",
        "concurrency",
        "max_cost",
        "budget",
        "chunk_minutes",
        "max_attempts",
        "backoff",
        "read_timeout",
        "rate_limit_patience",
        "download_timeout",
        "updates_per_second",
        "max_tool_rounds",
        "player_max_seconds",
    )
    def _check_bound(self, proposal: Any) -> Any:
        try:
            return limits.check(proposal.trait.name, proposal.value, f"VoxtralMagics.{proposal.trait.name} =")
        except ConfigError as exc:
            raise TraitError(str(exc)) from None

    @observe("budget")
    def _set_budget(self, change: Any) -> None:
        from ..runner import ledger

        ledger.budget_usd = change.new

    @observe("history_path")
    def _set_history(self, change: Any) -> None:
        from ..runner import store

        store.use(change.new)

    @property
    def namespace(self) -> dict[str, Any]:
        """The user's variables, where names on a line are looked up and results are bound."""
        assert self.shell is not None, "VoxtralMagics needs a shell"
        return self.shell.user_ns

    @property
    def config_values(self) -> dict[str, Any]:
        """The session defaults, as the option builders read them."""
        return {name: getattr(self, name) for name in self.class_trait_names(config=True)}

    hidden = False  # the line being run ends with ";"

    def _table(self, magic_method: Any, line: str, run: Any) -> Any:
        """A line magic that returns a table: shown, unless the line ends with ``;``."""
        args, quiet = parse_line(magic_method, line)
        if args is None:  # --help
            return None
        self.hidden = quiet  # (what run builds only to be shown, it may skip)
        with one_line_errors():
            df = run(args)
        return None if quiet else df

    # -- the magics ------------------------------------------------------------------------

    @plain_help
    @magic_arguments("%voxtral")  # shown as %%voxtral: it is a cell magic
    @arguments(*COMMON, *ASK)
    @cell_magic("voxtral")  # type: ignore[arg-type]
    def voxtral(self, line: str, cell: str) -> Any:
        """Ask Voxtral about audio: the line names the audio, the cell body is the prompt. A
        ``# comment`` at the end of the line is ignored.

        ``{name}`` in the prompt is filled from the notebook (``{{`` for a literal brace). The
        answer streams into a live view; ``-o NAME`` stores the text (or parsed JSON, schema
        object, tool results) and ``_voxtral`` always holds the last full Response.
        """
        args = parse(self.voxtral, line)
        if args is None:  # --help
            return None
        with one_line_errors():  # imports too: a stop pressed during them is one line
            from .ask import run_ask
            from .options import ask_options

            return run_ask(ask_options(args, self.config_values), cell, self.namespace, self.session)

    @plain_help
    @magic_arguments()
    @arguments(*COMMON, *TRANSCRIBE)
    @line_magic("voxtral_transcribe")  # type: ignore[arg-type]
    def voxtral_transcribe(self, line: str) -> Any:
        """Transcribe (or translate) many audio sources at once into a DataFrame, one row per source.

        Columns: source, text, duration_s, cost_usd, error (+ prompt_tokens, completion_tokens,
        latency_s, attempts, chunks, cached, finish_reason, audio_format, generation_id,
        audio_sha256). A source that fails — unreadable, missing, refused — fills its ``error``; the
        others still come back. Audio longer than ``--chunk-minutes`` is cut at pauses, sent in
        pieces and stitched in order. What was answered before comes from the cache at $0; an
        interrupted run sends only what is missing. With a single source the transcript text is
        also in ``_voxtral_text`` (and ``NAME_text`` with ``-o NAME``). End the line with ``;`` to
        store the table without displaying it; a ``# comment`` after that is ignored.
        """

        def run(args: Any) -> Any:
            from dataclasses import replace

            from .options import transcribe_options
            from .tables import run_transcribe

            options = transcribe_options(args, self.config_values)
            options = replace(options, view=replace(options.view, hidden=self.hidden))
            return run_transcribe(options, self.namespace, self.session)

        return self._table(self.voxtral_transcribe, line, run)

    @plain_help
    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="store the table in this variable")
    @argument(
        "--all", action="store_true", help="every column (default: cost, time, outcome, sources, prompt, text, ...)"
    )
    @argument("--last", type=int, metavar="N", help="only the newest N requests")
    @argument(
        "--since",
        metavar="WHEN",
        help="only requests since a time ('2026-11-25 09:00'), a day ('today', 'yesterday') "
        "or for a duration back from now ('2h', '30min')",
    )
    @line_magic("voxtral_history")  # type: ignore[arg-type]
    def voxtral_history(self, line: str) -> Any:
        """Every request voxmagic has made, from its SQLite history, oldest first: cost_usd, time
        (local, to the second), outcome, sources, prompt, text, error, model, audio_seconds; with
        ``--all`` also parameters, audio digest and format, tokens, latency, attempts, cache key,
        provider, generation id... (``voxmagic.history()`` always returns every column)."""

        def run(args: Any) -> Any:
            from .tables import run_history

            return run_history(args, self.namespace)

        return self._table(self.voxtral_history, line, run)

    @plain_help
    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="store the table in this variable")
    @argument("--refresh", action="store_true", help="fetch the list now instead of using today's copy")
    @argument(
        "--provider",
        choices=list(PROVIDER_NAMES),
        metavar="NAME",
        help="whose models (default: the session's provider)",
    )
    @argument("--base-url", metavar="URL", help="whose models, by endpoint")
    @line_magic("voxtral_models")  # type: ignore[arg-type]
    def voxtral_models(self, line: str) -> Any:
        """The models that take audio, with their prices (USD per 1M prompt and completion tokens,
        per minute of audio). For OpenRouter the list is fetched at most once a day and cached;
        offline, the built-in prices are shown. ``source`` says which."""

        def run(args: Any) -> Any:
            from .tables import run_models

            url = args.base_url or url_for(args.provider, self.base_url, self.provider)  # the session's: its provider's
            settings = Settings.resolve(provider=args.provider or self.provider, base_url=url)
            return run_models(args, self.namespace, settings)

        return self._table(self.voxtral_models, line, run)

    @plain_help
    @magic_arguments()
    @arguments(*RECORD)
    @line_magic("voxtral_record")  # type: ignore[arg-type]
    def voxtral_record(self, line: str) -> None:
        """Record from the microphone in the notebook: press ● to record, ■ to stop. Live captions
        grow under the control while you speak (pieces cut at pauses, transcribed as they come)
        and the transcript of the whole replaces them at the stop. The recording is then audio
        like any other, in ``-o NAME`` and ``_voxtral_clip`` (``%%voxtral clip``,
        ``voxmagic.transcribe(clip)``), with a player; its transcript in ``NAME_text``. Where no
        microphone can be had (a terminal, nbconvert, a refused permission) one line says so."""
        args = parse(self.voxtral_record, line)
        if args is None:  # --help
            return
        with one_line_errors():
            from .options import record_options
            from .recorder import record

            record(record_options(args, self.config_values), self.namespace)

    @plain_help
    @magic_arguments()
    @line_magic("voxtral_reset")  # type: ignore[arg-type]
    def voxtral_reset(self, line: str) -> None:
        """Forget the conversation that ``%%voxtral --continue`` would follow up."""
        if parse(self.voxtral_reset, line) is None:  # --help
            return
        asked = len(self.session.conversation.responses) if self.session.conversation else 0
        self.session.conversation = None
        print("conversation cleared" if asked else "no conversation to clear")

    @plain_help
    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="store the table in this variable")
    @argument("--all", action="store_true", help="every column (default: cost, time, label, outcome, model, audio)")
    @argument("--reset", action="store_true", help="start the tally again from $0")
    @line_magic("voxtral_cost")  # type: ignore[arg-type]
    def voxtral_cost(self, line: str) -> Any:
        """What this session has spent: one row per call (and per abandoned attempt the provider
        may still bill) — cost_usd, time (local, to the second), label, outcome, model,
        audio_seconds; with ``--all`` also tokens, cost source and generation id — and the total."""

        def run(args: Any) -> Any:
            from .tables import run_cost

            return run_cost(args, self.namespace)

        return self._table(self.voxtral_cost, line, run)
