"""The local server's ``POST {prefix}/audio/transcriptions``, as Mistral's API and vLLM answer it.

The HTTP handler in ``server.py`` does what every endpoint does (log, auth, rate limit, taking a
fault); this module reads the multipart form, checks it the way each dialect does — with that
dialect's error shape and a message naming the field — decodes the audio for real, and writes the
answer, playing the fault.

The transcript is deterministic and made from the decoded audio: fixed windows of at most
``SEGMENT_S`` seconds that tile [0, duration] in order, each saying which span it is and the
digest of the bytes it heard (``segment 1 0.0-10.0 s heard 3fa9c1d2e4b5``).

Sources for the shapes:
* Mistral — mistralai/client-python ``models/audiotranscriptionrequest.py`` (form fields ``model``,
  ``file``, ``file_url``, ``file_id``, ``language``, ``temperature``, ``stream``, ``diarize``,
  ``context_bias``, ``timestamp_granularities`` sent once per value by ``utils/forms.py``),
  ``transcriptionresponse.py`` / ``transcriptionsegmentchunk.py`` / ``usageinfo.py`` (the answer);
  docs.mistral.ai/capabilities/audio_transcription (the endpoint "currently supports
  ``voxtral-mini-latest``"; "``timestamp_granularities`` is currently not compatible with
  ``language``"); the SDK's examples also name ``voxtral-mini-2507`` and ``voxtral-mini-2602``.
  Errors: ``{"object": "error", "message", "type", "param", "code"}`` (e.g. ``"Invalid model: X"``,
  type ``invalid_model``, code ``"1500"``, tmc/langchaingo#1233) and, for a malformed form, a 422
  ``{"detail": [{"type", "loc", "msg", "input"}]}`` — Mistral forbids unknown fields ("Extra inputs
  are not permitted", Gitlawb/openclaude#739), ``speaker_references`` among them: no public source
  documents a way to send speaker reference clips.
* vLLM — vllm-project/vllm ``entrypoints/openai/speech_to_text/protocol.py`` (``TranscriptionRequest``
  with ``response_format`` json/text/srt/verbose_json/vtt and ``timestamp_granularities[]``;
  ``TranscriptionResponse`` ``{text, usage: {type: "duration", seconds}}``;
  ``TranscriptionResponseVerbose`` ``{duration: str, language, text, segments: [{id, avg_logprob,
  compression_ratio, end, no_speech_prob, seek, start, temperature, text, tokens}], words}``) and
  ``speech_to_text.py`` (usage seconds rounded up). ``model`` may be left out (the served model
  answers); an unknown one is a 404 "The model `X` does not exist."; errors are
  ``{"error": {"message", "type", "param", "code"}}``. Languages: Voxtral's (en es fr pt hi de nl it)
  plus ar, as vLLM lists them. vLLM has no diarization; unknown fields such as ``diarize`` are
  ignored (``OpenAIBaseModel`` logs them at debug level), so it answers as without them.

Mistral's ``diarize`` and ``context_bias``: see ``_fake_voices`` (checks, sources, and the diarizer
whose segments replace the fixed windows and carry ``speaker_id``). The error shapes both modules
answer with: ``_fake_forms``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ._fake_forms import Fields, FormError, mistral_422, mistral_error, one, vllm_error
from ._fake_requests import MODELS, AudioInfo, BadRequest, audio_tokens, decode_audio
from ._fake_streams import fault_error, reset_connection
from ._fake_voices import Turn, check_options, label, read_options

SEGMENT_S = 10.0
TRANSCRIPTION_DIALECTS = ("mistral", "vllm")
TRANSCRIPTION_MODELS = {
    "mistral": ("voxtral-mini-latest", "voxtral-mini-2507", "voxtral-mini-2602"),
    "vllm": MODELS["vllm"],
}
VLLM_LANGUAGES = ("en", "es", "fr", "pt", "hi", "de", "nl", "it", "ar")
_MISTRAL_FIELDS: tuple[str, ...] = ("model", "file", "file_url", "file_id", "language", "temperature", "stream")
_MISTRAL_FIELDS += ("diarize", "context_bias", "timestamp_granularities")
_LISTS = ("context_bias",)  # logged as lists even when sent once
_VLLM_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_GRANULARITIES = ("segment", "word")


@dataclass(frozen=True)
class Upload:
    """The ``file`` part as it arrived."""

    filename: str | None
    content_type: str | None
    data: bytes

    def logged(self) -> dict[str, Any]:
        return {"filename": self.filename, "content_type": self.content_type, "bytes": len(self.data)}


@dataclass
class ParsedTranscription:
    """A valid transcription request, reduced to what the answer needs."""

    model: str
    language: str | None
    temperature: float
    timestamps: bool
    response_format: str  # "json" for Mistral (its only shape)
    audio: AudioInfo
    bias: tuple[str, ...] = ()  # context_bias terms, echoed at the end of each segment
    voices: list[Turn] | None = None  # diarized segments, when diarize is on

    @property
    def billed_seconds(self) -> int:
        return max(1, math.ceil(self.audio.duration_s - 1e-9))


async def read_form(request: web.Request) -> tuple[Fields, Upload | None]:
    """Every text field in order (repeated names kept) and the ``file`` part; another file part
    reads as the text ``<file 'name'>``.

    Raises ``web.HTTPRequestEntityTooLarge`` above the server's body limit and ValueError for a
    broken multipart body (the handler then checks it as an empty form, naming what is missing);
    a body that is not a form at all reads as an empty one."""
    try:
        form = await request.post()
    except HttpProcessingError as exc:  # e.g. a part with broken headers
        raise ValueError(f"not a readable multipart form: {exc}") from exc
    fields: Fields = []
    upload = None
    for name, value in form.items():
        if isinstance(value, web.FileField):
            if name == "file" and upload is None:
                upload = Upload(value.filename, value.content_type, value.file.read())
            else:
                fields.append((name, f"<file {value.filename!r}>"))
        else:
            fields.append((name, str(value)))
    return fields, upload


def logged_body(fields: Fields, upload: Upload | None) -> dict[str, Any]:
    """The form for the request log: repeated fields as lists, the file as its size, never its bytes."""
    body: dict[str, Any] = {}
    for name, value in fields:
        if name in body:
            body[name] = [*body[name], value] if isinstance(body[name], list) else [body[name], value]
        else:
            body[name] = [value] if name.startswith("timestamp_granularities") or name in _LISTS else value
    if upload is not None:
        body["file"] = upload.logged()
    return body


def _temperature(raw: str | None, bad: Any) -> float:
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise bad(
            "temperature", "float_parsing", "Input should be a valid number, unable to parse string as a number", raw
        ) from None
    if not math.isfinite(value) or not 0 <= value <= 2:
        raise bad("temperature", "less_than_equal", "Input should be a number in [0, 2]", raw)
    return value


def validate(fields: Fields, upload: Upload | None, dialect: str) -> ParsedTranscription:
    """Check the form as ``dialect``'s endpoint does, then decode the audio; raises FormError."""
    if dialect == "mistral":
        return _validate_mistral(fields, upload)
    return _validate_vllm(fields, upload)


