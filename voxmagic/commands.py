"""What the magics do once their options are parsed: resolve, plan, run with a live view, store.

Kept apart from :mod:`voxmagic.magics` so that the magic class is only options and help. Every
function here takes the magic (for its session defaults and shell) and the parsed arguments.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from typing import TYPE_CHECKING, Any, Coroutine

from IPython.core.error import UsageError

from . import runner
from .api import split_options, transcription_prompt
from .cost import format_usd
from .display import BatchView, StreamView, widgets_available
from .errors import ConfigError, VoxmagicError
from .loop import LOOP
from .resolve import audio_items, lookup, render_prompt
from .results import TRANSCRIPT_COLUMNS, Response
from .tools import call_tools, tool_from_function

if TYPE_CHECKING:
    from .magics import VoxtralMagics


def _pick(arg: Any, default: Any) -> Any:
    return arg if arg is not None else default


def options(magic: VoxtralMagics, args: Namespace, *, temperature: float | None,
            max_tokens: int | None, **extra: Any) -> dict[str, Any]:
    """Request parameters and settings: the command line wins over the defaults given."""
    opts = dict(
        model=_pick(args.model, magic.model), base_url=_pick(args.base_url, magic.base_url),
        key_env=magic.api_key_env, referer=magic.referer, title=magic.title,
        max_attempts=magic.max_attempts, backoff=magic.backoff, read_timeout=magic.read_timeout,
        max_tokens=_pick(args.max_tokens, max_tokens), temperature=_pick(args.temperature, temperature),
        top_p=args.top_p,
        stop=args.stop, frequency_penalty=args.frequency_penalty, presence_penalty=args.presence_penalty,
        seed=args.seed, stream=False if args.no_stream else magic.stream)
    opts.update({k: v for k, v in extra.items() if v is not None})
    return opts


async def _closing(coro: Coroutine, view: Any) -> Any:
    """Run ``coro`` and always give the view its last exact update, on the loop thread."""
    try:
        return await coro
    finally:
        view.close()


def tally(usd: float | None, calls: int = 1) -> str:
    what = "this call" if calls == 1 else f"these {calls} calls"
    return f"{what} {format_usd(usd)} · {runner.ledger}"


def run_ask(magic: VoxtralMagics, args: Namespace, cell: str) -> None:
    ns = magic.shell.user_ns
    if not cell.strip():
        raise ConfigError("the cell is empty: write your question about the audio below the "
                          "%%voxtral line (or use %voxtral_transcribe)")
    prompt = render_prompt(cell.strip(), ns)
    sources = audio_items(args.audio, ns, sample_rate=args.sr)
    schema = lookup(args.schema, ns, "--schema") if args.schema else None
    functions = {}
    for name in filter(None, (n.strip() for n in (args.tools or "").split(","))):
        fn = lookup(name, ns, "--tools")
        functions[getattr(fn, "__name__", name)] = fn
    opts = options(magic, args, temperature=magic.temperature, max_tokens=magic.max_tokens,
                   response_format=schema if schema is not None else ("json" if args.json else None),
                   tools=[tool_from_function(f) for f in functions.values()] or None,
                   tool_choice=args.tool_choice)
    settings, params = split_options(opts)
    if not args.dry_run:
        settings.check()
    plan = LOOP.run(runner.plan(sources, prompt, settings=settings, params=params, system=args.system,
                                audio_format=args.format or magic.audio_format))
    if args.dry_run:
        print(plan)
        return
    runner.check_budget(plan.estimate, _pick(args.max_cost, magic.max_cost))
    widget = widgets_available(magic.display_mode)
    request = plan.request
    if widget and 0 < request.audio_seconds <= magic.player_max_seconds:
        _players(request.audio)
    view = magic.last_view = StreamView(request, widget=widget, rate=magic.updates_per_second)
    try:
        response = LOOP.run(_closing(runner.send(request, settings, view.on_event), view))
    except VoxmagicError as exc:
        ns["_voxtral_error"] = exc
        kept = " (the partial answer is in _voxtral_error.partial_text)" if getattr(exc, "partial_text", "") else ""
        view.fail(f"{exc}{kept}")
        raise UsageError(f"{exc}{kept}") from None
    except KeyboardInterrupt:
        view.fail("interrupted: nothing was stored")
        raise
    value, shown = _value(response, functions)
    ns["_voxtral"] = response
    if args.out:
        ns[args.out] = value
    view.finish(shown, response.summary, tally(response.cost_usd))


def _players(clips: tuple) -> None:
    from IPython.display import Audio, display

    for clip in clips:
        player = Audio(data=clip.data)
        player.mimetype = {"mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg"}.get(
            clip.format, "audio/wav")
        display(player)


def _value(response: Response, functions: dict) -> tuple[Any, str]:
    """What ``-o`` receives, and the text shown for it."""
    if functions and response.tool_calls:
        results = call_tools(response.tool_calls, functions)
        lines = [f"{r['name']}({r['arguments']}) → {r['error'] or repr(r['result'])}" for r in results]
        return results, (response.text + "\n" if response.text else "") + "\n".join(lines)
    if response.parse_error:
        print(f"voxmagic: {response.parse_error}", file=sys.stderr)
    return response.value, response.text


def run_transcribe(magic: VoxtralMagics, args: Namespace) -> Any:
    import pandas as pd

    ns = magic.shell.user_ns
    sources = audio_items(args.audio, ns, sample_rate=args.sr)
    opts = options(magic, args, temperature=0.0, max_tokens=None)  # 0: Mistral's advice for transcripts
    settings, params = split_options(opts)
    prompt = transcription_prompt(args.language, args.prompt, args.translate_to)
    audio_format = args.format or magic.audio_format
    concurrency = args.concurrency or magic.concurrency
    if args.dry_run:
        print(LOOP.run(runner.plan_batch(sources, prompt, settings=settings, params=params,
                                         audio_format=audio_format, concurrency=concurrency)))
        return None
    settings.check()
    view = magic.last_view = BatchView([runner.label(s) for s in sources],
                                       widget=widgets_available(magic.display_mode),
                                       rate=magic.updates_per_second)
    try:
        rows = LOOP.run(_closing(runner.transcribe(
            sources, prompt, settings=settings, params=params, concurrency=concurrency,
            audio_format=audio_format, max_cost=_pick(args.max_cost, magic.max_cost),
            on_result=view.on_result), view))
    except VoxmagicError as exc:
        view.fail(str(exc))
        raise
    df = pd.DataFrame(rows, columns=TRANSCRIPT_COLUMNS)
    view.finish(tally(float(df["cost_usd"].fillna(0).sum()), int(df["generation_id"].notna().sum())))
    if args.out:
        ns[args.out] = df
    if len(df) == 1 and isinstance(df["text"].iloc[0], str):
        ns["_voxtral_text"] = df["text"].iloc[0]
        if args.out:
            ns[f"{args.out}_text"] = ns["_voxtral_text"]
    return df
