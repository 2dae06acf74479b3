"""The plain-Python API: ``ask`` one question about audio, ``transcribe`` many sources into a table.

Each has an ``*_async`` twin; the sync functions drive the same coroutines on voxmagic's own
background loop (see :mod:`voxmagic.loop`), so they work in scripts and inside a running kernel.
This module is the public face only: the work is in :mod:`voxmagic.runner`,
:mod:`voxmagic.batch` and :mod:`voxmagic.conversation`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import audio as _audio
from . import limits, runner, stitch
from .audio import source_options
from .audio import sources as audio_sources
from .batch import DEFAULT_CHUNK_S, Batch, question_batch, transcription_batch
from .batch_run import run as run_batch
from .chat import TRANSCRIPT_TEMPERATURE
from .conversation import Conversation, batch_tools
from .frames import table
from .limits import DEFAULT_CONCURRENCY
from .loop import LOOP
from .prompts import extraction_prompt, transcription_prompt
from .providers import vocabulary
from .results import Response
from .runner import Caching, Plan, ledger
from .settings import split_options
from .since import timestamp
from .subtitles import Transcript
from .subtitles import transcripts as subtitle_transcripts
from .timeline import segment_rows

if TYPE_CHECKING:
    import pandas as pd

    from .chat import Params
    from .settings import Settings
    from .streaming import EventHandler

__all__ = [
    "ask",
    "ask_async",
    "ask_each",
    "ask_each_async",
    "Conversation",
    "extraction_prompt",
    "transcripts",
    "transcribe",
    "transcribe_async",
    "plan",
    "history",
    "ledger",
    "transcription_prompt",
]


async def ask_async(
    audio: Any,
    prompt: str,
    *,
    system: str | None = None,
    audio_format: str = _audio.DEFAULT_FORMAT,
    max_cost: float | None = None,
    cache: bool = True,
    refresh: bool = False,
    on_event: EventHandler | None = None,
    **options: Any,
) -> Response:
    """Ask ``prompt`` about one or more audio sources; see :func:`ask`."""
    conversation = Conversation(audio, system=system, audio_format=audio_format, **options)
    return await conversation.ask_async(prompt, max_cost=max_cost, cache=cache, refresh=refresh, on_event=on_event)


def ask(
    audio: Any,
    prompt: str,
    *,
    system: str | None = None,
    audio_format: str = _audio.DEFAULT_FORMAT,
    max_cost: float | None = None,
    cache: bool = True,
    refresh: bool = False,
    on_event: EventHandler | None = None,
    **options: Any,
) -> Response:
    """Ask ``prompt`` about ``audio`` (a path, URL, bytes, ``(array, rate)``, IPython Audio, or a list).

    ``options`` are request parameters (``max_tokens``, ``temperature``, ``top_p``, ``stop``,
    ``frequency_penalty``, ``presence_penalty``, ``seed``, ``response_format``, ``tools``,
    ``tool_choice``, ``stream``, ``extra``) and connection settings (``provider``, ``base_url``,
    ``api_key``, ``model``, ``referer``, ``title``, ``timeout``, ``read_timeout``, ``max_attempts``, ...).
    ``tools`` may be Python functions: with ``auto_tools=True`` the ones the model calls are run
    and their results sent back, for up to ``max_tool_rounds`` (5) rounds; the runs are in
    ``Response.tool_runs``. ``max_cost`` (USD) refuses to send when the estimate is higher
    (:class:`BudgetError`). The same request answered before comes from the cache
    (``cached=True``, $0) unless ``cache=False``; ``refresh=True`` sends anyway and keeps the new
    answer. For follow-up questions use :class:`Conversation`.
    """
    return LOOP.run(
        ask_async(
            audio,
            prompt,
            system=system,
            audio_format=audio_format,
            max_cost=max_cost,
            cache=cache,
            refresh=refresh,
            on_event=on_event,
            **options,
        )
    )


def plan(
    audio: Any, prompt: str, *, system: str | None = None, audio_format: str = _audio.DEFAULT_FORMAT, **options: Any
) -> Plan:
    """The request :func:`ask` would send (audio elided in its text form) and its cost estimate."""
    sent = source_options(options)
    settings, params = split_options(options)
    return LOOP.run(
        runner.plan(
            audio_sources(audio, **sent),
            prompt,
            settings=settings,
            params=params,
            system=system,
            audio_format=audio_format,
        )
    )


async def transcribe_async(
    sources: Any,
    language: str | None = None,
    *,
    hint: str | None = None,
    prompt: str | None = None,
    translate_to: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    audio_format: str = _audio.DEFAULT_FORMAT,
    max_cost: float | None = None,
    cache: bool = True,
    refresh: bool = False,
    segments: bool = False,
    max_chunk_s: float | None = DEFAULT_CHUNK_S,
    api: str | None = None,
    on_result: Callable[[int, dict], None] | None = None,
    dask: Any = None,
    **options: Any,
) -> pd.DataFrame:
    """Transcribe every source concurrently; see :func:`transcribe`."""
    if dask is not None and dask is not False:  # on a Dask cluster: voxmagic.dask (imported only then)
        from .dask import on_cluster

        cluster = on_cluster(dask, options)
    batch, sent = _transcript_batch(options, timed=segments, language=language, hint=hint, prompt=prompt,
                                      translate_to=translate_to, audio_format=audio_format, max_chunk_s=max_chunk_s,
                                      caching=Caching.of(cache, refresh), api=api)  # fmt: skip
    if dask is not None and dask is not False:
        return await cluster.table(audio_sources(sources, **sent), batch, concurrency, max_cost, segments, on_result)
    return await _table(audio_sources(sources, **sent), batch, concurrency, max_cost, segments, on_result)


def transcripts(
    sources: Any,
    language: str | None = None,
    *,
    hint: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    audio_format: str = _audio.DEFAULT_FORMAT,
    max_cost: float | None = None,
    cache: bool = True,
    refresh: bool = False,
    api: str | None = None,
    **options: Any,
) -> list[Transcript]:
    """Timed transcripts, one :class:`~voxmagic.subtitles.Transcript` per source, for subtitles:
    ``[t.save("subs", ("srt", "vtt")) for t in voxmagic.transcripts("talks/*.mp3")]``.

    Times come from the provider's segments (Mistral's transcriptions endpoint) or else from
    chunks of at most 30 s cut at pauses, one request each; long chunk texts are split into
    cues in proportion to their length. Options are :func:`transcribe`'s."""
    batch, sent = _transcript_batch(options, timed=True, language=language, hint=hint, audio_format=audio_format,
                                      caching=Caching.of(cache, refresh), api=api)  # fmt: skip
    rows = LOOP.run(
        run_batch(audio_sources(sources, **sent), batch, concurrency=concurrency, max_cost=max_cost, segments=True)
    )
    return subtitle_transcripts(segment_rows(rows))


