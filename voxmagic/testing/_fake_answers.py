"""The fake model: deterministic answers, usage and cost for a validated request.

Every answer is derived from what the server really decoded (durations, hashes, prompt), so a
test can check end to end that the right bytes and words reached the "model". Answers are
split into the pieces that will be streamed; one piece is one token, which keeps
`completion_tokens`, `max_tokens` cuts and mid-stream faults consistent with each other.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ._fake_requests import ParsedRequest

FILLER = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua"
).split()
PRICE_PROMPT = 0.10e-6  # USD per text prompt token
PRICE_COMPLETION = 0.30e-6  # USD per completion token
PRICE_AUDIO_SECOND = 100e-6  # USD per second of input audio
_JSON_PIECE = 4  # characters per streamed piece (and per token) of JSON text


@dataclass
class Answer:
    """What the fake model says: kind is "text", "json" or "tool"; pieces are streamed one per token."""

    kind: str
    pieces: list[str]
    finish_reason: str
    tool_name: str | None = None
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def content(self, n: int | None = None) -> str:
        return "".join(self.pieces[:n])


def words(text: str) -> list[str]:
    """Word tokens as streamed: the first bare, each later one with its leading whitespace.

    Trailing whitespace (left by a stop-string cut) stays on the last piece, so the pieces
    always join back to exactly the text."""
    pieces = re.findall(r"\s*\S+", text.lstrip())
    tail = text[len(text.rstrip()) :]
    if pieces and tail:
        pieces[-1] += tail
    return pieces


class _Instance:
    """Builds a JSON instance of a JSON schema (the subset pydantic and hand-written schemas use)."""

    def __init__(self, root: dict, number: float):
        self.root, self.number = root, number

    def _resolve(self, ref: str) -> dict:
        node: Any = self.root
        for key in ref.lstrip("#/").split("/"):
            node = node[key.replace("~1", "/").replace("~0", "~")]
        return node

    def of(self, schema: Any, depth: int = 0) -> Any:
        if not isinstance(schema, dict) or depth > 20:
            return None
        if "$ref" in schema:
            return self.of(self._resolve(schema["$ref"]), depth + 1)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self.of(schema[key][0], depth + 1)
        if schema.get("allOf"):
            merged: dict = {}
            for part in schema["allOf"]:
                part = self._resolve(part["$ref"]) if "$ref" in part else part
                merged.update({**part, "properties": {**merged.get("properties", {}), **part.get("properties", {})}})
            return self.of(merged, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        return getattr(self, "_" + kind, lambda s, d: None)(schema, depth)

    def _object(self, schema: dict, depth: int) -> dict:
        return {k: self.of(v, depth + 1) for k, v in schema.get("properties", {}).items()}

    def _array(self, schema: dict, depth: int) -> list:
        if "prefixItems" in schema:
            return [self.of(s, depth + 1) for s in schema["prefixItems"]]
        return [self.of(schema.get("items", {}), depth + 1) for _ in range(max(1, schema.get("minItems", 1)))]

    def _string(self, schema: dict, depth: int) -> str:
        fixed = {
            "date-time": "2025-01-01T00:00:00Z",
            "date": "2025-01-01",
            "time": "00:00:00",
            "email": "user@example.com",
            "uri": "https://example.com/",
            "uuid": "00000000-0000-4000-8000-000000000000",
        }
        text = fixed.get(str(schema.get("format")), "sample")
        text = text.ljust(schema.get("minLength", 0), "x")
        return text[: schema["maxLength"]] if "maxLength" in schema else text

    @staticmethod
    def _clamp(value: float, schema: dict, step: float) -> float:
        value = max(value, schema.get("minimum", value))
        value = min(value, schema.get("maximum", value))
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            value = schema["exclusiveMinimum"] + step
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            value = schema["exclusiveMaximum"] - step
        return value

    def _number(self, schema: dict, depth: int) -> float:
        return float(self._clamp(round(self.number, 3), schema, 0.001))

    def _integer(self, schema: dict, depth: int) -> int:
        return int(self._clamp(round(self.number), schema, 1))

    def _boolean(self, schema: dict, depth: int) -> bool:
        return True

    def _null(self, schema: dict, depth: int) -> None:
        return None


def instance_of(schema: dict, number: float = 0.0) -> Any:
    """A deterministic value valid against `schema`; numbers come from `number` (the first clip's length)."""
    return _Instance(schema, number).of(schema)


def _heard(req: ParsedRequest) -> str:
    clips = "; ".join(
        f"[{k}] {a.duration_s:.3f} s {a.format} sha256:{a.sha256[:12]}" for k, a in enumerate(req.audio, start=1)
    )
    heard = f"Heard {len(req.audio)} clips" + (f": {clips}." if clips else ".")
    return f"{heard} Prompt: {' '.join(req.prompt.split()[:20])}"


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    at = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:at], True) if at >= 0 else (text, False)


