"""The magics that end in a table: ``%voxtral_transcribe``, ``%%voxtral --each`` (one row per
source, with a live progress view), and ``%voxtral_history`` / ``%voxtral_models`` /
``%voxtral_cost``."""

from __future__ import annotations

import asyncio
from argparse import Namespace as Args
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import audio, batch_run, limits, runner
from .. import batch as batches
from ..api import history
from ..batch import Batch
from ..dry_run import plan_batch
from ..errors import VoxmagicError
from ..frames import COST_COLUMNS, HISTORY_COLUMNS, compact, table
from ..loop import LOOP
from ..moments import base_label
from ..results import counted, format_usd
from ..runner import ledger
from ..settings import Settings
from ..silence import report
from ..stitch import per_source, summary
from ..subtitles import transcripts
from ..timeline import segment_rows
from .display import BatchView, widgets_available
from .options import AskOptions, CallOptions, TranscribeOptions
from .resolve import audio_items, lookup
from .session import Session, start

if TYPE_CHECKING:
    import pandas as pd

Namespace = MutableMapping[str, Any]
After = Callable[[list[dict]], tuple[list[dict], str]]


def run_each(options: AskOptions, sources: list, prompt: str, namespace: Namespace, session: Session) -> Any:
    """``%%voxtral --each`` (or ``--schema`` over several files): one request and one row per source."""
    spec = batches.question_batch(
        options.settings,
        options.params,
        prompt,
        stream=options.stream,
        system=options.system,
        audio_format=options.audio_format,
        caching=options.caching,
    )
    return run_with_progress(options, Run(sources, spec, "%%voxtral --each"), namespace, session)


def run_transcribe(options: TranscribeOptions, namespace: Namespace, session: Session) -> Any:
    sources = audio_items(
        options.audio, namespace, sample_rate=options.sample_rate, span=options.span, trim=options.trim_silence
    )
    schema = lookup(options.schema, namespace, "--schema") if options.schema else None
    params = options.params if schema is None else replace(options.params, response_format=schema)
    spec = batches.transcription_batch(
        options.settings,
        params,
        stream=options.stream,
        language=options.language,
        hint=options.hint,
        translate_to=options.translate_to,
        audio_format=options.audio_format,
        max_chunk_s=options.max_chunk_s,
        caching=options.caching,
        api=options.api,
        timed=options.segments or bool(options.subtitles),
        diarize=options.diarize,
        vocabulary=options.vocab,
    )
    what, runner = "%voxtral_transcribe", _runner(options)
    if not options.subtitles:
        run = Run(sources, spec, what, options.segments, runner=runner)
        return _playable(run_with_progress(options, run, namespace, session), options, namespace)

    def write(rows: list[dict]) -> tuple[list[dict], str]:
        shown = rows if options.segments else per_source(rows)
        folders = ", ".join(sorted(set(options.subtitles.values())))
        try:
            # a source's name with its moments (meeting.mp3 [0:10–0:20]): a moment is a file of its own
            named = {base_label(str(r.get("source"))): str(r.get("source")) for r in rows}
            found = transcripts(segment_rows(rows))
            written = [p for t in found if t.cues for p in _saved(t, options.subtitles, named.get(t.source, t.source))]
        except OSError as exc:  # the answers are paid for: keep them, and say what could not be written
            return shown, f"subtitles not written to {folders}: {exc.strerror or exc} ({exc.filename})"
        gaps = sum(bool(r.get("error")) and r.get("chunk") is not None for r in rows)  # a failed chunk of a source
        gap = f" ({counted(gaps, 'failed chunk')} left out: see the error column)" if gaps else ""
        return shown, f"wrote {counted(len(written), 'subtitle file')} to {folders}{gap}"

    return run_with_progress(
        options, Run(sources, spec, what, options.segments, True, write, runner=runner), namespace, session
    )


def _saved(transcript: Any, subtitles: Mapping[str, str], name: str) -> list[Path]:
    return [path for fmt, folder in subtitles.items() for path in transcript.save(folder, fmt, name=name)]


def _runner(options: TranscribeOptions) -> Callable[..., Any]:
    """Where the batch runs: here, or with ``--dask`` on the active Dask cluster (voxmagic.dask)."""
    if not options.dask:
        return batch_run.run
    from ..dask import on_cluster

    return on_cluster(True, what="--dask").run


