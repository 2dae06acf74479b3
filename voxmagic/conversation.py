"""Conversations about audio: follow-up questions, and tool calls answered and sent back.

The endpoint keeps no state, so every request carries the whole conversation. Its audio sits in
the first message: prepared once (never decoded again for a follow-up), counted once per request
in estimates — and billed again by the provider each time it is sent, which the ledger records.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import audio as _audio
from . import limits
from .chat import ChatRequest, Params
from .errors import BudgetError, ConfigError
from .limits import DEFAULT_TOOL_ROUNDS
from .loop import LOOP
from .results import Response, ToolCall, format_usd
from .runner import Caching, check_before_sending, plan, planned, send
from .settings import Settings, split_options
from .streaming import Planned
from .tools import call_tools, tool_from_function, tool_line

if TYPE_CHECKING:
    from .streaming import EventHandler


def assistant_turn(response: Response) -> dict[str, Any]:
    """The model's answer as the next request must repeat it (tool calls included)."""
    turn: dict[str, Any] = {"role": "assistant", "content": response.text or None}
    if response.tool_calls:
        turn["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments or "{}"}}
            for c in response.tool_calls
        ]
    elif turn["content"] is None:
        turn["content"] = ""
    return turn


def _tool_content(run: dict[str, Any]) -> str:
    if run["error"]:
        return json.dumps({"error": run["error"]})
    result = run["result"]
    return result if isinstance(result, str) else json.dumps(result, default=str)