def _decode(upload: Upload, refuse: Any) -> AudioInfo:
    try:
        return decode_audio(upload.data, None, 1)
    except BadRequest as exc:
        reason = exc.message.split(": ", 1)[-1]
        raise refuse(f"file {upload.filename or '(unnamed)'!r} could not be decoded as audio: {reason}") from None


def _validate_mistral(fields: Fields, upload: Upload | None) -> ParsedTranscription:
    names = {k for k, _ in fields} | ({"file"} if upload else set())
    for name in sorted(names - set(_MISTRAL_FIELDS)):
        raise mistral_422(name, "extra_forbidden", "Extra inputs are not permitted", one(fields, name))
    model = one(fields, "model")
    if not model:
        raise mistral_422("model", "missing", "Field required")
    granularities = [v for k, v in fields if k == "timestamp_granularities"]
    for value in granularities:
        if value not in _GRANULARITIES:
            raise mistral_422("timestamp_granularities", "literal_error", "Input should be 'segment' or 'word'", value)
    temperature = _temperature(one(fields, "temperature"), mistral_422)
    options = read_options(fields)
    stream = one(fields, "stream")
    if stream is not None and stream.lower() not in ("false", "0"):
        raise mistral_error(
            400, "stream=true: the local server answers transcriptions whole, not as a stream", param="stream"
        )
    if model not in TRANSCRIPTION_MODELS["mistral"]:
        raise mistral_error(400, f"Invalid model: {model}", "invalid_model", code="1500")
    if upload is None:
        if one(fields, "file_url") or one(fields, "file_id"):
            raise mistral_error(
                400, "file_url and file_id are not supported by the local server; upload the `file`", param="file"
            )
        raise mistral_error(400, "One of `file`, `file_url` or `file_id` must be provided", param="file")
    check_options(options, fields, granularities)
    language = one(fields, "language") or None
    if language and granularities:
        raise mistral_error(
            400,
            "timestamp_granularities is currently not compatible with language, please use either one or the other",
            param="timestamp_granularities",
        )
    audio = _decode(upload, lambda m: mistral_error(400, m, "invalid_request_file", param="file"))
    labelled = label(options, upload.data)
    return ParsedTranscription(model, language, temperature, bool(granularities), "json", audio, options.bias, labelled)


