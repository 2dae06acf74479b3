"""What the magics do once their options are parsed: resolve, plan, run with a live view, store.

Kept apart from :mod:`voxmagic.magics` so that the magic class is only options and help. Every
function here takes the magic (for its session defaults and shell) and the parsed arguments.
A run either blocks (Ctrl-C cancels what is in flight and keeps what finished) or, with
``--background``, returns a :class:`~voxmagic.jobs.Job` at once and binds ``-o`` when done.
"""

from __future__ import annotations

import asyncio
import sys
from argparse import Namespace
from typing import TYPE_CHECKING, Any, Callable, Coroutine

from . import batch, runner
from .api import history, question_job, split_options, transcription_job
from .cost import format_usd
from .display import BatchView, StreamView, tool_line, widgets_available
from .errors import ConfigError, Interrupted, VoxmagicError
from .jobs import Job
from .loop import LOOP
from .resolve import audio_items, lookup, render_prompt
from .results import table
from .subtitles import transcripts
from .runner import Caching
from .conversation import Exchange, exchange, follow_up, split_tools

if TYPE_CHECKING:
    import pandas as pd

    from .magics import VoxtralMagics


def _pick(arg: Any, default: Any) -> Any:
    return arg if arg is not None else default


def options(magic: VoxtralMagics, args: Namespace, *, temperature: float | None,
            max_tokens: int | None, **extra: Any) -> dict[str, Any]:
    """Request parameters and settings: the command line wins over the defaults given."""
    opts = dict(
        model=_pick(args.model, magic.model), base_url=_pick(args.base_url, magic.base_url),
        provider=_pick(args.provider, magic.provider),
        key_env=magic.api_key_env, referer=magic.referer, title=magic.title,
        max_attempts=magic.max_attempts, backoff=magic.backoff, read_timeout=magic.read_timeout,
        max_tokens=_pick(args.max_tokens, max_tokens), temperature=_pick(args.temperature, temperature),
        top_p=args.top_p, stop=args.stop, frequency_penalty=args.frequency_penalty,
        presence_penalty=args.presence_penalty, seed=args.seed,
        stream=False if args.no_stream else magic.stream)
    opts.update({k: v for k, v in extra.items() if v is not None})
    return opts


def _batch_options(opts: dict[str, Any]) -> dict[str, Any]:
    """A batch streams only long chunks unless streaming is off (``--no-stream``, ``stream = False``)."""
    return {**opts, "stream": None if opts["stream"] else False}


def _cache_flags(magic: VoxtralMagics, args: Namespace) -> dict[str, bool]:
    return {"cache": magic.cache and not args.no_cache, "refresh": args.refresh}


def caching(magic: VoxtralMagics, args: Namespace) -> Caching:
    return Caching.of(**_cache_flags(magic, args))


def tally(usd: float | None, calls: int = 1) -> str:
    if calls == 0:
        return f"nothing sent · {runner.ledger}"
    what = "this call" if calls == 1 else f"these {calls} calls"
    return f"{what} {format_usd(usd)} · {runner.ledger}"


def _start(magic: VoxtralMagics, args: Namespace, work: Coroutine, view: Any, description: str,
           on_interrupt: Callable[[], str]) -> Any:
    """Run ``work`` (which finishes the view and binds variables itself): blocking, or as a Job."""
    async def closing() -> Any:
        try:
            return await work
        finally:
            view.close()  # the last, exact update — on the loop thread

    if args.background:
        job = Job(LOOP.submit(closing()), description)
        magic.shell.user_ns["_voxtral_job"] = job
        return job
    try:
        return LOOP.run(closing())
    except KeyboardInterrupt:
        raise Interrupted(on_interrupt()) from None