def _transcript_batch(options: dict[str, Any], *, timed: bool, **given: Any) -> tuple[Batch, dict[str, Any]]:
    """A transcription batch from a call's keywords: ``diarize=`` and ``vocab=`` (names, jargon:
    ``"Voxtral, pgvector"`` or a list) as well as the options :func:`transcribe` documents."""
    sent = source_options(options)
    diarize, words = bool(options.pop("diarize", False)), vocabulary(options.pop("vocab", None))
    stream, settings, params = _split(options, "transcribe", temperature=TRANSCRIPT_TEMPERATURE)
    batch = transcription_batch(
        settings, params, stream=stream, timed=timed, diarize=diarize, vocabulary=words, **given
    )
    return batch, sent


def _split(options: dict[str, Any], what: str, **defaults: Any) -> tuple[bool | None, Settings, Params]:
    """A batch's options: ``stream`` (None: only long chunks stream), settings, parameters (Python
    functions given as ``tools`` are sent as their definitions; see :func:`batch_tools`)."""
    options = batch_tools({**defaults, **options}, what)
    stream = options.pop("stream", None)
    settings, params = split_options(options)
    return stream, settings, params


async def _table(
    sources: list[Any],
    batch: Batch,
    concurrency: int,
    max_cost: float | None,
    segments: bool,
    on_result: Callable[[int, dict], None] | None,
) -> pd.DataFrame:
    failed: list[str] = []

    def report(index: int, rows: list[dict]) -> None:
        if on_result and not failed:
            try:
                on_result(index, rows[0] if len(rows) == 1 else stitch.summary(rows))
            except Exception as exc:  # noqa: BLE001 - the user's callback must not cost the paid-for rows
                failed.append(f"{type(exc).__name__}: {exc}")
                warnings.warn(
                    f"on_result raised {failed[0]}; it is not called again, and the batch goes on", stacklevel=1
                )

    rows = await LOOP.run_async(
        run_batch(sources, batch, concurrency=concurrency, max_cost=max_cost, segments=segments, on_result=report)
    )
    shown = segment_rows(rows) if segments else rows
    p = batch.params
    return table(shown, segments=segments, structured=batch.structured, schema=p.response_format, tools=bool(p.tools))


