"""``%%voxtral``: one question about audio (or a follow-up), streamed into a live view.

Resolve the names on the line and the ``{placeholders}`` of the prompt, plan the request (audio
decoded, cost estimated), check it, then stream the answer; the answer, the partial text of a
failure, or the tool calls end up in the notebook's variables.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from .. import runner, warmup
from ..audio import preview
from ..conversation import ONE_QUESTION_TOOLS, exchange, follow_up, split_tools
from ..cost import pricing_for
from ..errors import ConfigError, VoxmagicError
from ..jobs import Job
from ..loop import LOOP
from ..progress import Answering
from ..providers import MIME_TYPES
from ..results import Response
from ..runner import Plan, ledger
from ..silence import report
from .display import StreamView, widgets_available
from .options import AskOptions
from .resolve import audio_items, lookup, render_prompt
from .session import Session, start

Namespace = MutableMapping[str, Any]


@dataclass
class _Asking:
    """One question as its cell gave it: options, tool functions, the live view, and where the
    answer and its variables go."""

    options: AskOptions
    functions: dict[str, Callable]
    view: StreamView
    namespace: Namespace
    session: Session


def run_ask(options: AskOptions, cell: str, namespace: Namespace, session: Session) -> Job | None:
    """Plan, check and send one question; a Job with ``--background``, else None (the view shows
    the answer and ``-o`` holds it)."""
    warmup.call_began()
    if not cell.strip():
        raise ConfigError(
            "the cell is empty: write your question about the audio below the "
            "%%voxtral line (or use %voxtral_transcribe)"
        )
    prompt = render_prompt(cell.strip(), namespace)
    if options.resume and session.conversation is None:
        raise ConfigError(
            "nothing to continue: ask a first question with %%voxtral AUDIO, then follow up with %%voxtral --continue"
        )
    if options.mic:
        _mic(*_with_schema_and_tools(options, namespace), prompt, namespace, session)
        return None
    sources = (
        []
        if options.resume
        else audio_items(
            options.audio, namespace, sample_rate=options.sample_rate, span=options.span, trim=options.trim_silence
        )
    )
    options, functions = _with_schema_and_tools(options, namespace)
    if options.each or (options.schema and len(sources) > 1 and not options.together):
        if options.auto_tools:
            raise ConfigError(ONE_QUESTION_TOOLS.format(option="--auto-tools", one="one source", what="--each"))
        from .tables import run_each  # a table (pandas, the batch runner): imported when one is asked for

        return run_each(options, sources, prompt, namespace, session)
    plan = _plan(options, sources, prompt, session)
    if options.dry_run:
        print(plan)
        return None
    LOOP.run(runner.check_before_sending(plan, options.settings, options.max_cost, options.caching))
    widget = widgets_available(options.view.mode)
    players = None
    if widget and not options.resume and 0 < plan.request.audio_seconds <= options.view.player_max_seconds:
        players = _players(plan.request.audio, session)
    # in a fresh kernel the live view's module (anywidget, ~0.1 s) is imported once the request is sent
    later = widget and LIVE_VIEW_MODULE not in sys.modules
    view = session.last_view = StreamView(plan.request, widget=widget, rate=options.view.rate, later=later)
    result = _start(_Asking(options, functions, view, namespace, session), plan, players, later)
    return result if options.background else None


LIVE_VIEW_MODULE = f"{__package__}.live_text"
SHOW_WITHIN_S = 1.0  # the live view is shown by then even if the request has not left yet


def _start(asking: _Asking, plan: Plan, players: Callable[[], None] | None, later: bool) -> Any:
    """Start the call; in the cell meanwhile, while the request goes out, the live view is shown
    (if it was left until then) and the players are filled."""
    options, view = asking.options, asking.view

    def meanwhile() -> None:
        if later:  # anywidget's import (~0.1 s of GIL) waits until the request has left
            view.sent.wait(SHOW_WITHIN_S)
        view.show()
        if players is not None:
            players()

    try:
        return start(
            _answer(asking, plan),
            background=options.background,
            namespace=asking.namespace,
            description=f"%%voxtral {' '.join(options.audio)}",
            on_interrupt=lambda: (
                "interrupted: the request was cancelled (it may still be billed; "
                "see %voxtral_cost); the text so far is in _voxtral_partial"
            ),
            meanwhile=meanwhile,
            announce=not view.widget,
        )
    finally:
        view.show()  # an interrupt came before the meanwhile did: what the call left is shown


def _mic(
    options: AskOptions, functions: dict[str, Callable], prompt: str, namespace: Namespace, session: Session
) -> None:
    """``--mic``: a record/stop control, and under it the view the answer streams into once the
    recording stops (the cell returns at once: a busy kernel would not receive the audio)."""
    from .options import RecordOptions
    from .recorder import record

    options.settings.check()

    def on_stop(source: Any) -> None:  # on voxmagic's loop
        work = _spoken(_Asking(options, functions, view, namespace, session), source, prompt)
        namespace["_voxtral_job"] = Job(LOOP.submit(work), "%%voxtral --mic")

    def on_fail(message: str) -> None:
        view.fail(message)

    settings = RecordOptions(settings=options.settings, mode=options.view.mode)
    if record(settings, namespace, on_stop=on_stop, on_fail=on_fail) is not None:
        view = session.last_view = StreamView(None, widget=True, rate=options.view.rate)
        view.box.show("", "the answer streams here when you stop recording")


async def _spoken(asking: _Asking, source: Any, prompt: str) -> Any:
    """On voxmagic's loop once the recording stopped: the question about it, planned and answered."""
    options, view = asking.options, asking.view
    try:
        plan = await runner.plan(
            [source], prompt, settings=options.settings, params=options.params, system=options.system,
            audio_format=options.audio_format,
        )  # fmt: skip
        await runner.check_before_sending(plan, options.settings, options.max_cost, options.caching)
    except VoxmagicError as exc:
        asking.namespace["_voxtral_error"] = exc
        view.fail(str(exc))
        raise
    view.answering = Answering(plan.request)  # its clock starts now, not at the cell
    return await _answer(asking, plan)


