"""Chat requests, typed: a question about audio (:class:`ChatRequest`) and every sampling and output
option of the chat-completions endpoint (:class:`Params`), frozen and checked when made.

A bad value (temperature 7, four stops too many) fails here with a message naming the option,
instead of as a 400 from the server after the audio was uploaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from . import limits
from .errors import ConfigError
from .providers import DEFAULT_MODEL

if TYPE_CHECKING:
    from .audio import EncodedAudio

TRANSCRIPT_TEMPERATURE = 0.0  # Mistral's recommendation for transcription (unless one is given)


@dataclass(frozen=True)
class Params:
    """Every sampling and output option of the chat-completions endpoint; ``None`` means unset."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    # given as "json", a response_format dict, a JSON schema or a pydantic model; kept as the dict
    response_format: Any = None
    tools: Sequence[Mapping[str, Any]] | None = None  # kept as a tuple
    tool_choice: str | Mapping[str, Any] | None = None
    stream: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. provider routing, user
    # the pydantic model given as response_format, to parse the answer into (never sent)
    response_model: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        elif self.stop is not None:
            if not isinstance(self.stop, (list, tuple)):
                raise ConfigError(f"stop={self.stop!r}: give a string, or a list of at most 4")
            object.__setattr__(self, "stop", tuple(self.stop))
        if self.tools is not None:
            object.__setattr__(self, "tools", tuple(self.tools))
        for f in fields(self):  # checked; a whole number given as 2.0 is sent as 2
            value = limits.check(f.name, getattr(self, f.name)) if f.name in limits.BOUNDS else None
            if value is not None:
                object.__setattr__(self, f.name, value)
        object.__setattr__(self, "stream", limits.flag("stream", self.stream))  # numpy's bool too
        if not isinstance(self.extra, Mapping):
            raise ConfigError(f"extra={self.extra!r:.60}: give a dict of more request fields, e.g. {{'user': 'u1'}}")
        if self.stop is not None and (len(self.stop) > 4 or not all(isinstance(s, str) and s for s in self.stop)):
            raise ConfigError("stop takes at most 4 non-empty strings")
        if self.tool_choice == "required" and not self.tools:
            raise ConfigError("tool_choice='required' needs tools: give tools=[...] (--tools NAMES)")
        if isinstance(self.tool_choice, str) and self.tool_choice not in ("none", "auto", "required"):
            if not self.tools or self.tool_choice not in _tool_names(self.tools):
                raise ConfigError(
                    f"tool_choice={self.tool_choice!r}: use none, auto, required or the name of one of the tools"
                )
            object.__setattr__(self, "tool_choice", {"type": "function", "function": {"name": self.tool_choice}})
        if self.response_format is not None:
            if hasattr(self.response_format, "model_validate"):
                object.__setattr__(self, "response_model", self.response_format)
            object.__setattr__(self, "response_format", response_format(self.response_format))

    @property
    def wants_json(self) -> bool:
        return self.response_format is not None and self.response_format.get("type") in ("json_object", "json_schema")

    def body(self) -> dict[str, Any]:
        """Only the options that are set, as the endpoint names them."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("extra", "response_model") or value is None:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        out.update(self.extra)
        return out


PARAM_NAMES = frozenset(f.name for f in fields(Params))


def elided(clip: EncodedAudio) -> str:
    return f"<{len(clip.data):,} bytes of {clip.format}, {clip.duration_s:.2f} s>"


def _turn_text(turn: Mapping[str, Any]) -> str:
    calls = [c.get("function", {}).get("arguments") or "" for c in turn.get("tool_calls") or []]
    return " ".join([turn.get("content") or "", *calls]).strip()


def _tool_names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    return [t.get("function", {}).get("name") for t in tools]


def response_format(spec: Any) -> dict[str, Any]:
    """Accept ``"json"``, ``"text"``, a full response_format dict, a JSON schema, or a pydantic model."""
    if spec in ("json", "json_object"):
        return {"type": "json_object"}
    if spec == "text":
        return {"type": "text"}
    if hasattr(spec, "model_json_schema"):  # a pydantic model class
        return _json_schema(spec.__name__, spec.model_json_schema())
    if isinstance(spec, Mapping):
        if spec.get("type") in ("text", "json_object", "json_schema"):
            return dict(spec)
        if "properties" in spec or spec.get("type") == "object":
            return _json_schema(str(spec.get("title", "answer")), dict(spec))
    raise ConfigError(f"response_format: expected 'json', a JSON schema dict or a pydantic model, not {spec!r:.80}")


def _json_schema(name: str, schema: dict) -> dict[str, Any]:
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64] or "answer"
    return {"type": "json_schema", "json_schema": {"name": safe, "strict": True, "schema": schema}}


@dataclass(frozen=True)
class ChatRequest:
    """A question about audio: a user message with the prompt text and one audio part per
    clip, then any ``turns`` of the conversation so far.

    ``system`` is folded into the user text: Voxtral's model card says system prompts are not
    supported yet, and folded instructions work on every host.
    ``dialect`` is "openrouter", "openai" (vLLM and other OpenAI-compatible servers) or "mistral"
    (Mistral's own API, whose audio part is a bare base64 string with no format).
    """

    prompt: str
    audio: tuple[EncodedAudio, ...]
    params: Params = Params()
    model: str = DEFAULT_MODEL
    system: str | None = None
    dialect: str = "openrouter"
    # Messages after the first one, already in the endpoint's shape: earlier answers, tool calls
    # and their results, follow-up questions. The API keeps no state, so a conversation is
    # resent whole; its audio stays in the first message only, sent (and counted) once.
    turns: tuple[Mapping[str, Any], ...] = ()

    @property
    def audio_seconds(self) -> float:
        return sum(a.duration_s for a in self.audio)

    @property
    def text(self) -> str:
        """The first message's text (the opening question)."""
        return f"{self.system.strip()}\n\n{self.prompt}" if self.system else self.prompt

    @property
    def all_text(self) -> str:
        """Every text the request carries, for token estimates."""
        return "\n".join([self.text, *(_turn_text(t) for t in self.turns)])

    @property
    def question(self) -> str:
        """What is being asked now: the last follow-up question, else the opening one."""
        asked = [t["content"] for t in self.turns if t.get("role") == "user"]
        return asked[-1] if asked else self.text

    def body(
        self, *, elide_audio: bool = False, audio_data: Callable[[EncodedAudio], str] | None = None
    ) -> dict[str, Any]:
        """The JSON body; ``elide_audio`` or ``audio_data`` replace the base64 audio (previews, keys)."""
        if elide_audio:
            audio_data = elided
        parts: list[dict[str, Any]] = [{"type": "text", "text": self.text}]
        for clip in self.audio:
            data = audio_data(clip) if audio_data else clip.base64()
            if self.dialect == "mistral":
                parts.append({"type": "input_audio", "input_audio": data})
            else:
                parts.append({"type": "input_audio", "input_audio": {"data": data, "format": clip.format}})
        messages = [{"role": "user", "content": parts}, *(dict(t) for t in self.turns)]
        body = {"model": self.model, "messages": messages, **self.params.body()}
        if self.dialect == "openrouter" and (self.params.response_format or self.params.tools):
            # Route only to providers that honour these options instead of silently ignoring them.
            body.setdefault("provider", {"require_parameters": True})
        return body

    def cache_key(self, base_url: str) -> str:
        """Same endpoint, model, prompt, parameters and audio bytes ⇒ same key (streaming or not)."""
        body = self.body(audio_data=lambda clip: f"sha256:{clip.sha256}")
        body.pop("stream", None)
        blob = json.dumps({"base_url": base_url.rstrip("/"), "body": body}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def preview(self) -> str:
        """The request as JSON with audio elided (for --dry-run and logs); never includes a key."""
        return json.dumps(self.body(elide_audio=True), indent=2, ensure_ascii=False)