def _validate_vllm(fields: Fields, upload: Upload | None) -> ParsedTranscription:
    def bad(field: str, kind: str, message: str, value: Any = None) -> FormError:
        return vllm_error(
            400,
            f"1 validation error for TranscriptionRequest\n{field}\n  {message} [type={kind}, input_value={value!r}]",
            param=field,
        )

    if upload is None:
        raise bad("file", "missing", "Field required")
    response_format = one(fields, "response_format") or "json"
    if response_format not in _VLLM_FORMATS:
        raise bad(
            "response_format",
            "literal_error",
            f"Input should be {', '.join(repr(f) for f in _VLLM_FORMATS)}",
            response_format,
        )
    granularities = [v for k, v in fields if k == "timestamp_granularities[]"]
    for value in granularities:
        if value not in _GRANULARITIES:
            raise bad("timestamp_granularities[]", "literal_error", "Input should be 'word' or 'segment'", value)
    temperature = _temperature(one(fields, "temperature"), bad)
    model = one(fields, "model") or TRANSCRIPTION_MODELS["vllm"][0]
    if model not in TRANSCRIPTION_MODELS["vllm"]:
        raise vllm_error(404, f"The model `{model}` does not exist.", param="model", kind="NotFoundError")
    if response_format in ("srt", "vtt"):
        raise vllm_error(
            400,
            f"response_format={response_format} is not supported by the local server; use json, verbose_json or text",
            param="response_format",
        )
    language = one(fields, "language") or None
    if language is not None and language not in VLLM_LANGUAGES:
        raise vllm_error(
            400,
            f"Unsupported language: {language!r}. Language should be one of: {', '.join(VLLM_LANGUAGES)}.",
            param="language",
        )
    audio = _decode(upload, lambda m: vllm_error(400, m, param="file"))
    return ParsedTranscription(model, language, temperature, response_format == "verbose_json", response_format, audio)


def segments(audio: AudioInfo) -> list[tuple[float, float, str]]:
    """Windows of at most SEGMENT_S seconds tiling [0, duration] in order, each naming its span."""
    duration = audio.duration_s
    n = max(1, math.ceil(duration / SEGMENT_S - 1e-9))
    out = []
    for i in range(n):
        start, end = round(i * SEGMENT_S, 3), round(min((i + 1) * SEGMENT_S, duration), 3)
        out.append((start, end, f"segment {i + 1} {start:.1f}-{end:.1f} s heard {audio.sha256[:12]}"))
    return out