def _playable(result: Any, options: TranscribeOptions, namespace: Namespace) -> Any:
    """Segments in a notebook are shown as a transcript you can play (a click plays a row); the
    table itself is in ``-o NAME`` and ``_voxtral_df``. Elsewhere, the table as it is. Either is
    the cell's result, so a trailing ``;`` hides it. Only the stretch of each file its rows cover
    is embedded (a moment's rows play without the whole recording), on the file's timeline."""
    if options.view.hidden or not (options.segments and widgets_available(options.view.mode)):
        return result  # (hidden by ";": no preview is encoded, no widget state kept)
    if not hasattr(result, "columns"):
        return result
    from ..playback import Stretch
    from .player import TranscriptPlayer

    audio: dict[str, Stretch] = {}
    never = options.view.player_max_seconds == 0  # nothing embedded in the notebook
    for label, rows in result.dropna(subset=["start", "end"]).groupby("source", sort=False):
        path = Path(base_label(str(label))).expanduser()
        if path.is_file() and not never:  # the stretch the rows cover, e.g. the moment of --at
            audio[str(label)] = Stretch(str(path), float(rows["start"].min()), float(rows["end"].max()))
    missing = "not embedded: player_max_seconds is 0" if never else "not a file on disk: nothing to play"
    return TranscriptPlayer.from_segments(result, audio, missing=missing)


@dataclass
class Run:
    """One batch as a magic runs it: ``segments`` rows are sent (``shown_segments`` are shown);
    ``after`` turns the rows into the rows to show, and a note (subtitle files written)."""

    sources: list
    batch: Batch
    what: str
    shown_segments: bool = False
    segments: bool | None = None
    after: After | None = None
    finished: dict[int, list[dict]] = field(default_factory=dict)
    stopped: dict[int, list[dict]] = field(default_factory=dict)  # cut short by a stop, with answers kept
    runner: Callable[..., Any] = batch_run.run  # or a Dask cluster's (--dask)

    @property
    def sent_segments(self) -> bool:
        return self.shown_segments if self.segments is None else self.segments


def run_with_progress(options: CallOptions, run: Run, namespace: Namespace, session: Session) -> Any:
    """A batch with a progress view; binds the table (also what finished, when interrupted)."""
    if options.dry_run:
        print(LOOP.run(plan_batch(run.sources, run.batch, options.concurrency)))
        return None
    run.batch.check()
    view = session.last_view = BatchView(
        [runner.label(s) for s in run.sources],
        widget=widgets_available(options.view.mode),
        rate=options.view.rate,
        concurrency=options.concurrency,
        length=lambda index: length_of(run.sources[index]),
    )

    again = "only what is missing" if run.batch.caching.write else "it all again (--no-cache keeps no answers)"

    def kept() -> str:
        return f", with the answered chunks of {len(run.stopped)} more" if run.stopped else ""

    def interrupted() -> str:
        return (
            f"interrupted: {len(run.finished)} of {len(run.sources)} files finished and are in "
            f"{options.out or '_voxtral_df'}{kept()} (the rest were cancelled; those already sent may still be "
            f"billed: %voxtral_cost); run the same line again to send {again}"
        )

    return start(
        _rows(options, run, view, namespace),
        background=options.background,
        namespace=namespace,
        description=f"{run.what}: {len(run.sources)} files",
        on_interrupt=interrupted,
        announce=not view.widget,
    )


def length_of(item: Any) -> float | None:
    """A source's audio seconds from its header (or an array's length); None when that would cost
    a download or the header does not say."""
    try:
        return audio.as_source(item).probe_duration()
    except (VoxmagicError, OSError, TypeError, ValueError):
        return None


async def _rows(options: CallOptions, run: Run, view: BatchView, namespace: Namespace) -> pd.DataFrame:
    """Runs on voxmagic's loop: the batch, then the view finished and the table bound."""

    def on_result(index: int, rows: list[dict]) -> None:
        run.finished[index] = rows
        view.on_result(index, rows)

    view.start()
    mark = ledger.calls
    try:
        rows = await run.runner(
            run.sources,
            run.batch,
            concurrency=options.concurrency,
            max_cost=options.max_cost,
            segments=run.sent_segments,
            on_result=on_result,
            on_start=view.on_start,
            on_stopped=run.stopped.__setitem__,
            on_chunk=view.on_chunk,
        )
    except VoxmagicError as exc:
        if run.finished:
            view.fail(str(exc))
        else:  # refused before anything finished (the budget): the one-line error says it, once
            view.discard()
        raise
    except asyncio.CancelledError:
        _bind(_partial(run), options, run, namespace)
        kept = "; they are kept" if run.finished else ""
        view.fail(f"cancelled after {len(run.finished)} of {len(run.sources)} files{kept}")
        raise
    finally:
        view.close()  # stops the header's clock whatever happened (idempotent)
    note = ""
    if run.after is not None:
        rows, note = run.after(rows)
    df = _bind(rows, options, run, namespace)
    trimmed = sum(r.get("trimmed_s") or 0.0 for r in rows) + _silent_s(run)
    sent_s = sum(summary(chunks)["duration_s"] for chunks in run.finished.values() if chunks)
    saved = report(trimmed, run.batch.audio_price(), sent_s) if options.trim_silence else ""
    view.finish("\n".join(filter(None, [ledger.tally_since(mark), saved, note])))
    return df