def _json_pieces(text: str) -> list[str]:
    return [text[i : i + _JSON_PIECE] for i in range(0, len(text), _JSON_PIECE)]


def build_answer(req: ParsedRequest, answer_tokens: int, gen_id: str, words_per_second: float = 0.0) -> Answer:
    """Decide the whole answer up front, so streaming and non-streaming replies agree.

    Text answers are padded to ``answer_tokens`` words, or to ``words_per_second`` × the audio's
    seconds when that is more — as long as a real transcript of that much speech.
    """
    first = req.audio[0].duration_s if req.audio else 0.0
    rf = (req.response_format or {}).get("type", "text")
    # One tool call, then an answer from its result — unless the prompt says "call tools N times",
    # which keeps the fake model calling until N results came back (to test bounded loops).
    wanted = re.search(r"call tools (\d+) times", req.prompt)
    rounds = int(wanted[1]) if wanted else 1
    if req.tools and req.tool_choice != "none" and req.tool_messages < rounds:
        named = req.tool_choice.get("function", {}).get("name") if isinstance(req.tool_choice, dict) else None
        tool = next(t for t in req.tools if named in (None, t["function"]["name"]))["function"]
        params = tool.get("parameters") or {"type": "object", "properties": {}}
        answer = Answer(
            "tool",
            _json_pieces(json.dumps(instance_of(params, first))),
            "tool_calls",
            tool["name"],
            "call_" + hashlib.sha256(gen_id.encode()).hexdigest()[:24],
        )
    elif rf in ("json_object", "json_schema"):
        if rf == "json_object":
            value: Any = {
                "clips": [
                    {"duration_s": round(a.duration_s, 3), "format": a.format, "sha256": a.sha256} for a in req.audio
                ],
                "prompt": " ".join(req.prompt.split()[:20]),
            }
        else:
            value = instance_of((req.response_format or {})["json_schema"]["schema"], first)
        text, stopped = _cut(json.dumps(value), req.stop)
        answer = Answer("json", _json_pieces(text), "stop")
    else:
        if req.tool_result is not None:
            text = f"Tool {req.tool_result[0]} returned: {req.tool_result[1]}"
        else:
            text = _heard(req)
        if req.system:
            text = f"System: {' '.join(req.system.split()[:10]).rstrip('.')}. {text}"
        n, target = len(text.split()), max(answer_tokens, math.ceil(words_per_second * req.audio_seconds))
        if n < target:
            text += " " + " ".join(FILLER[i % len(FILLER)] for i in range(target - n))
        text, _ = _cut(text, req.stop)
        answer = Answer("text", words(text), "stop")
    if req.max_tokens is not None and len(answer.pieces) > req.max_tokens:
        answer.pieces, answer.finish_reason = answer.pieces[: req.max_tokens], "length"
    return answer


def cost(req: ParsedRequest, completion_tokens: int) -> float:
    """OpenRouter's price of Voxtral Small: text tokens, completion tokens and audio seconds."""
    return (
        (req.prompt_tokens - req.audio_tokens) * PRICE_PROMPT
        + completion_tokens * PRICE_COMPLETION
        + req.audio_seconds * PRICE_AUDIO_SECOND
    )


def usage(req: ParsedRequest, completion_tokens: int, dialect: str) -> dict:
    """The usage object as the dialect sends it; only OpenRouter reports cost."""
    out: dict[str, Any] = {
        "prompt_tokens": req.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": req.prompt_tokens + completion_tokens,
    }
    if dialect == "openrouter":
        out.update(cost=cost(req, completion_tokens), is_byok=False)
    out.update(
        prompt_tokens_details={"cached_tokens": 0, "audio_tokens": req.audio_tokens},
        completion_tokens_details={"reasoning_tokens": 0},
    )
    if dialect == "openrouter":
        out["cost_details"] = {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": 0,
            "upstream_inference_completions_cost": 0,
        }
    return out
