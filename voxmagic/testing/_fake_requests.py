"""Check a chat-completions request the way OpenRouter, Mistral or vLLM would, decoding its audio for real.

Kept apart from the HTTP layer so the rules read as one list. Every rejection is a
:class:`BadRequest` whose message names the offending field, because that message is what
voxmagic ends up showing its users. Audio is decoded with PyAV rather than trusted, so a
client that sends a truncated or mislabelled file fails here as it would upstream.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import io
import math
from dataclasses import dataclass, field
from typing import Any

import av

CONTEXT_LENGTH = 32768
MODELS = {
    "openrouter": ("mistralai/voxtral-small-24b-2507", "mistralai/voxtral-mini-3b-2507"),
    "mistral": ("voxtral-small-latest", "voxtral-mini-latest"),
    "vllm": ("mistralai/Voxtral-Small-24B-2507",),
}
DIALECTS = tuple(MODELS)
AUDIO_FORMATS = ("wav", "mp3", "flac", "m4a", "ogg", "aiff", "aac", "pcm16", "pcm24")
ROLES = ("system", "user", "assistant", "tool")
_PCM_WIDTH = {"pcm16": 2, "pcm24": 3}
_PCM_RATE = 16000


class BadRequest(Exception):
    """A request OpenRouter would refuse; becomes an error body with this status and metadata."""

    def __init__(self, message: str, metadata: dict | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.metadata = metadata
        self.status = status


def _bad(message: str, param: str, **metadata: Any) -> BadRequest:
    return BadRequest(message, {"error_type": "invalid_request", "param": param, **metadata})


def audio_tokens(duration_s: float) -> int:
    """Voxtral's cost of one clip: 12.5 tokens/s padded to 30 s windows, plus a begin-audio token."""
    return 1 + 375 * math.ceil(duration_s / 30)


@dataclass(frozen=True)
class AudioInfo:
    """What the server learned by decoding one uploaded clip (sha256 is of the decoded base64 bytes)."""

    format: str
    n_bytes: int
    sha256: str
    duration_s: float
    sample_rate: int
    channels: int

    @property
    def tokens(self) -> int:
        return audio_tokens(self.duration_s)


@dataclass
class ParsedRequest:
    """A validated request, reduced to what the fake model needs to answer it."""

    model: str
    stream: bool
    prompt: str  # text parts of the user messages, joined by newlines
    system: str  # text of the system messages
    text_tokens: int  # words in every text part of every message
    audio: list[AudioInfo]
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    response_format: dict | None = None
    tools: list[dict] = field(default_factory=list)
    tool_choice: Any = None
    tool_result: tuple[str, str] | None = None  # (tool name, content) of the last tool message
    tool_messages: int = 0  # tool results in the conversation so far

    @property
    def audio_tokens(self) -> int:
        return sum(a.tokens for a in self.audio)

    @property
    def prompt_tokens(self) -> int:
        return self.text_tokens + self.audio_tokens

    @property
    def audio_seconds(self) -> float:
        return sum(a.duration_s for a in self.audio)


def _text_of(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        ]
    return []