def _with_schema_and_tools(options: AskOptions, namespace: Namespace) -> tuple[AskOptions, dict[str, Callable]]:
    """The request parameters with the schema and tools the line names, found in the notebook."""
    schema = lookup(options.schema, namespace, "--schema") if options.schema else None
    tools, functions = split_tools([lookup(name, namespace, "--tools") for name in options.tools])
    params = replace(
        options.params,
        tools=tools,
        tool_choice=options.tool_choice,
        response_format=schema if schema is not None else ("json" if options.json else None),
    )
    return replace(options, params=params), functions


def _plan(options: AskOptions, sources: list, prompt: str, session: Session) -> Plan:
    if not options.dry_run:
        options.settings.check()
    if options.resume:
        assert session.conversation is not None
        return runner.planned(follow_up(session.conversation, prompt, options.params))
    return LOOP.run(
        runner.plan(
            sources,
            prompt,
            settings=options.settings,
            params=options.params,
            system=options.system,
            audio_format=options.audio_format,
        )
    )


async def _answer(asking: _Asking, plan: Plan) -> Any:
    """Runs on voxmagic's loop: the exchange, then the view finished and the variables bound."""
    options, view, namespace = asking.options, asking.view, asking.namespace
    try:
        done = await exchange(
            plan.request,
            options.settings,
            functions=asking.functions,
            auto_tools=options.auto_tools,
            max_rounds=options.max_tool_rounds,
            on_event=view.on_event,
            on_tools=view.on_tools,
            caching=options.caching,
            max_cost=options.max_cost,
        )
    except VoxmagicError as exc:
        namespace["_voxtral_error"] = exc
        view.fail(str(exc))
        raise
    except asyncio.CancelledError:
        namespace["_voxtral_partial"] = view.text
        view.fail("cancelled: the request was closed (it may still be billed; see %voxtral_cost)")
        raise
    asking.session.conversation = done
    unparsed = done.response.parse_error if not done.stopped else None  # asked for JSON, got something else
    value, shown = (None if unparsed else done.value()), done.shown()
    namespace["_voxtral"] = done.result
    if options.out:
        namespace[options.out] = value
    rounds = len(done.responses)
    summary = done.result.summary + (f" · {rounds} requests" if rounds > 1 else "")
    tally = ledger.tally(done.cost_usd, rounds)
    if options.trim_silence:
        trimmed, sent = sum(c.trimmed_s for c in plan.request.audio), sum(c.duration_s for c in plan.request.audio)
        tally += "\n" + report(trimmed, pricing_for(plan.request.model).audio_second, sent)
    view.finish(shown, summary, tally)
    if done.response.finish_reason == "length":
        print(f"voxmagic: {_cut(done.response, options.params.max_tokens)}", file=sys.stderr)
    if unparsed:  # after the answer, on its own line; -o holds no object that is not one
        kept = f"{options.out} is None; " if options.out else ""
        print(f"voxmagic: {unparsed}; {kept}the answer as sent is in _voxtral.text", file=sys.stderr)
    return value


def _cut(response: Response, max_tokens: int | None) -> str:
    """What to do about an answer the output limit cut short (``finish_reason`` "length")."""
    tokens = response.usage.completion_tokens
    limit = f"--max-tokens {max_tokens}" if max_tokens else "the model's output limit"
    more = "a larger --max-tokens" if max_tokens else "--max-tokens"
    said = f" after {tokens} tokens" if tokens else ""
    return f"the answer stopped at {limit}{said}; ask again with {more}, or go on from here with %%voxtral --continue"


PREVIEW_MAX_BYTES = 96_000  # never more than this per player (before base64)


def _players(clips: tuple, session: Session) -> Callable[[], None] | None:
    """A player per source, once per notebook session: a small Opus preview (the notebook keeps
    it, so its size matters), not the upload bytes; none when it would still be too big. Their
    places are kept above the answer now; the previews are made and shown by the function this
    returns, which runs while the request goes out (encoding a minute of Opus takes ~0.2 s, which
    the first token no longer waits for)."""
    from IPython.display import HTML, Audio, DisplayHandle

    todo = [clip for clip in clips if clip.sha256 not in session.players]
    if not todo:
        return None
    places = []
    for clip in todo:
        session.players.add(clip.sha256)
        places.append(DisplayHandle())
        places[-1].display(HTML(""))

    def fill() -> None:
        for clip, place in zip(todo, places, strict=True):
            try:
                data = preview(clip)
            except Exception:  # noqa: BLE001 - a player is a nicety; the question goes on without it
                data = b""
            if not data or len(data) > PREVIEW_MAX_BYTES:
                session.players.discard(clip.sha256)
                continue
            player = Audio(data=data)
            player.mimetype = MIME_TYPES["ogg"]
            place.update(player)

    return fill
