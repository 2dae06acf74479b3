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

from .. import limits
from ..errors import ConfigError, VoxmagicError
from ..formats import DEFAULT_FORMAT, UPLOAD_FORMATS
from ..providers import PROVIDER_NAMES
from ..settings import Settings
from .arguments import ASK, COMMON, TRANSCRIBE, arguments, parse, parse_line
from .session import Session

MAGICS = {
    "cell": ["voxtral"],
    "line": ["voxtral_transcribe", "voxtral_cost", "voxtral_history", "voxtral_reset", "voxtral_models"],
}


@contextmanager
def one_line_errors() -> Iterator[None]:
    """At the magic boundary every deliberate error becomes one line without a traceback."""
    try:
        yield
    except VoxmagicError as exc:
        kept = " (the partial answer is in _voxtral_error.partial_text)" if getattr(exc, "partial_text", "") else ""
        raise UsageError(f"{exc}{kept}") from None


@magics_class
class VoxtralMagics(Magics):
    """Talk to audio with Voxtral. Session defaults: ``%config VoxtralMagics.<name> = value``."""

    model = Unicode(
        None, allow_none=True, help="Model id (default mistralai/voxtral-small-24b-2507, or $VOXMAGIC_MODEL)."
    ).tag(config=True)
    base_url = Unicode(
        None,
        allow_none=True,
        help="OpenAI-compatible endpoint base (default https://openrouter.ai/api/v1, or $VOXMAGIC_BASE_URL).",
    ).tag(config=True)
    provider = Enum(
        list(PROVIDER_NAMES),
        default_value=None,
        allow_none=True,
        help="Where Voxtral runs: openrouter, mistral (Mistral's API) or openai-compatible "
        "(e.g. a self-hosted vLLM; set base_url). Default: from base_url, else "
        "openrouter, or $VOXMAGIC_PROVIDER.",
    ).tag(config=True)
    api_key_env = Unicode(
        None,
        allow_none=True,
        help="Environment variable (or .env entry) that holds the API key (default: "
        "the provider's: OPENROUTER_API_KEY, MISTRAL_API_KEY, OPENAI_API_KEY).",
    ).tag(config=True)
    temperature = Float(None, allow_none=True, help="Default temperature for %%voxtral (0-2).").tag(config=True)
    max_tokens = Int(None, allow_none=True, help="Default max_tokens for %%voxtral.").tag(config=True)
    concurrency = Int(
        limits.DEFAULT_CONCURRENCY, help="Requests in flight for %voxtral_transcribe and %%voxtral --each."
    ).tag(config=True)
    max_cost = Float(None, allow_none=True, help="Refuse any call whose estimated cost in USD is higher.").tag(
        config=True
    )
    budget = Float(
        None,
        allow_none=True,
        help="What this session may spend in USD; calls that could exceed what is left are refused before sending.",
    ).tag(config=True)
    cache = Bool(True, help="Answer a request made before from the cache ($0, nothing sent).").tag(config=True)
    chunk_minutes = Float(
        limits.DEFAULT_CHUNK_MINUTES, help="%voxtral_transcribe cuts audio longer than this at pauses (0: never)."
    ).tag(config=True)
    history_path = Unicode(
        None,
        allow_none=True,
        help="SQLite file of history and cache (default: the user cache dir, or $VOXMAGIC_HISTORY).",
    ).tag(config=True)
    stream = Bool(True, help="Stream answers as they are generated.").tag(config=True)
    referer = Unicode(None, allow_none=True, help="HTTP-Referer header (OpenRouter attribution).").tag(config=True)
    title = Unicode(Settings.title, help="X-Title header (OpenRouter attribution).").tag(config=True)
    audio_format = Enum(UPLOAD_FORMATS, default_value=DEFAULT_FORMAT, help="Upload encoding.").tag(config=True)
    max_attempts = Int(
        Settings.max_attempts, help="Attempts for transient failures (429s are waited out separately)."
    ).tag(config=True)
    backoff = Float(Settings.backoff, help="First retry delay in seconds; doubles each retry, with jitter.").tag(
        config=True
    )
    read_timeout = Float(Settings.read_timeout, help="Seconds to wait for the next byte of an answer.").tag(config=True)
    rate_limit_patience = Float(
        Settings.rate_limit_patience,
        help="Seconds to keep waiting out 429 rate limits (with Retry-After) before a request fails.",
    ).tag(config=True)
    download_timeout = Float(Settings.download_timeout, help="Seconds an http(s) audio download may take in all.").tag(
        config=True
    )
    display_mode = Enum(
        ["auto", "widget", "text"],
        default_value="auto",
        help="Live widgets in a kernel (auto), always widgets, or plain text.",
    ).tag(config=True)
    updates_per_second = Float(
        limits.DEFAULT_UPDATES_PER_SECOND, help="Bound on live display updates per second (at most 30)."
    ).tag(config=True)
    max_tool_rounds = Int(
        limits.DEFAULT_TOOL_ROUNDS, help="With --auto-tools, rounds of tool calls before stopping."
    ).tag(config=True)
    player_max_seconds = Float(
        limits.DEFAULT_PLAYER_MAX_SECONDS,
        help="Embed an audio player for audio up to this long in seconds (it is saved in the notebook; 0: never).",
    ).tag(config=True)

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

    def _table(self, magic_method: Any, line: str, run: Any) -> Any:
        """A line magic that returns a table: shown, unless the line ends with ``;``."""
        args, quiet = parse_line(magic_method, line)
        with one_line_errors():
            df = run(args)
        return None if quiet else df

    # -- the magics ------------------------------------------------------------------------

    @magic_arguments("%voxtral")  # shown as %%voxtral: it is a cell magic
    @arguments(*COMMON, *ASK)
    @cell_magic("voxtral")  # type: ignore[arg-type]
    def voxtral(self, line: str, cell: str) -> Any:
        """Ask Voxtral about audio: the line names the audio, the cell body is the prompt.

        ``{name}`` in the prompt is filled from the notebook (``{{`` for a literal brace). The
        answer streams into a live view; ``-o NAME`` stores the text (or parsed JSON, schema
        object, tool results) and ``_voxtral`` always holds the last full Response.
        """
        from .ask import run_ask
        from .options import ask_options

        args = parse(self.voxtral, line)
        with one_line_errors():
            return run_ask(ask_options(args, self.config_values), cell, self.namespace, self.session)

    @magic_arguments()
    @arguments(*COMMON, *TRANSCRIBE)
    @line_magic("voxtral_transcribe")  # type: ignore[arg-type]
    def voxtral_transcribe(self, line: str) -> Any:
        """Transcribe (or translate) many audio sources at once into a DataFrame, one row per source.

        Columns: source, duration_s, text, prompt_tokens, completion_tokens, cost_usd, latency_s,
        error (+ attempts, finish_reason, audio_format, audio_sha256, generation_id, cached,
        chunks). A source that fails — unreadable, missing, refused — fills its ``error``; the
        others still come back. Audio longer than ``--chunk-minutes`` is cut at pauses, sent in
        pieces and stitched in order. What was answered before comes from the cache at $0; an
        interrupted run sends only what is missing. With a single source the transcript text is
        also in ``_voxtral_text`` (and ``NAME_text`` with ``-o NAME``). End the line with ``;`` to
        store the table without displaying it.
        """
        from .options import transcribe_options
        from .tables import run_transcribe

        return self._table(
            self.voxtral_transcribe,
            line,
            lambda args: run_transcribe(transcribe_options(args, self.config_values), self.namespace, self.session),
        )

    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="store the table in this variable")
    @argument("--last", type=int, metavar="N", help="only the newest N requests")
    @argument(
        "--since",
        metavar="WHEN",
        help="only requests since a time ('2026-11-25 09:00') or for a duration back from now ('2h', '30min')",
    )
    @line_magic("voxtral_history")  # type: ignore[arg-type]
    def voxtral_history(self, line: str) -> Any:
        """Every request voxmagic has made, from its SQLite history: time, model, parameters,
        prompt, audio digest and seconds, text, tokens, cost, latency, attempts, error, cached."""
        from .tables import run_history

        return self._table(self.voxtral_history, line, lambda args: run_history(args, self.namespace))

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
        from .tables import run_models

        def run(args: Any) -> Any:
            settings = Settings.resolve(
                provider=args.provider or self.provider, base_url=args.base_url or self.base_url
            )
            return run_models(args, self.namespace, settings)

        return self._table(self.voxtral_models, line, run)

    @magic_arguments()
    @line_magic("voxtral_reset")  # type: ignore[arg-type]
    def voxtral_reset(self, line: str) -> None:
        """Forget the conversation that ``%%voxtral --continue`` would follow up."""
        parse(self.voxtral_reset, line)
        asked = len(self.session.conversation.responses) if self.session.conversation else 0
        self.session.conversation = None
        print("conversation cleared" if asked else "no conversation to clear")

    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="store the table in this variable")
    @argument("--reset", action="store_true", help="start the tally again from $0")
    @line_magic("voxtral_cost")  # type: ignore[arg-type]
    def voxtral_cost(self, line: str) -> Any:
        """What this session has spent: one row per call (and per abandoned attempt the provider
        may still bill), and the total."""
        from .tables import run_cost

        return self._table(self.voxtral_cost, line, lambda args: run_cost(args, self.namespace))