def prompt_text(body: Any) -> str:
    """Best-effort user text of any body (valid or not), for the log and fault matching."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return ""
    return "\n".join(
        t
        for m in body["messages"]
        if isinstance(m, dict) and m.get("role") == "user"
        for t in _text_of(m.get("content"))
    )


def _b64_len(s: str) -> int:
    return len(s) * 3 // 4 - (s[-2:].count("=") if s else 0)


def redact(body: Any) -> Any:
    """Copy of the body with every base64 audio string replaced by "<N bytes>", so logs stay small."""
    body = copy.deepcopy(body)
    for m in body.get("messages", []) if isinstance(body, dict) else []:
        parts = m.get("content") if isinstance(m, dict) else None
        for p in parts if isinstance(parts, list) else []:
            ia = p.get("input_audio") if isinstance(p, dict) else None
            if isinstance(ia, str):
                p["input_audio"] = f"<{_b64_len(ia)} bytes>"
            elif isinstance(ia, dict) and isinstance(ia.get("data"), str):
                ia["data"] = f"<{_b64_len(ia['data'])} bytes>"
    return body


def decode_audio(raw: bytes, fmt: str | None, k: int) -> AudioInfo:
    """Decode every sample of one clip; fmt None means sniff the container (Mistral's part has no format)."""
    digest = hashlib.sha256(raw).hexdigest()
    if fmt in _PCM_WIDTH:
        width = _PCM_WIDTH[fmt]
        if not raw or len(raw) % width:
            raise BadRequest(
                f"input_audio #{k} could not be decoded: {len(raw)} bytes is not a "
                f"whole, non-zero number of {fmt} samples",
                {"error_type": "invalid_request"},
            )
        return AudioInfo(fmt, len(raw), digest, len(raw) / width / _PCM_RATE, _PCM_RATE, 1)
    samples, rate, channels = 0, 0, 0
    try:
        with av.open(io.BytesIO(raw), mode="r") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise ValueError("no audio stream found")
            for frame in container.decode(stream):
                samples += frame.samples
                rate = rate or frame.sample_rate
                channels = channels or frame.layout.nb_channels
            sniffed = container.format.name.split(",")[0]
    except Exception as exc:  # PyAV raises many kinds; any of them means "not audio we can use"
        raise BadRequest(f"input_audio #{k} could not be decoded: {exc}", {"error_type": "invalid_request"}) from None
    if samples == 0 or not rate:
        raise BadRequest(
            f"input_audio #{k} could not be decoded: it holds 0 audio samples", {"error_type": "invalid_request"}
        )
    fmt = fmt or {"mov": "m4a"}.get(sniffed, sniffed)
    return AudioInfo(fmt, len(raw), digest, samples / rate, rate, channels)


def _audio_bytes(part: dict, where: str, dialect: str) -> tuple[bytes, str | None]:
    ia = part.get("input_audio")
    data: Any
    fmt: Any
    if dialect == "mistral":
        if not isinstance(ia, str):
            raise _bad(
                f"{where}.input_audio must be a base64 string for this endpoint "
                "(the {data, format} object is OpenRouter's shape)",
                f"{where}.input_audio",
            )
        data, fmt, field_name = ia, None, f"{where}.input_audio"
    else:
        if not isinstance(ia, dict):
            raise _bad(
                f'{where}.input_audio must be an object {{"data": <base64>, "format": ...}} '
                "for this endpoint (a plain string is Mistral's shape)",
                f"{where}.input_audio",
            )
        data, fmt, field_name = ia.get("data"), ia.get("format"), f"{where}.input_audio.data"
        if fmt not in AUDIO_FORMATS:
            raise _bad(
                f"{where}.input_audio.format must be one of {', '.join(AUDIO_FORMATS)} (got {fmt!r})",
                f"{where}.input_audio.format",
            )
    if not isinstance(data, str) or not data:
        raise _bad(f"{field_name} must be a non-empty base64 string", field_name)
    if data.startswith("data:"):
        raise _bad(f"{field_name} must be raw base64, not a data: URI", field_name)
    try:
        return base64.b64decode(data, validate=True), fmt
    except (binascii.Error, ValueError):
        raise _bad(f"{field_name} is not valid base64", field_name) from None


def _check_messages(messages: Any, dialect: str) -> tuple[list[tuple[str, str]], list, tuple]:
    """Return (role, text) pairs, the audio parts to decode, and (the last tool result, how many
    tool results there are)."""
    if not isinstance(messages, list) or not messages:
        raise _bad("`messages` must be a non-empty list", "messages")
    texts: list[tuple[str, str]] = []
    audio: list = []
    tool_names: dict[str, str] = {}
    tool_result, tool_messages = None, 0
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _bad(f"{where} must be an object", where)
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise _bad(f"{where}.role must be one of {', '.join(ROLES)} (got {role!r})", f"{where}.role")
        if role == "assistant" and m.get("tool_calls") is not None:
            calls = m["tool_calls"]
            if not isinstance(calls, list) or not all(
                isinstance(c, dict)
                and isinstance(c.get("function"), dict)
                and isinstance(c["function"].get("name"), str)
                for c in calls
            ):
                raise _bad(
                    f"{where}.tool_calls must be a list of {{id, type, function: {{name, arguments}}}}",
                    f"{where}.tool_calls",
                )
            tool_names.update((c.get("id"), c["function"]["name"]) for c in calls)
            if content is None:
                continue
        if role == "tool" and not (isinstance(m.get("tool_call_id"), str) and m["tool_call_id"]):
            raise _bad(f"{where}.tool_call_id is required for tool messages", f"{where}.tool_call_id")
        if isinstance(content, str):
            texts.append((role, content))
        elif isinstance(content, list) and content:
            for j, p in enumerate(content):
                pw = f"{where}.content[{j}]"
                kind = p.get("type") if isinstance(p, dict) else None
                if kind == "text":
                    if not isinstance(p.get("text"), str):
                        raise _bad(f"{pw}.text must be a string", f"{pw}.text")
                    texts.append((role, p["text"]))
                elif kind == "input_audio":
                    audio.append((pw, *_audio_bytes(p, pw, dialect)))
                else:
                    raise _bad(f"{pw}.type must be 'text' or 'input_audio' (got {kind!r})", f"{pw}.type")
        else:
            raise _bad(f"{where}.content must be a string or a non-empty list of parts", f"{where}.content")
        if role == "tool":
            name = m.get("name") or tool_names.get(m["tool_call_id"]) or m["tool_call_id"]
            tool_result = (name, " ".join(_text_of(content)))
            tool_messages += 1
    return texts, audio, (tool_result, tool_messages)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_number(body: dict, key: str, lo: float, hi: float, lo_open: bool = False) -> None:
    if key in body:
        v = body[key]
        if not _is_num(v) or v > hi or v < lo or (lo_open and v == lo):
            interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
            raise _bad(f"`{key}` must be a number in {interval} (got {v!r})", key)


def _check_tools(body: dict) -> tuple[list[dict], Any]:
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(
        isinstance(t, dict)
        and t.get("type") == "function"
        and isinstance(t.get("function"), dict)
        and isinstance(t["function"].get("name"), str)
        and t["function"]["name"]
        for t in tools
    ):
        raise _bad(
            '`tools` must be a list of {"type": "function", "function": {"name", "description"?, "parameters"?}}',
            "tools",
        )
    for i, t in enumerate(tools):
        if not isinstance(t["function"].get("parameters", {}), dict):
            raise _bad(
                f"`tools[{i}].function.parameters` must be a JSON schema object", f"tools[{i}].function.parameters"
            )
    choice = body.get("tool_choice")
    if choice is None or choice in ("none", "auto", "required"):
        if choice == "required" and not tools:
            raise _bad("`tool_choice` is 'required' but no `tools` were given", "tool_choice")
        return tools, choice
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if not (isinstance(choice, dict) and choice.get("type") == "function" and isinstance(name, str)):
        raise _bad(
            '`tool_choice` must be \'none\', \'auto\', \'required\' or {"type": "function", "function": {"name": ...}}',
            "tool_choice",
        )
    if name not in [t["function"]["name"] for t in tools]:
        raise _bad(f"`tool_choice` names the tool {name!r}, which is not in `tools`", "tool_choice")
    return tools, choice


def _check_response_format(rf: Any) -> dict | None:
    if rf is None:
        return None
    if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
        raise _bad("`response_format.type` must be one of text, json_object, json_schema", "response_format")
    if rf["type"] == "json_schema":
        js = rf.get("json_schema")
        if not (isinstance(js, dict) and isinstance(js.get("name"), str) and isinstance(js.get("schema"), dict)):
            raise _bad(
                '`response_format.json_schema` must be {"name": str, "schema": {...}}', "response_format.json_schema"
            )
    return rf


def validate(body: Any, dialect: str) -> ParsedRequest:
    """Check the whole request (shape, parameters, audio, context size) or raise BadRequest."""
    if not isinstance(body, dict):
        raise _bad("Request body must be a JSON object", "body")
    model = body.get("model")
    if model is None:
        raise _bad("`model` is required", "model")
    if model not in MODELS[dialect]:
        raise _bad(f"{model} is not a valid model ID", "model")
    texts, audio_parts, (tool_result, tool_messages) = _check_messages(body.get("messages"), dialect)
    if "max_tokens" in body and not (_is_int(body["max_tokens"]) and body["max_tokens"] >= 1):
        raise _bad(f"`max_tokens` must be an integer >= 1 (got {body['max_tokens']!r})", "max_tokens")
    _check_number(body, "temperature", 0, 2)
    _check_number(body, "top_p", 0, 1, lo_open=True)
    _check_number(body, "frequency_penalty", -2, 2)
    _check_number(body, "presence_penalty", -2, 2)
    if "seed" in body and not _is_int(body["seed"]):
        raise _bad(f"`seed` must be an integer (got {body['seed']!r})", "seed")
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop or []
    if not (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) and s for s in stop)):
        raise _bad("`stop` must be a string or a list of at most 4 strings", "stop")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise _bad(f"`stream` must be a boolean (got {body['stream']!r})", "stream")
    response_format = _check_response_format(body.get("response_format"))
    tools, tool_choice = _check_tools(body)
    audio = [decode_audio(raw, fmt, k) for k, (_, raw, fmt) in enumerate(audio_parts, start=1)]
    req = ParsedRequest(
        model=model,
        stream=bool(body.get("stream", False)),
        prompt="\n".join(t for r, t in texts if r == "user"),
        system=" ".join(t for r, t in texts if r == "system"),
        text_tokens=sum(len(t.split()) for _, t in texts),
        audio=audio,
        max_tokens=body.get("max_tokens"),
        stop=stop,
        response_format=response_format,
        tools=tools,
        tool_choice=tool_choice,
        tool_result=tool_result,
        tool_messages=tool_messages,
    )
    if req.prompt_tokens > CONTEXT_LENGTH:
        raise BadRequest(
            f"This endpoint's maximum context length is {CONTEXT_LENGTH} tokens. However, you requested "
            f"about {req.prompt_tokens} tokens ({req.text_tokens} of text input, {req.audio_tokens} of "
            f"audio input). Please reduce the length of the `messages` (or the audio).",
            {"error_type": "context_length_exceeded", "param": "messages"},
        )
    return req