def run_ask(magic: VoxtralMagics, args: Namespace, cell: str) -> Job | None:
    ns = magic.shell.user_ns
    if not cell.strip():
        raise ConfigError("the cell is empty: write your question about the audio below the "
                          "%%voxtral line (or use %voxtral_transcribe)")
    prompt = render_prompt(cell.strip(), ns)
    if args.each and args.together:
        raise ConfigError("--each asks about every source separately and --together about all at once: "
                          "choose one")
    if args.max_tool_rounds is not None and args.max_tool_rounds < 1:
        raise ConfigError(f"--max-tool-rounds {args.max_tool_rounds}: allow at least 1 round")
    if args.resume and (args.each or args.together):
        raise ConfigError("--continue follows up one conversation; it does not combine with --each or "
                          "--together")
    if args.resume:
        if args.audio:
            raise ConfigError("--continue asks about the audio already in the conversation: leave out "
                              f"{' '.join(args.audio)} (or ask without --continue to start a new one)")
        if magic.conversation is None:
            raise ConfigError("nothing to continue: ask a first question with %%voxtral AUDIO, then "
                              "follow up with %%voxtral --continue")
        sources = []
    else:
        sources = audio_items(args.audio, ns, sample_rate=args.sr)
    schema = lookup(args.schema, ns, "--schema") if args.schema else None
    names = dict.fromkeys(filter(None, (n.strip() for n in (args.tools or "").split(","))))
    tools, functions = split_tools([lookup(name, ns, "--tools") for name in names])
    opts = options(magic, args, temperature=magic.temperature, max_tokens=magic.max_tokens,
                   response_format=schema if schema is not None else ("json" if args.json else None),
                   tools=tools, tool_choice=args.tool_choice)
    if args.each or (schema is not None and len(sources) > 1 and not args.together):
        return run_each(magic, args, sources, prompt, opts)
    settings, params = split_options(opts)
    if not args.dry_run:
        settings.check()
    if args.resume:
        plan = runner.planned(follow_up(magic.conversation, prompt, params))
    else:
        plan = LOOP.run(runner.plan(sources, prompt, settings=settings, params=params, system=args.system,
                                    audio_format=args.format or magic.audio_format))
    if args.dry_run:
        print(plan)
        return None
    cache = caching(magic, args)
    max_cost = _pick(args.max_cost, magic.max_cost)
    runner.check_before_sending(plan, settings, max_cost, cache)
    widget = widgets_available(magic.display_mode)
    request = plan.request
    if widget and not args.resume and 0 < request.audio_seconds <= magic.player_max_seconds:
        _players(request.audio)
    view = magic.last_view = StreamView(request, widget=widget, rate=magic.updates_per_second)

    async def work() -> Any:
        try:
            done = await exchange(request, settings, functions=functions, auto_tools=args.auto_tools,
                                  max_rounds=_pick(args.max_tool_rounds, magic.max_tool_rounds),
                                  on_event=view.on_event, on_tools=view.on_tools, caching=cache,
                                  max_cost=max_cost)
        except VoxmagicError as exc:
            ns["_voxtral_error"] = exc
            view.fail(str(exc))
            raise
        except asyncio.CancelledError:
            ns["_voxtral_partial"] = view.text
            view.fail("cancelled: the request was closed (it may still be billed; see %voxtral_history)")
            raise
        magic.conversation = done
        value, shown = _value(done)
        ns["_voxtral"] = done.response
        if args.out:
            ns[args.out] = value
        summary = done.response.summary + (f" · {len(done.responses)} requests" if len(done.responses) > 1 else "")
        view.finish(shown, summary, tally(done.cost_usd, len(done.responses)))
        return value

    result = _start(magic, args, work(), view, f"%%voxtral {' '.join(args.audio)}",
                    lambda: "interrupted: the request was cancelled (it may still be billed; see "
                            "%voxtral_history); the text so far is in _voxtral_partial")
    return result if args.background else None


def _players(clips: tuple) -> None:
    from IPython.display import Audio, display

    for clip in clips:
        player = Audio(data=clip.data)
        player.mimetype = {"mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg"}.get(
            clip.format, "audio/wav")
        display(player)


def _value(done: Exchange) -> tuple[Any, str]:
    """What ``-o`` receives, and the text shown for it: the answer, with every tool call (run or
    not) in order between the answers."""
    response = done.response
    lines: list[str] = []
    for i, r in enumerate(done.responses, start=1):
        if r.text:
            lines.append(r.text)
        lines += [tool_line(run) for run in response.tool_runs if run["round"] == i]
    if done.stopped:
        calls = [{"id": c.id, "name": c.name, "arguments": _arguments(c)} for c in response.tool_calls]
        lines += [tool_line(c) for c in calls] + [f"({done.stopped})"]
        return calls, "\n".join(lines)
    if response.parse_error:
        print(f"voxmagic: {response.parse_error}", file=sys.stderr)
    return response.value, "\n".join(lines)


def _arguments(call: Any) -> Any:
    try:
        return call.args
    except ValueError:
        return call.arguments  # not JSON: show what the model wrote


def run_each(magic: VoxtralMagics, args: Namespace, sources: list, prompt: str, opts: dict) -> Any:
    """``%%voxtral --each`` (or ``--schema`` over several files): one request and one row per source."""
    job = question_job(prompt, _batch_options(opts), system=args.system,
                       audio_format=args.format or magic.audio_format, **_cache_flags(magic, args))
    return _run_batch(magic, args, sources, job, "%%voxtral --each")


