"""The plain-Python API: ``ask`` one question about audio, ``transcribe`` many sources into a table.

Each has an ``*_async`` twin; the sync functions drive the same coroutines on voxmagic's own
background loop (see :mod:`voxmagic.runner`), so they work in scripts and inside a running kernel.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

from . import audio as _audio
from .cost import CostLedger, LedgerEntry, transcript_token_bound
from .errors import APIError, AudioError, ConfigError, VoxmagicError
from .requests import ChatRequest, Params
from .results import TRANSCRIPT_COLUMNS, Response
from .runner import LOOP, map_bounded
from .settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from .client import EventHandler

#: Every call of this Python session, with its cost.
ledger = CostLedger()

_PARAM_NAMES = {f.name for f in fields(Params)}
_SETTING_NAMES = {f.name for f in fields(Settings)}


def _split_options(options: dict[str, Any]) -> tuple[Settings, Params]:
    """Separate connection settings from request parameters; anything else is a mistake."""
    settings = {k: options.pop(k) for k in list(options) if k in _SETTING_NAMES}
    params = {k: options.pop(k) for k in list(options) if k in _PARAM_NAMES}
    if options:
        valid = ", ".join(sorted(_PARAM_NAMES | _SETTING_NAMES))
        raise ConfigError(f"unknown option(s) {', '.join(sorted(options))}; valid: {valid}")
    return Settings.resolve(**settings).check(), Params(**params)


def _as_list(audio: Any) -> list[Any]:
    """One source, or several: a list/tuple of sources (but ``(array, rate)`` is one source)."""
    if isinstance(audio, tuple) and len(audio) == 2 and hasattr(audio[0], "shape"):
        return [audio]
    if isinstance(audio, (list, tuple)):
        return list(audio)
    if hasattr(audio, "tolist") and not hasattr(audio, "shape"):  # a pandas Series of paths
        return list(audio.tolist())
    return [audio]


async def _client(settings: Settings):
    return LOOP.cached(("client", settings), settings.client)


async def _ask(audio: Any, prompt: str, *, system: str | None, audio_format: str,
               on_event: EventHandler | None, options: dict[str, Any]) -> Response:
    settings, params = _split_options(options)
    sources = [_audio.as_source(a) for a in _as_list(audio)]
    clips = await asyncio.to_thread(lambda: tuple(s.prepare(audio_format) for s in sources))
    request = ChatRequest(prompt, clips, params, settings.model, system, settings.effective_dialect)
    client = await _client(settings)
    try:
        response = await client.complete(request, on_event)
    except APIError as exc:
        _record_failure(exc, settings.model, request)
        raise
    ledger.record(response, label=", ".join(s.label for s in sources))
    return response


def _record_failure(exc: APIError, model: str, request: ChatRequest) -> None:
    """A request that started answering may still be billed: log it with an unknown cost."""
    if exc.generation_id:
        ledger.add(LedgerEntry(time.time(), ", ".join(a.label for a in request.audio), model, None,
                               None, None, request.audio_seconds, "unknown", exc.generation_id))


async def ask_async(audio: Any, prompt: str, *, system: str | None = None,
                    audio_format: str = _audio.DEFAULT_FORMAT, on_event: EventHandler | None = None,
                    **options: Any) -> Response:
    """Ask ``prompt`` about one or more audio sources; see :func:`ask`."""
    return await LOOP.run_async(_ask(audio, prompt, system=system, audio_format=audio_format,
                                     on_event=on_event, options=options))


def ask(audio: Any, prompt: str, *, system: str | None = None, audio_format: str = _audio.DEFAULT_FORMAT,
        on_event: EventHandler | None = None, **options: Any) -> Response:
    """Ask ``prompt`` about ``audio`` (a path, URL, bytes, ``(array, rate)``, IPython Audio, or a list).

    ``options`` are request parameters (``max_tokens``, ``temperature``, ``top_p``, ``stop``,
    ``frequency_penalty``, ``presence_penalty``, ``seed``, ``response_format``, ``tools``,
    ``tool_choice``, ``stream``, ``extra``) and connection settings (``base_url``, ``api_key``,
    ``model``, ``referer``, ``title``, ``timeout``, ``read_timeout``, ``max_attempts``, ...).
    """
    return LOOP.run(_ask(audio, prompt, system=system, audio_format=audio_format, on_event=on_event,
                         options=options))


def transcription_prompt(language: str | None = None, hint: str | None = None) -> str:
    prompt = "Transcribe this audio verbatim. Reply with the transcript only, without commentary."
    if language:
        prompt += f" The speech is in {language}."
    if hint:
        prompt += f" Context and vocabulary: {hint}"
    return prompt


async def _transcribe(sources: Any, language: str | None, *, hint: str | None, prompt: str | None,
                      concurrency: int,
                      audio_format: str, on_result: Callable[[int, dict], None] | None,
                      options: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    options.setdefault("temperature", 0.0)  # Mistral's recommendation for transcription
    settings, params = _split_options(options)
    client = await _client(settings)
    text = prompt or transcription_prompt(language, hint)
    items = [(i, s) for i, s in enumerate(_as_list(sources))]

    async def one(item: tuple[int, Any]) -> dict:
        index, obj = item
        row: dict[str, Any] = {"source": _label(obj)}
        try:
            source = _audio.as_source(obj)
            clip = await asyncio.to_thread(source.prepare, audio_format)
            row.update(duration_s=clip.duration_s, audio_format=clip.format, audio_sha256=clip.sha256)
            p = params if params.max_tokens else replace(
                params, max_tokens=transcript_token_bound(clip.duration_s))
            request = ChatRequest(text, (clip,), p, settings.model, None, settings.effective_dialect)
            try:
                response = await client.complete(request)
            except APIError as exc:
                _record_failure(exc, settings.model, request)
                raise
            ledger.record(response, label=row["source"])
            row.update(response.to_row())
        except AudioError as exc:
            row["error"] = exc.cause
        except VoxmagicError as exc:
            row["error"] = str(exc)
        return row

    rows = await map_bounded(items, one, concurrency, on_result)
    return pd.DataFrame(rows, columns=TRANSCRIPT_COLUMNS)


def _label(obj: Any) -> str:
    try:
        return _audio.as_source(obj).label
    except AudioError as exc:
        return exc.source


async def transcribe_async(sources: Any, language: str | None = None, *, hint: str | None = None,
                           prompt: str | None = None,
                           concurrency: int = 8, audio_format: str = _audio.DEFAULT_FORMAT,
                           on_result: Callable[[int, dict], None] | None = None,
                           **options: Any) -> pd.DataFrame:
    """Transcribe every source concurrently; see :func:`transcribe`."""
    return await LOOP.run_async(_transcribe(sources, language, hint=hint, prompt=prompt, concurrency=concurrency,
                                            audio_format=audio_format, on_result=on_result,
                                            options=options))


def transcribe(sources: Any, language: str | None = None, *, hint: str | None = None,
               prompt: str | None = None,
               concurrency: int = 8, audio_format: str = _audio.DEFAULT_FORMAT,
               on_result: Callable[[int, dict], None] | None = None, **options: Any) -> pd.DataFrame:
    """One row per source: ``source, duration_s, text, prompt_tokens, completion_tokens, cost_usd,
    latency_s, error`` (+ ``attempts, finish_reason, audio_format, audio_sha256, generation_id``).

    A source that fails gets its ``error`` filled in; the other rows still come back. ``hint``
    adds context or vocabulary to the instruction; ``prompt`` replaces it. Options are those of :func:`ask`;
    ``temperature`` defaults to 0 and ``max_tokens`` to a bound from each clip's duration.
    """
    return LOOP.run(_transcribe(sources, language, hint=hint, prompt=prompt, concurrency=concurrency,
                                audio_format=audio_format, on_result=on_result, options=options))