def _pieces(req: ParsedTranscription) -> list[tuple[float, float, str, str | None]]:
    """``(start, end, text, speaker_id)`` of each segment: fixed windows, or the diarized turns
    (``segment 2 3.7-6.2 s voice 220 Hz heard 3fa9c1d2e4b5``); ``(bias: ...)`` ends each text."""
    pieces: list[tuple[float, float, str, str | None]] = [(a, b, t, None) for a, b, t in segments(req.audio)]
    if req.voices is not None:
        pieces = [(v.start, v.end, v.text(i, req.audio.sha256), v.speaker) for i, v in enumerate(req.voices, start=1)]
    suffix = f" (bias: {' '.join(req.bias)})" if req.bias else ""
    return [(a, b, t + suffix, who) for a, b, t, who in pieces]


def answer(req: ParsedTranscription, dialect: str) -> tuple[Any, dict | None]:
    """The answer body (a dict for JSON, a str for vLLM's ``text`` format) and the usage to log."""
    pieces = _pieces(req)
    text = " ".join(t for _, _, t, _ in pieces)
    usage: dict[str, Any]
    if dialect == "mistral":
        prompt_tokens = audio_tokens(req.audio.duration_s)
        completion_tokens = len(text.split())
        usage = {"prompt_audio_seconds": req.billed_seconds, "prompt_tokens": prompt_tokens}
        usage |= {"total_tokens": prompt_tokens + completion_tokens, "completion_tokens": completion_tokens}
        who_is = [{} if who is None else {"speaker_id": who} for _, _, _, who in pieces]  # Mistral's key order
        segs = [
            {"text": t, "start": a, "end": b} | w | {"type": "transcription_segment"}
            for (a, b, t, _), w in zip(pieces, who_is, strict=True)
        ]
        body = {"model": req.model, "text": text, "language": req.language}
        return body | {"segments": segs if req.timestamps else [], "usage": usage}, usage
    usage = {"type": "duration", "seconds": req.billed_seconds}
    if req.response_format == "text":
        return text, usage
    if req.response_format == "verbose_json":
        segs = [
            {"id": i, "seek": 0, "start": a, "end": b, "text": t, "tokens": [], "temperature": req.temperature}
            | {"avg_logprob": 0.0, "compression_ratio": 1.0, "no_speech_prob": 0.0}
            for i, (a, b, t, _) in enumerate(pieces)
        ]
        return {
            "duration": str(round(req.audio.duration_s, 3)),
            "language": req.language,
            "text": text,
            "segments": segs,
            "words": None,
        }, None
    return {"text": text, "usage": usage}, usage


async def reply(
    request: web.Request,
    rec: Any,
    req: ParsedTranscription,
    fault: Any,
    dialect: str,
    ready_at: float,
    echo: str | None,
) -> web.StreamResponse:
    """Answer a valid form at `ready_at` (``time.monotonic()``), playing `fault` and filling in `rec`,
    the request's log.

    ``http_*`` as for chat (``error_chunk``, with no stream to break, is a 502); ``stall`` waits
    ``seconds`` more; ``reset_mid_stream`` resets the connection; ``malformed_sse`` cuts the JSON
    short; ``no_usage`` leaves ``usage`` out (rec.completed False: nothing billed to the client);
    ``no_done`` (no stream to end) changes nothing."""
    name = "http_502" if fault is not None and fault.name == "error_chunk" else fault.name if fault else None
    if name is not None and name.startswith("http_"):
        resp = fault_error(dataclasses.replace(fault, name=name), req.model, rec.prompt, echo)
        rec.status = resp.status
        return resp
    if name == "reset_mid_stream":
        await reset_connection(request)
        return web.Response()  # never reaches the peer
    await asyncio.sleep(max(0.0, ready_at - time.monotonic()) + (fault.seconds if fault else 0))
    body, rec.usage = answer(req, dialect)
    rec.status, rec.tokens_sent = 200, len(str(body.get("text") if isinstance(body, dict) else body).split())
    if name == "malformed_sse":  # the whole-body analogue: JSON cut short
        return web.Response(
            body=b'{"model": "' + req.model.encode() + b'", "text": "segm', content_type="application/json"
        )
    if name == "no_usage":
        if isinstance(body, dict):
            body.pop("usage", None)
        rec.usage = None
    rec.completed = name != "no_usage"
    if isinstance(body, str):
        return web.Response(text=body, content_type="text/plain")
    return web.json_response(body)
