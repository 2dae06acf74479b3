"""An answer as it arrives: the events a caller sees while a request runs, and the accumulator that
joins server-sent chunks (or one whole message) into the answer.

Server text is redacted here, as it arrives (see :mod:`voxmagic.redact`): the deltas a view shows,
the final text, tool-call arguments and the partial text a failure keeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import APIError
from .http_errors import payload_error
from .redact import Redactor, StreamRedactor
from .results import ToolCall


@dataclass(frozen=True)
class TextDelta:
    """A piece of streamed answer text."""

    text: str


@dataclass(frozen=True)
class Retrying:
    """The previous attempt failed and another follows after ``wait_s``; discard partial text.

    When ``error.generation_id`` is set the server had started on the failed attempt, so it may
    bill it: the runner records such an attempt in history as abandoned."""

    attempt: int
    error: APIError
    wait_s: float


@dataclass(frozen=True)
class Planned:
    """The question is ready and checked, and goes out now: its audio is decoded and counted, its
    cost estimated (a view that started before the audio was read can now say what it waits on)."""

    request: Any
    estimate: Any


@dataclass(frozen=True)
class Sent:
    """The request has left: its body is written to the connection (httpcore's trace), so the
    answer is the server's to give now (once per attempt; a view shown late waits for this)."""


Event = TextDelta | Retrying | Planned | Sent
EventHandler = Callable[[Event], None]


@dataclass
class Accumulator:
    """Joins a stream (or a whole message) into one answer, notifying ``on_event`` per delta."""

    on_event: EventHandler | None
    redactor: Redactor = field(default_factory=Redactor)
    parts: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: dict | None = None
    id: str | None = None
    model: str | None = None
    provider: str | None = None
    first_token_at: float | None = None
    done: bool = False
    _shown: StreamRedactor | None = None

    @property
    def text(self) -> str:
        return self.redactor.text("".join(self.parts))

    @property
    def complete(self) -> bool:
        """The answer is whole even if the stream then broke: the server said why it finished."""
        return self.done or self.finish_reason not in (None, "error")

    def _meta(self, payload: dict) -> None:
        self.id = payload.get("id") or self.id
        self.model = payload.get("model") or self.model
        self.provider = payload.get("provider") or self.provider
        if payload.get("usage"):
            self.usage = payload["usage"]

    def add_chunk(self, chunk: dict) -> None:
        self._meta(chunk)
        if chunk.get("error"):
            raise payload_error(chunk["error"], partial_text=self.text, generation_id=self.id)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._text(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
                fn = call.get("function") or {}
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] = fn.get("name") or slot["name"]
                slot["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason") == "error":
                raise payload_error(
                    choice.get("error") or {"message": "the provider reported an error"},
                    partial_text=self.text,
                    generation_id=self.id,
                )
            self.finish_reason = choice.get("finish_reason") or self.finish_reason

    def add_message(self, payload: dict) -> None:
        """A whole (non-streamed) answer; a 200 may still carry ``finish_reason: "error"``."""
        self._meta(payload)
        if payload.get("error"):
            raise payload_error(payload["error"], generation_id=self.id)
        choices = payload.get("choices") or [{}]
        message = choices[0].get("message") or {}
        if message.get("content"):
            self._text(message["content"])
        for i, call in enumerate(message.get("tool_calls") or []):
            fn = call.get("function") or {}
            self.calls[i] = {
                "id": call.get("id", ""),
                "name": fn.get("name", ""),
                "arguments": fn.get("arguments") or "",
            }
        self.finish_reason = choices[0].get("finish_reason")
        if self.finish_reason == "error":
            raise payload_error(
                choices[0].get("error") or {"message": "the provider reported an error"},
                partial_text=self.text,
                generation_id=self.id,
            )
        self.done = True

    def _text(self, text: str) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.parts.append(text)
        if self.on_event:
            if self._shown is None:
                self._shown = self.redactor.stream()
            shown = self._shown.feed(text)
            if shown:
                self.on_event(TextDelta(shown))

    def finish(self) -> None:
        """Show what the redactor held back at the end of the text."""
        if self._shown is not None and self.on_event:
            rest = self._shown.flush()
            if rest:
                self.on_event(TextDelta(rest))

    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(c["id"], self.redactor.text(c["name"]), self.redactor.text(c["arguments"]))
            for _, c in sorted(self.calls.items())
        ]
