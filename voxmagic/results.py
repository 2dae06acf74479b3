"""What comes back: typed, self-describing results with a readable text form everywhere."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


def format_usd(usd: float | None) -> str:
    """Dollars with enough digits to see a cheap call: $0.000604, $0.0123, $1.2346 (the one money
    format of everything voxmagic shows; also ``voxmagic.cost.format_usd``)."""
    if usd is None:
        return "cost unknown"
    return f"${usd:.6f}" if abs(usd) < 0.01 else f"${usd:.4f}"


def counted(n: int, noun: str) -> str:
    """``1 call``, ``3 calls``: a count as read aloud (nouns that take an s)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Usage:
    """Token counts and the server's cost; every field may be missing, so every field is optional."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    audio_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: float | None = None  # USD (OpenRouter credits), as reported
    # seconds of audio the server says it billed: Mistral's ``prompt_audio_seconds``, vLLM's
    # ``{"type": "duration", "seconds"}``; OpenRouter's chat usage does not say
    audio_seconds: float | None = None

    @classmethod
    def from_api(cls, data: dict | None) -> Usage:
        data = data or {}
        prompt_details = data.get("prompt_tokens_details") or {}
        completion_details = data.get("completion_tokens_details") or {}
        cost = data.get("cost")
        seconds = data.get("prompt_audio_seconds")
        if seconds is None and data.get("type") == "duration":
            seconds = data.get("seconds")
        return cls(
            prompt_tokens=_int(data.get("prompt_tokens")),
            completion_tokens=_int(data.get("completion_tokens")),
            total_tokens=_int(data.get("total_tokens")),
            audio_tokens=_int(prompt_details.get("audio_tokens")),
            cached_tokens=_int(prompt_details.get("cached_tokens")),
            reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
            cost=_float(cost),
            audio_seconds=s if (s := _float(seconds)) and s > 0 else None,
        )


@dataclass(frozen=True)
class ToolCall:
    """A function the model asked to call; ``arguments`` is the raw JSON text it produced."""

    id: str
    name: str
    arguments: str

    @property
    def args(self) -> dict:
        return json.loads(self.arguments or "{}")


CUT = "cut at the output limit"  # an answer whose finish_reason is "length", said alike in every summary


@dataclass
class Response:
    """One completed chat-completions call."""

    text: str
    model: str
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    cost_source: str = "unknown"  # "reported" by the server, or "estimated" here
    audio_seconds: float = 0.0
    latency_s: float = 0.0
    ttft_s: float | None = None
    generation_id: str | None = None
    provider: str | None = None
    attempts: int = 1
    retries: list[tuple[str, float]] = field(default_factory=list)  # (error, seconds waited)
    tool_calls: list[ToolCall] = field(default_factory=list)
    parsed: Any = None  # the decoded JSON when a JSON response_format was asked for
    parse_error: str | None = None
    sources: list[str] = field(default_factory=list)
    cached: bool = False  # answered from voxmagic's cache: nothing sent, nothing spent
    # timed pieces of the text, when the server gives them (a transcriptions endpoint):
    # dicts with start_s, end_s (seconds from the start of the audio sent) and text
    segments: list[dict] = field(default_factory=list)
    # functions run for the model's tool calls before this answer: name, arguments, result, error, round
    tool_runs: list[dict] = field(default_factory=list)
    # with tool calls run, one Response per round (this one sums their cost, tokens and time)
    rounds: list[Response] = field(default_factory=list)
    stopped: str | None = None  # why the model's tool calls were left unanswered (not run, rounds or budget spent)

    @property
    def value(self) -> Any:
        """What a user wants back: parsed JSON if asked for, else the text."""
        return self.parsed if self.parsed is not None else self.text

    @property
    def summary(self) -> str:
        cost = format_usd(self.cost_usd)
        toks = self.usage.completion_tokens
        bits = [
            self.model,
            f"{self.audio_seconds:.1f} s audio",
            f"{toks} tokens" if toks is not None else None,
            CUT if self.finish_reason == "length" else None,
            "cached, $0" if self.cached else cost,
            f"{self.latency_s:.2f} s",
            f"{self.attempts} attempts" if self.attempts > 1 else None,
        ]
        return " · ".join(b for b in bits if b)

    def __str__(self) -> str:
        return self.text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(f"{self.text}\n[{self.summary}]")

    def to_row(self) -> dict:
        u = self.usage
        return {
            "text": self.text,
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "cost_usd": self.cost_usd,
            "latency_s": self.latency_s,
            "attempts": self.attempts,
            "finish_reason": self.finish_reason,
            "generation_id": self.generation_id,
            "cached": self.cached,
            **({"tool_calls": [asdict(c) for c in self.tool_calls]} if self.tool_calls else {}),
        }


def attach_json(response: Response, model: Any = None) -> Response:
    """Parse the text as JSON, into ``model`` (a pydantic class) when given.

    A failure is recorded in ``parse_error``, not raised: the text is still the answer.
    """
    text = response.text.strip()
    if text.startswith("```"):  # some models fence JSON even when asked not to
        text = text.strip("`").removeprefix("json").strip()
    try:
        response.parsed = json.loads(text)
    except ValueError as exc:
        response.parse_error = f"the answer is not valid JSON: {exc}"
        return response
    if model is not None:
        try:
            response.parsed = model.model_validate(response.parsed)
        except Exception as exc:  # pydantic's ValidationError, without importing pydantic here
            response.parse_error = (
                f"the answer does not fit {model.__name__}: {str(exc).splitlines()[0]}; .parsed is the plain JSON"
            )
    return response