async def ask_each_async(
    sources: Any,
    prompt: str,
    *,
    system: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    audio_format: str = _audio.DEFAULT_FORMAT,
    max_cost: float | None = None,
    cache: bool = True,
    refresh: bool = False,
    on_result: Callable[[int, dict], None] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Ask ``prompt`` about each source separately; see :func:`ask_each`."""
    sent = source_options(options)
    stream, settings, params = _split(options, "ask_each")
    batch = question_batch(
        settings,
        params,
        prompt,
        stream=stream,
        system=system,
        audio_format=audio_format,
        caching=Caching.of(cache, refresh),
    )
    return await _table(audio_sources(sources, **sent), batch, concurrency, max_cost, False, on_result)


def ask_each(
    sources: Any,
    prompt: str,
    *,
    system: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    audio_format: str = _audio.DEFAULT_FORMAT,
    max_cost: float | None = None,
    cache: bool = True,
    refresh: bool = False,
    on_result: Callable[[int, dict], None] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """The same question about every source, one request each, concurrently: a DataFrame with one
    row per source (the columns of :func:`transcribe`, ``text`` being the answer).

    With a ``response_format`` schema (a pydantic model or JSON-schema dict) each answer is parsed
    and its fields become columns (nested ones as ``a.b``); an answer that is not valid JSON, or
    does not fit the schema, fills that row's ``error`` and the others are unaffected. A source
    longer than one request holds (~40 min) gets an error row; transcribe it instead.
    """
    return LOOP.run(
        ask_each_async(
            sources,
            prompt,
            system=system,
            concurrency=concurrency,
            audio_format=audio_format,
            max_cost=max_cost,
            cache=cache,
            refresh=refresh,
            on_result=on_result,
            **options,
        )
    )


def transcribe(
    sources: Any,
    language: str | None = None,
    *,
    hint: str | None = None,
    prompt: str | None = None,
    translate_to: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    audio_format: str = _audio.DEFAULT_FORMAT,
    max_cost: float | None = None,
    cache: bool = True,
    refresh: bool = False,
    segments: bool = False,
    max_chunk_s: float | None = DEFAULT_CHUNK_S,
    api: str | None = None,
    on_result: Callable[[int, dict], None] | None = None,
    dask: Any = None,
    **options: Any,
) -> pd.DataFrame:
    """One row per source: ``source, text, duration_s, cost_usd, error`` (+ ``prompt_tokens,
    completion_tokens, latency_s, attempts, chunks, cached, finish_reason, audio_format,
    generation_id, audio_sha256``).

    A source that fails gets its ``error`` filled in; the other rows still come back. ``hint``
    adds context or vocabulary to the instruction, ``translate_to`` asks for a translation,
    ``prompt`` replaces the instruction. Audio longer than ``max_chunk_s`` (25 min) is cut at
    pauses into chunks sent concurrently and stitched in order.

    ``segments=True`` returns one row per timed segment instead: ``source, start, end, speaker,
    text, cost_usd, error, chunk, ...`` in seconds of the source's own timeline (the provider's
    segments where it gives them, else pieces of at most 30 s cut at pauses); such a table, or
    rows of it, is itself audio for :func:`ask`. ``diarize=True`` labels speakers (Mistral's
    transcriptions endpoint), ``vocab="Voxtral, pgvector"`` spells names as given,
    ``start="12:30", end="14:00"`` sends only that moment, and ``trim_silence=True`` cuts pauses
    over 1 s out before upload (``trimmed_s`` says how much; times stay on the original
    timeline). Answers already in the cache cost $0 and are not sent again (``cache=False`` /
    ``refresh=True`` as in :func:`ask`). Options are those of
    :func:`ask`; ``temperature`` defaults to 0, ``max_tokens`` to a bound from each chunk's
    duration, and ``stream`` to streaming only chunks over two minutes. ``max_cost`` (USD)
    applies to the whole batch, estimated before anything is sent.

    ``api`` picks the endpoint: ``"chat"`` (an instruction to the chat model) or
    ``"transcriptions"`` (the provider's speech-to-text endpoint, which also gives timed
    segments); by default plain transcripts use the latter where the provider has one (Mistral).

    With ``response_format`` (a pydantic model or JSON-schema dict) each source gets a JSON
    answer instead of a transcript, parsed into columns as in :func:`ask_each`; a source cut into
    several chunks then needs ``segments=True`` (one answer per chunk).

    ``dask=client`` (a ``distributed.Client`` or True: the active one) runs it on that Dask cluster
    (:mod:`voxmagic.dask`): ``concurrency`` bounds requests in flight cluster-wide, ``max_cost`` is a
    budget that stops sending once reached, and answered rows go to a Parquet dataset at ``output=``
    (any fsspec path; default ``$VOXMAGIC_DASK_OUTPUT`` or ``./voxmagic-transcripts``) that a rerun
    skips; ``partition_size=`` sets the sources per task.
    """
    return LOOP.run(transcribe_async(
        sources, language, hint=hint, prompt=prompt, translate_to=translate_to, concurrency=concurrency,
        audio_format=audio_format, max_cost=max_cost, cache=cache, refresh=refresh, segments=segments,
        max_chunk_s=max_chunk_s, api=api, on_result=on_result, dask=dask, **options,
    ))  # fmt: skip


def history(last: int | None = None, since: Any = None, *, since_label: str = "since=") -> pd.DataFrame:
    """Every request voxmagic has made on this machine (newest ``last``, or ``since`` a time),
    from its SQLite file — cost, tokens, text, errors; never the key or the audio. ``since_label``
    names the value in a refusal as the caller wrote it (``--since`` on a magic's line)."""
    return runner.store.history(last=limits.check("last", last), since=timestamp(since, since_label))
