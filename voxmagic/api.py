"""The plain-Python API: ``ask`` one question about audio, ``transcribe`` many sources into a table.

Each has an ``*_async`` twin; the sync functions drive the same coroutines on voxmagic's own
background loop (see :mod:`voxmagic.loop`), so they work in scripts and inside a running kernel.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, Callable

from . import audio as _audio
from . import runner
from .errors import ConfigError
from .loop import LOOP
from .requests import Params
from .results import TRANSCRIPT_COLUMNS, Response
from .runner import Plan, ledger
from .settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from .client import EventHandler

__all__ = ["ask", "ask_async", "transcribe", "transcribe_async", "plan", "ledger",
           "transcription_prompt", "split_options", "as_list"]

_PARAM_NAMES = {f.name for f in fields(Params)}
_SETTING_NAMES = {f.name for f in fields(Settings)}


def split_options(options: dict[str, Any]) -> tuple[Settings, Params]:
    """Separate connection settings from request parameters; anything else is a mistake."""
    unknown = set(options) - _PARAM_NAMES - _SETTING_NAMES
    if unknown:
        valid = ", ".join(sorted(_PARAM_NAMES | _SETTING_NAMES))
        raise ConfigError(f"unknown option(s) {', '.join(sorted(unknown))}; valid: {valid}")
    settings = {k: v for k, v in options.items() if k in _SETTING_NAMES}
    params = {k: v for k, v in options.items() if k in _PARAM_NAMES}
    return Settings.resolve(**settings), Params(**params)


def as_list(audio: Any) -> list[Any]:
    """One source, or several: a list/tuple/Series of sources (but ``(array, rate)`` is one source)."""
    if isinstance(audio, tuple) and len(audio) == 2 and hasattr(audio[0], "shape"):
        return [audio]
    if isinstance(audio, (list, tuple)):
        return list(audio)
    if type(audio).__name__ in ("Series", "Index"):  # pandas, without importing it
        return list(audio.tolist())
    return [audio]


def transcription_prompt(language: str | None = None, hint: str | None = None,
                         translate_to: str | None = None) -> str:
    if translate_to:
        prompt = (f"Translate the speech in this audio into {translate_to}. Reply with the "
                  "translation only, without commentary.")
    else:
        prompt = "Transcribe this audio verbatim. Reply with the transcript only, without commentary."
    if language:
        prompt += f" The speech is in {language}."
    if hint:
        prompt += f" Context and vocabulary: {hint}"
    return prompt


async def ask_async(audio: Any, prompt: str, *, system: str | None = None,
                    audio_format: str = _audio.DEFAULT_FORMAT, max_cost: float | None = None,
                    on_event: EventHandler | None = None, **options: Any) -> Response:
    """Ask ``prompt`` about one or more audio sources; see :func:`ask`."""
    settings, params = split_options(options)
    return await LOOP.run_async(runner.ask(
        as_list(audio), prompt, settings=settings, params=params, system=system,
        audio_format=audio_format, max_cost=max_cost, on_event=on_event))


def ask(audio: Any, prompt: str, *, system: str | None = None, audio_format: str = _audio.DEFAULT_FORMAT,
        max_cost: float | None = None, on_event: EventHandler | None = None, **options: Any) -> Response:
    """Ask ``prompt`` about ``audio`` (a path, URL, bytes, ``(array, rate)``, IPython Audio, or a list).

    ``options`` are request parameters (``max_tokens``, ``temperature``, ``top_p``, ``stop``,
    ``frequency_penalty``, ``presence_penalty``, ``seed``, ``response_format``, ``tools``,
    ``tool_choice``, ``stream``, ``extra``) and connection settings (``base_url``, ``api_key``,
    ``model``, ``referer``, ``title``, ``timeout``, ``read_timeout``, ``max_attempts``, ...).
    ``max_cost`` (USD) refuses to send when the estimate is higher (:class:`BudgetError`).
    """
    settings, params = split_options(options)
    return LOOP.run(runner.ask(as_list(audio), prompt, settings=settings, params=params, system=system,
                               audio_format=audio_format, max_cost=max_cost, on_event=on_event))


def plan(audio: Any, prompt: str, *, system: str | None = None,
         audio_format: str = _audio.DEFAULT_FORMAT, **options: Any) -> Plan:
    """The request :func:`ask` would send (audio elided in its text form) and its cost estimate."""
    settings, params = split_options(options)
    return LOOP.run(runner.plan(as_list(audio), prompt, settings=settings, params=params,
                                system=system, audio_format=audio_format))


async def transcribe_async(sources: Any, language: str | None = None, *, hint: str | None = None,
                           prompt: str | None = None, translate_to: str | None = None,
                           concurrency: int = 8, audio_format: str = _audio.DEFAULT_FORMAT,
                           max_cost: float | None = None,
                           on_result: Callable[[int, dict], None] | None = None,
                           **options: Any) -> pd.DataFrame:
    """Transcribe every source concurrently; see :func:`transcribe`."""
    import pandas as pd

    options.setdefault("temperature", 0.0)  # Mistral's recommendation for transcription
    settings, params = split_options(options)
    rows = await LOOP.run_async(runner.transcribe(
        as_list(sources), prompt or transcription_prompt(language, hint, translate_to),
        settings=settings, params=params, concurrency=concurrency, audio_format=audio_format,
        max_cost=max_cost, on_result=on_result))
    return pd.DataFrame(rows, columns=TRANSCRIPT_COLUMNS)


def transcribe(sources: Any, language: str | None = None, *, hint: str | None = None,
               prompt: str | None = None, translate_to: str | None = None, concurrency: int = 8,
               audio_format: str = _audio.DEFAULT_FORMAT, max_cost: float | None = None,
               on_result: Callable[[int, dict], None] | None = None, **options: Any) -> pd.DataFrame:
    """One row per source: ``source, duration_s, text, prompt_tokens, completion_tokens, cost_usd,
    latency_s, error`` (+ ``attempts, finish_reason, audio_format, audio_sha256, generation_id``).

    A source that fails gets its ``error`` filled in; the other rows still come back. ``hint``
    adds context or vocabulary to the instruction, ``translate_to`` asks for a translation,
    ``prompt`` replaces the instruction. Options are those of :func:`ask`; ``temperature``
    defaults to 0 and ``max_tokens`` to a bound from each clip's duration. ``max_cost`` (USD)
    applies to the whole batch, estimated before anything is sent.
    """
    return LOOP.run(transcribe_async(sources, language, hint=hint, prompt=prompt,
                                     translate_to=translate_to, concurrency=concurrency,
                                     audio_format=audio_format, max_cost=max_cost,
                                     on_result=on_result, **options))