def run_transcribe(magic: VoxtralMagics, args: Namespace) -> Any:
    ns = magic.shell.user_ns
    sources = audio_items(args.audio, ns, sample_rate=args.sr)
    schema = lookup(args.schema, ns, "--schema") if args.schema else None
    opts = options(magic, args, temperature=0.0, max_tokens=None, response_format=schema)
    minutes = _pick(args.chunk_minutes, magic.chunk_minutes)
    subtitles = {fmt: folder for fmt, folder in (("srt", args.srt), ("vtt", args.vtt)) if folder}
    job = transcription_job(args.language, args.prompt, None, args.translate_to,
                            args.format or magic.audio_format, minutes * 60 if minutes else None,
                            api=args.api, options=_batch_options(opts), subtitles=bool(subtitles),
                            **_cache_flags(magic, args))
    if not subtitles:
        return _run_batch(magic, args, sources, job, "%voxtral_transcribe")

    def write(rows: list[dict]) -> tuple[list[dict], str]:
        found = transcripts(rows)
        written = [path for t in found if t.cues for fmt, folder in subtitles.items() for path in t.save(folder, fmt)]
        note = (f"wrote {len(written)} subtitle file{'s' if len(written) != 1 else ''} to "
                f"{', '.join(sorted(set(subtitles.values())))}")
        return (rows if args.segments else batch.per_source(rows)), note

    return _run_batch(magic, args, sources, job, "%voxtral_transcribe", segments=True, after=write)


def _run_batch(magic: VoxtralMagics, args: Namespace, sources: list, job: batch.Batch, what: str, *,
               segments: bool | None = None, after: Callable[[list[dict]], tuple[list[dict], str]] | None = None
               ) -> Any:
    """Run a batch with a progress view; bind the table (also what finished, when interrupted).
    ``after`` turns the rows into the rows to show, and a note (subtitle files written)."""
    ns = magic.shell.user_ns
    shown_segments = getattr(args, "segments", False)
    segments = shown_segments if segments is None else segments
    concurrency = getattr(args, "concurrency", None) or magic.concurrency
    if args.dry_run:
        print(LOOP.run(batch.plan_batch(sources, job, concurrency)))
        return None
    job.check()
    view = magic.last_view = BatchView([runner.label(s) for s in sources],
                                       widget=widgets_available(magic.display_mode),
                                       rate=magic.updates_per_second)
    finished: dict[int, list[dict]] = {}

    def on_result(index: int, rows: list[dict]) -> None:
        finished[index] = rows
        view.on_result(index, rows)

    def bind(rows: list[dict]) -> pd.DataFrame:
        df = table(rows, segments=shown_segments, structured=job.structured)
        if args.out:
            ns[args.out] = df
        if len(df) == 1 and isinstance(df["text"].iloc[0], str):
            ns["_voxtral_text"] = df["text"].iloc[0]
            if args.out:
                ns[f"{args.out}_text"] = ns["_voxtral_text"]
        return df

    async def work() -> pd.DataFrame:
        try:
            rows = await batch.transcribe(sources, job, concurrency=concurrency,
                                          max_cost=_pick(args.max_cost, magic.max_cost),
                                          segments=segments, on_result=on_result)
        except VoxmagicError as exc:
            view.fail(str(exc))
            raise
        except asyncio.CancelledError:
            df = _partial(finished, sources, bind)
            if not args.out:
                ns["_voxtral_df"] = df
            view.fail(f"cancelled after {len(finished)} of {len(sources)} files; they are kept")
            raise
        note = ""
        if after is not None:
            rows, note = after(rows)
        df = bind(rows)
        sent = sum(r.get("chunks") or 1 for r in rows if r.get("cost_usd") is not None and not r.get("cached"))
        view.finish(tally(float(df["cost_usd"].fillna(0).sum()), sent)
                    + (f"\n{note}" if note else ""))
        return df

    def interrupted() -> str:
        return (f"interrupted: {len(finished)} of {len(sources)} files finished and are in "
                f"{args.out or '_voxtral_df'} (the rest were cancelled); run the same line again to "
                "send only what is missing")

    return _start(magic, args, work(), view, f"{what}: {len(sources)} files", interrupted)


def _partial(finished: dict[int, list[dict]], sources: list, table: Callable) -> Any:
    """The table of what finished, with the unfinished sources marked as interrupted."""
    rows = []
    for i, source in enumerate(sources):
        rows += finished.get(i) or [{"source": runner.label(source), "error": "interrupted before it finished"}]
    return table(rows)


def run_history(magic: VoxtralMagics, args: Namespace) -> pd.DataFrame:
    df = history(last=args.last, since=args.since)
    if args.out:
        magic.shell.user_ns[args.out] = df
    return df


def run_models(magic: VoxtralMagics, args: Namespace) -> pd.DataFrame:
    from .prices import models_table
    from .settings import Settings

    settings = Settings.resolve(provider=_pick(args.provider, magic.provider),
                                base_url=_pick(args.base_url, magic.base_url))
    df = models_table(settings, refresh=args.refresh)
    print(f"{len(df)} models that take audio at {settings.base_url} (prices: {df.attrs.get('source')})")
    if args.out:
        magic.shell.user_ns[args.out] = df
    return df