def tool_turns(response: Response, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``tool`` message per call, answering it by id."""
    return [
        {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": _tool_content(run)}
        for call, run in zip(response.tool_calls, runs, strict=True)
    ]


def _arguments(call: ToolCall) -> Any:
    try:
        return call.args
    except ValueError:
        return call.arguments  # not JSON: show what the model wrote


def _after_a_round(params: Params) -> Params:
    """A forced tool choice would force a call every round: after the first, the model decides."""
    forced = params.tool_choice == "required" or isinstance(params.tool_choice, dict)
    return replace(params, tool_choice="auto") if forced else params


@dataclass
class Exchange:
    """One question's requests: one, or one per round of tool calls. ``response`` is the last
    round's; ``result`` is the answer as a whole (what ``ask`` returns)."""

    request: ChatRequest
    responses: list[Response] = field(default_factory=list)
    stopped: str | None = None  # why tool calls were left unanswered, if they were

    @property
    def response(self) -> Response:
        return self.responses[-1]

    @property
    def result(self) -> Response:
        """The last answer, costed as one: cost, tokens, latency and attempts summed over every
        round of tool calls (each round's own figures stay in ``.rounds``)."""
        if len(self.responses) == 1:
            return replace(self.response, stopped=self.stopped) if self.stopped else self.response
        last = self.response

        def total(values: list) -> Any:
            return None if any(v is None for v in values) else sum(values)

        usage = replace(
            last.usage,
            prompt_tokens=total([r.usage.prompt_tokens for r in self.responses]),
            completion_tokens=total([r.usage.completion_tokens for r in self.responses]),
            total_tokens=total([r.usage.total_tokens for r in self.responses]),
            cost=total([r.usage.cost for r in self.responses]),
        )
        sources = {r.cost_source for r in self.responses}
        return replace(
            last, usage=usage, cost_usd=self.cost_usd, rounds=list(self.responses), stopped=self.stopped,
            cost_source=sources.pop() if len(sources) == 1 else "estimated",
            latency_s=sum(r.latency_s for r in self.responses),
            attempts=1 + sum(r.attempts - 1 for r in self.responses),  # retries, not rounds
        )  # fmt: skip

    def value(self) -> Any:
        """What the caller keeps: the answer (parsed JSON or schema object when asked for), or —
        when the model called tools that were not run — the calls ``[{id, name, arguments}]``."""
        if self.stopped:
            return [{"id": c.id, "name": c.name, "arguments": _arguments(c)} for c in self.response.tool_calls]
        return self.response.value

    def shown(self) -> str:
        """The exchange as text: each answer, every tool call (run or not) in order between them,
        a parsed answer as the object it became, and why calls were left unanswered."""
        last, lines = self.response, []
        for i, r in enumerate(self.responses, start=1):
            if r.text:
                lines.append(r.text)
            lines += [tool_line(run) for run in last.tool_runs if run["round"] == i]
        if self.stopped:  # the calls left unanswered: listed unless they ran (the budget stopped the round after)
            ran = any(run["round"] == len(self.responses) for run in last.tool_runs)
            lines += ([] if ran else [tool_line(c) for c in self.value()]) + [f"({self.stopped})"]
        elif last.parsed is not None and not last.parse_error and lines and lines[-1] == last.text:
            parsed = last.parsed
            pretty = json.dumps(parsed, indent=2, ensure_ascii=False, default=str)
            lines[-1] = repr(parsed) if hasattr(parsed, "model_dump") else pretty
        return "\n".join(lines)

    @property
    def cost_usd(self) -> float | None:
        costs = [r.cost_usd for r in self.responses]
        return sum(c for c in costs if c is not None) if all(c is not None for c in costs) else None


async def exchange(
    request: ChatRequest,
    settings: Settings,
    *,
    functions: dict[str, Callable] | None = None,
    auto_tools: bool = False,
    max_rounds: int = DEFAULT_TOOL_ROUNDS,
    on_event: EventHandler | None = None,
    on_tools: Callable[[list[dict[str, Any]]], None] | None = None,
    caching: Caching = Caching(),
    max_cost: float | None = None,
) -> Exchange:
    """Send ``request``; while the model calls tools and ``auto_tools`` allows it, run them (in a
    worker thread: they are the user's code), send the results back, and ask again — at most
    ``max_rounds`` times. Each round is checked against the context and the budget first."""
    limits.check("max_tool_rounds", max_rounds)
    done = Exchange(request)
    runs: list[dict[str, Any]] = []
    while True:
        response = await send(request, settings, on_event, caching)
        done.responses.append(response)
        response.tool_runs = list(runs)  # the runs that led to this answer
        if not response.tool_calls:
            break
        if not (auto_tools and functions):
            done.stopped = "the tools were not run (add --auto-tools, or auto_tools=True, to run them)"
            break
        rounds = len(done.responses)
        if rounds > max_rounds:
            done.stopped = (
                f"stopped after {max_rounds} rounds of tool calls; raise --max-tool-rounds "
                "(max_tool_rounds=) to allow more"
            )
            break
        results = await asyncio.to_thread(call_tools, response.tool_calls, functions)
        for run in results:
            run["round"] = rounds
        runs.extend(results)
        if on_tools:
            on_tools(results)
        request = replace(
            request,
            params=_after_a_round(request.params),
            turns=(*request.turns, assistant_turn(response), *tool_turns(response, results)),
        )
        spent = done.cost_usd or 0.0
        try:
            await check_before_sending(
                planned(request), settings, None if max_cost is None else max(0.0, max_cost - spent), caching
            )
        except BudgetError as exc:  # what was paid for and run so far is kept, and said to be
            response.tool_runs = list(runs)
            done.stopped = (
                f"stopped before tool round {rounds + 1}: it could cost up to {format_usd(exc.estimate_usd)}, "
                f"more than the {format_usd(exc.remaining_usd)} the budget leaves; the tools ran, their "
                "results were not sent back (raise the budget or max_cost)"
            )
            break
        done.request = request
    return done


def follow_up(previous: Exchange, prompt: str, params: Params | None = None) -> ChatRequest:
    """The next question of a conversation: everything so far, the last answer, the new prompt."""
    last = previous.request
    turns = (*last.turns, assistant_turn(previous.response), {"role": "user", "content": prompt})
    return replace(last, params=params if params is not None else last.params, turns=turns)


ONE_QUESTION_TOOLS = (
    "{option} runs the tools of one question ({one}): {what} asks each source once, and the calls "
    "each answer makes are in the table's tool_calls column"
)


def batch_tools(options: dict[str, Any], what: str) -> dict[str, Any]:
    """A batch's options with Python functions as tool definitions; running them is for one
    question (``auto_tools`` is refused: each row's calls are in its ``tool_calls`` column)."""
    for name in ("auto_tools", "max_tool_rounds"):
        if options.get(name) not in (None, False):
            raise ConfigError(ONE_QUESTION_TOOLS.format(option=f"{name}=", one="voxmagic.ask", what=what))
    options = {k: v for k, v in options.items() if k not in ("auto_tools", "max_tool_rounds")}
    return {**options, "tools": split_tools(options["tools"])[0]} if "tools" in options else options


def split_tools(tools: Sequence[Any] | None) -> tuple[list[dict[str, Any]] | None, dict[str, Callable]]:
    """Tool definitions to send, and the Python functions that answer them (plain functions are
    turned into definitions from their signatures)."""
    if not tools:
        return None, {}
    definitions, functions = [], {}
    for tool in tools:
        if callable(tool):
            definition = tool_from_function(tool)
            functions[definition["function"]["name"]] = tool
            definitions.append(definition)
        elif isinstance(tool, dict):
            definitions.append(tool)
        else:
            raise ConfigError(f"tools: expected functions or tool definitions (dicts), not {tool!r:.60}")
    return definitions, functions


class Conversation:
    """Ask about audio, then keep asking: ``conv = Conversation("talk.mp3"); conv.ask("Who
    speaks?"); conv.ask("And what do they decide?")``. Options are :func:`voxmagic.ask`'s and
    apply to every question unless a question overrides them; ``tools`` may be functions, run
    automatically when ``auto_tools=True``."""

    def __init__(
        self, audio: Any = None, *, system: str | None = None, audio_format: str = _audio.DEFAULT_FORMAT, **options: Any
    ):
        sent = _audio.source_options(options)
        self.audio = _audio.sources(audio, **sent) if audio is not None else []
        self.system, self.audio_format, self.options = system, audio_format, options
        limits.text("system", system, "the instructions")
        asked = {k: v for k, v in options.items() if k not in ("auto_tools", "max_tool_rounds")}
        split_options({**asked, "tools": split_tools(asked.get("tools"))[0]})  # a typo is said now, not at .ask()
        self.exchanges: list[Exchange] = []

    @property
    def last(self) -> Exchange | None:
        return self.exchanges[-1] if self.exchanges else None

    def reset(self) -> None:
        """Forget the questions and answers (the audio stays)."""
        self.exchanges.clear()

    def ask(self, prompt: str, **options: Any) -> Response:
        return LOOP.run(self.ask_async(prompt, **options))

    async def ask_async(
        self,
        prompt: str,
        *,
        max_cost: float | None = None,
        cache: bool = True,
        refresh: bool = False,
        on_event: EventHandler | None = None,
        **options: Any,
    ) -> Response:
        limits.check("max_cost", max_cost)
        limits.text("prompt", prompt, "the question", required=True)
        if on_event is not None and not callable(on_event):
            raise ConfigError(f"on_event={on_event!r:.40}: give a function of one event")
        opts = {**self.options, **options}
        auto_tools = opts.pop("auto_tools", False)
        max_rounds = opts.pop("max_tool_rounds", DEFAULT_TOOL_ROUNDS)
        opts["tools"], functions = split_tools(opts.get("tools"))
        if auto_tools and not functions:
            raise ConfigError("auto_tools=True runs the Python functions given as tools=[...]: none were given")
        settings, params = split_options(opts)
        caching = Caching.of(cache, refresh)

        async def run() -> Exchange:
            settings.check()
            if self.last is None:
                if not self.audio:
                    raise ConfigError("a conversation needs audio: Conversation(audio, ...)")
                p = await plan(
                    self.audio,
                    prompt,
                    settings=settings,
                    params=params,
                    system=self.system,
                    audio_format=self.audio_format,
                )
            else:
                p = planned(follow_up(self.last, prompt, params))
            await check_before_sending(p, settings, max_cost, caching)
            if on_event:
                on_event(Planned(p.request, p.estimate))
            return await exchange(
                p.request,
                settings,
                functions=functions,
                auto_tools=auto_tools,
                max_rounds=max_rounds,
                on_event=on_event,
                caching=caching,
                max_cost=max_cost,
            )

        done = await LOOP.run_async(run())
        self.exchanges.append(done)
        return done.result

    def __repr__(self) -> str:
        return f"Conversation({len(self.audio)} audio sources, {len(self.exchanges)} questions asked)"
