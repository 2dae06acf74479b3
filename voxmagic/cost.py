"""What a call costs: prices, estimates before sending, and a running session total.

Audio-token arithmetic (Voxtral paper; mistral-common's audio encoder, checked with mistral-common
1.13): 12.5 tokens per second of audio, padded up to whole 30-second windows of 375 tokens, plus
one begin-audio token per clip — 1 s → 376 tokens, 31 s → 751, 40 min → 30,001. That fixes how
much of the 32K context a clip takes; the money for audio is billed per second.

Cost model (OpenRouter's published prices for Voxtral Small): text prompt tokens at the prompt
price, completion tokens at the completion price, audio at the per-second price. The server's
``usage.cost`` always wins when it reports one; the estimate is an upper bound used for budgets
and ``--dry-run``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

# format_usd, the one money format, lives beside the tables that show it; voxmagic.cost.format_usd
# stays its name for everyone else
from . import limits
from .errors import ConfigError
from .frames import as_table, local_times, tidy
from .results import counted, format_usd

if TYPE_CHECKING:
    import pandas as pd

AUDIO_TOKENS_PER_SECOND = 12.5
AUDIO_WINDOW_S = 30.0
TOKENS_PER_WINDOW = 375
CONTEXT_TOKENS = 32_768
MAX_OUTPUT_TOKENS = 4_096
# Bound for a transcript's length: fast speech is ~3.5 words/s ≈ 5 tokens/s; leave room for more.
TRANSCRIPT_TOKENS_PER_SECOND = 8.0


def audio_tokens(duration_s: float) -> int:
    """Context tokens one clip of ``duration_s`` takes."""
    windows = max(1, math.ceil(duration_s / AUDIO_WINDOW_S - 1e-9))
    return 1 + TOKENS_PER_WINDOW * windows


def transcript_token_bound(duration_s: float) -> int:
    """A ``max_tokens`` that fits any honest transcript of ``duration_s`` but stops a runaway loop."""
    return min(MAX_OUTPUT_TOKENS, 64 + math.ceil(duration_s * TRANSCRIPT_TOKENS_PER_SECOND))


def text_tokens(text: str) -> int:
    """A deliberately generous count (~4 characters per token) for estimates."""
    return math.ceil(len(text) / 4) if text else 0


@dataclass(frozen=True)
class Pricing:
    """USD per prompt token, per completion token, per audio second."""

    prompt: float
    completion: float
    audio_second: float

    def cost(self, prompt_tokens: int, completion_tokens: int, audio_seconds: float, audio_tokens: int = 0) -> float:
        """Cost where audio is billed per second, not as prompt tokens."""
        return (
            (prompt_tokens - audio_tokens) * self.prompt
            + completion_tokens * self.completion
            + audio_seconds * self.audio_second
        )


VOXTRAL_SMALL = Pricing(prompt=0.10e-6, completion=0.30e-6, audio_second=100e-6)
# Seed prices: what estimates use offline, before (or without) the live list that
# :mod:`voxmagic.prices` loads from OpenRouter's ``GET /models``. Mistral's own API names
# (voxtral-small-latest, voxtral-mini-latest) are left out: published sources disagree on their
# output price ($0.30 vs $0.40 per 1M) and bill audio per minute at another rate, so an unknown
# model keeps falling back to Voxtral Small's OpenRouter price below.
PRICES: dict[str, Pricing] = {"mistralai/voxtral-small-24b-2507": VOXTRAL_SMALL}
# Live prices registered by voxmagic.prices; they win over the seeds. Replacing one entry of a
# dict is atomic, so estimates on other threads see either the old price or the new one.
_REGISTERED: dict[str, Pricing] = {}


def register(model: str, pricing: Pricing) -> None:
    """Use ``pricing`` for ``model`` from now on (a live price from the provider's model list)."""
    _REGISTERED[model] = pricing


def clear_registered() -> None:
    """Forget every registered live price: back to the seeds."""
    _REGISTERED.clear()


def pricing_for(model: str) -> Pricing:
    """The live price of ``model`` when one was registered, else its seed price; unknown models
    are priced as Voxtral Small (an assumption)."""
    return _REGISTERED.get(model) or PRICES.get(model, VOXTRAL_SMALL)


@dataclass(frozen=True)
class Estimate:
    """An upper bound on a call's cost, computed before anything is sent."""

    usd: float
    prompt_tokens: int
    completion_tokens: int
    audio_seconds: float

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(
            self.usd + other.usd,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.audio_seconds + other.audio_seconds,
        )

    def __str__(self) -> str:
        return (
            f"≤ {format_usd(self.usd)} ({self.audio_seconds:.1f} s audio, ≤{self.prompt_tokens:,} prompt + "
            f"≤{self.completion_tokens:,} completion tokens)"
        )


def estimate(
    durations: Iterable[float], prompt: str, max_tokens: int | None, pricing: Pricing = VOXTRAL_SMALL
) -> Estimate:
    """Upper bound: every clip's padded audio tokens, the prompt, and ``max_tokens`` of output
    (the model's output limit when unset)."""
    durations = list(durations)
    seconds = sum(durations)
    a_tokens = sum(audio_tokens(d) for d in durations)
    prompt_tokens = a_tokens + text_tokens(prompt) + 8  # role/format tokens
    completion = max_tokens or MAX_OUTPUT_TOKENS
    usd = pricing.cost(prompt_tokens, completion, seconds, audio_tokens=a_tokens)
    return Estimate(usd, prompt_tokens, completion, seconds)


@dataclass(frozen=True)
class LedgerEntry:
    time: float
    label: str
    model: str
    cost_usd: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    audio_seconds: float
    cost_source: str  # "reported", "estimated", "unknown" or "refused" (an error status: not billed)
    generation_id: str | None = None
    # answered, cached, failed (after the server started, or refused), abandoned (retried after the
    # server started: it may still bill that attempt), cancelled (stopped after it was sent: it may bill)
    outcome: str = "answered"


@dataclass
class CostLedger:
    """Thread-safe running total of what a session has spent (requests finish on another thread).

    ``budget_usd``, when set, is what the whole session may spend: calls whose estimate exceeds
    what is left are refused before sending.
    """

    entries: list[LedgerEntry] = field(default_factory=list)
    budget_usd: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "budget_usd" and value is not None:  # ``voxmagic.ledger.budget_usd = ...`` as %config's
            value = limits.check("budget", value, "voxmagic.ledger.budget_usd =")
        super().__setattr__(name, value)

    @property
    def remaining_usd(self) -> float | None:
        return None if self.budget_usd is None else max(0.0, self.budget_usd - self.total_usd)

    def add(self, entry: LedgerEntry) -> LedgerEntry:
        with self._lock:
            self.entries.append(entry)
        return entry

    def record(self, response, label: str = "") -> LedgerEntry:
        """Add a :class:`~voxmagic.results.Response`."""
        u = response.usage
        return self.add(
            LedgerEntry(
                time.time(),
                label,
                response.model,
                response.cost_usd,
                u.prompt_tokens,
                u.completion_tokens,
                response.audio_seconds,
                response.cost_source,
                response.generation_id,
                "cached" if response.cached else "answered",
            )
        )

    @property
    def total_usd(self) -> float:
        with self._lock:
            return sum(e.cost_usd or 0.0 for e in self.entries)

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.entries)

    def reset(self) -> None:
        with self._lock:
            self.entries.clear()

    def to_dataframe(self) -> pd.DataFrame:
        """Every entry, oldest first, as a :func:`~voxmagic.frames.as_table` table: ``time`` in
        local time, token counts as nullable Int64, text columns with None when empty."""
        import pandas as pd

        with self._lock:
            rows = [asdict(e) for e in self.entries]
        columns = list(LedgerEntry.__dataclass_fields__)
        df = tidy(pd.DataFrame(rows, columns=columns), columns[1:])
        df["time"] = local_times(df["time"])
        return as_table(df)

    def summary(self) -> str:
        """One line: the total, the calls of unknown cost, attempts abandoned after the provider
        had started (it may bill them), and what is left of the budget."""
        with self._lock:
            entries = list(self.entries)
        cached = sum(e.outcome == "cached" for e in entries)
        unknown = sum(e.cost_usd is None for e in entries)
        abandoned = sum(e.outcome == "abandoned" for e in entries)
        cancelled = sum(e.outcome == "cancelled" for e in entries)
        notes = [
            f"{counted(unknown, 'call')} of unknown cost" if unknown else "",
            f"{counted(abandoned, 'abandoned attempt')} the provider may bill" if abandoned else "",
            f"{counted(cancelled, 'stopped call')} the provider may bill" if cancelled else "",
            f"{format_usd(self.remaining_usd)} of the {format_usd(self.budget_usd)} budget left"
            if self.budget_usd is not None
            else "",
        ]
        note = "; ".join(n for n in notes if n)
        total = sum(e.cost_usd or 0.0 for e in entries)
        calls = counted(len(entries) - cached, "call") + (f" and {_from_cache(cached)}" if cached else "")
        return f"total {format_usd(total)} over {calls}" + (f" ({note})" if note else "")

    def tally(self, usd: float | None, calls: int = 1, unknown: int = 0) -> str:
        """The cost line under every result: this call's cost (``unknown`` of the ``calls`` have
        none: a failure, or a server that does not say) and the session's running total."""
        if calls == 0:
            return f"nothing sent · {self}"
        these = "this call" if calls == 1 else f"these {calls} calls"
        if unknown >= calls or usd is None:
            return f"{these}: cost unknown · {self}"
        return f"{these} {format_usd(usd)}" + (f" ({unknown} of unknown cost)" if unknown else "") + f" · {self}"

    def tally_since(self, mark: int) -> str:
        """:meth:`tally` of the calls added since ``mark`` (:attr:`calls` before a batch began):
        every request a batch sent, the failed and unpriced ones too, and none the cache answered.
        (Calls of another job running meanwhile are among them.)"""
        with self._lock:
            sent = [e for e in self.entries[mark:] if e.outcome != "cached"]
        unknown = sum(e.cost_usd is None for e in sent)
        return self.tally(sum(e.cost_usd or 0.0 for e in sent), len(sent), unknown)

    def __str__(self) -> str:
        """``session $0.0123 (4 calls)``; answers from the cache cost nothing and are not calls:
        ``session $0.0123 (4 calls, 3 answers from the cache)``."""
        with self._lock:
            cached = sum(e.outcome == "cached" for e in self.entries)
            sent = len(self.entries) - cached
        calls = counted(sent, "call") + (f", {_from_cache(cached)}" if cached else "")
        return f"session {format_usd(self.total_usd)} ({calls})"


def _from_cache(n: int) -> str:
    """Answers from the cache cost nothing and are not calls."""
    return f"{counted(n, 'answer')} from the cache"


ASK_THE_TEXT = (
    "transcribe it first (%voxtral_transcribe or voxmagic.transcribe split long audio) and ask about the text"
)


def check_length(durations: Sequence[float | None], advice: str = ASK_THE_TEXT) -> None:
    """Audio beyond Voxtral's 32K-token context would be refused after a long upload: say so now."""
    known = [d for d in durations if d is not None]
    if sum(audio_tokens(d) for d in known) > CONTEXT_TOKENS - 1_000:
        minutes = sum(known) / 60
        raise ConfigError(
            f"{minutes:.0f} min of audio is more than Voxtral's context holds (about 40 min in one request); {advice}"
        )