def _silent_s(run: Run) -> float:
    """The length of the sources that held no speech at all: each is an error row, not a request,
    so it has no ``trimmed_s``, yet all of it was trimmed (its header says how long it is)."""
    silent = (i for i, rows in run.finished.items() if [r.get("error") for r in rows] == [audio.NO_SPEECH])
    return sum(length_of(run.sources[i]) or 0.0 for i in silent)


def _bind(rows: list[dict], options: CallOptions, run: Run, namespace: Namespace) -> pd.DataFrame:
    shown = segment_rows(rows) if run.shown_segments else rows
    p = run.batch.params
    df = table(shown, segments=run.shown_segments, structured=run.batch.structured, schema=p.response_format,
               tools=bool(p.tools))  # fmt: skip
    namespace["_voxtral_df"] = df  # the last table, whatever is shown of it (and with or without -o)
    if options.out:
        namespace[options.out] = df
    if len(df) == 1 and isinstance(df["text"].iloc[0], str):
        namespace["_voxtral_text"] = df["text"].iloc[0]
        if options.out:
            namespace[f"{options.out}_text"] = namespace["_voxtral_text"]
    return df


def _partial(run: Run) -> list[dict]:
    """The rows of what finished, of what a stop cut short (its answered chunks, and which were
    not), and the sources not begun marked as interrupted."""
    rows = []
    for i, source in enumerate(run.sources):
        rows += (
            run.finished.get(i)
            or run.stopped.get(i)
            or [{"source": runner.label(source), "error": "interrupted before it finished"}]
        )
    return rows


# -- the tables of what happened ----------------------------------------------------------------


def run_history(args: Args, namespace: Namespace) -> pd.DataFrame:
    """``-o`` keeps every column (the data); what is shown is compact unless ``--all``."""
    full = history(last=limits.check("last", args.last, "--last"), since=args.since, since_label="--since")
    if runner.store.problem:  # an empty table needs its reason beside it
        print(runner.store.problem)
    if args.out:
        namespace[args.out] = full
    return compact(full, HISTORY_COLUMNS, args.all, "%voxtral_history")


def run_models(args: Args, namespace: Namespace, settings: Settings) -> pd.DataFrame:
    from ..prices import models_table

    df = models_table(settings, refresh=args.refresh)
    source = df.attrs.get("source")
    prices = (
        f"prices: {source}"
        if settings.effective_dialect == "openrouter"
        else f"the {source} list has no prices: known ones are filled in; a chat call to the others is "
        "estimated at Voxtral Small's OpenRouter price"
    )
    if df.attrs.get("failure"):  # asked for the list and did not get it: say so before the fallback
        kept = "the built-in prices" if source == "seed" else "the copy fetched before"
        print(f"could not fetch the model list from {settings.base_url} ({df.attrs['failure']}); showing {kept}")
    print(f"{counted(len(df), 'model')} taking audio at {settings.base_url} ({prices})")
    if args.out:
        namespace[args.out] = df
    return df


def run_cost(args: Args, namespace: Namespace) -> pd.DataFrame | None:
    """The session's calls (abandoned attempts too: the provider may bill them) and the total."""
    full = runner.ledger.to_dataframe()
    full.attrs["total_usd"] = float(full["cost_usd"].fillna(0).sum())
    if args.out:  # every column (the data); what is shown is compact unless --all
        namespace[args.out] = full
    df = compact(full, COST_COLUMNS, args.all, "%voxtral_cost")
    df.attrs["total_usd"] = full.attrs["total_usd"]
    print(runner.ledger.summary())
    if args.reset:
        runner.ledger.reset()
        budget = runner.ledger.budget_usd
        again = f"; the session budget of {format_usd(budget)} is all available again" if budget is not None else ""
        print(f"cost tally reset to $0{again}")
        return None
    return df
