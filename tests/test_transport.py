"""The client's SSE accumulator and error mapping, through httpx's transport seam: each case is the
exact bytes a provider could send, served by ``httpx.MockTransport`` (no socket, no server).

End-to-end behaviour over a real socket is in test_client.py against the local server; here
every odd shape is one small, fast case.
"""
from __future__ import annotations

import asyncio
import json
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from voxmagic.audio import EncodedAudio
from voxmagic.chat import ChatRequest, Params
from voxmagic.client import Client
from voxmagic.errors import (APIConnectionError, AuthenticationError, BadRequestError,
                             InsufficientCreditsError, ModerationError, RateLimitError, ServerError)
from voxmagic.redact import MASK
from voxmagic.settings import Settings
from voxmagic.streaming import TextDelta

KEY = "sk-or-v1-" + "0123456789abcdef" * 4
REQUEST = ChatRequest("What is said?", (EncodedAudio(b"ID3 mp3 bytes", "mp3", 2.0, "a.mp3"),))
USAGE = {"prompt_tokens": 390, "completion_tokens": 3, "total_tokens": 393, "cost": 0.000251,
         "prompt_tokens_details": {"audio_tokens": 376, "cached_tokens": 0}}


def sse(*events: object) -> bytes:
    lines = []
    for event in events:
        lines.append(event if isinstance(event, str) else f"data: {json.dumps(event)}\n\n")
    return "".join(lines).encode()


def chunk(content: str | None = None, finish: str | None = None, **extra: object) -> dict:
    delta = {"content": content} if content is not None else {}
    return {"id": "gen-1", "model": "mistralai/voxtral-small-24b-2507", "provider": "Mistral",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def send(responses, request=REQUEST, **settings):
    """``responses``: one httpx.Response per attempt (the client may retry)."""
    queue, seen = list(responses), []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return queue.pop(0)

    events: list = []
    settings = {"api_key": KEY, "backoff": 0.0, "max_attempts": 3, **settings}

    async def go():
        async with Client(Settings(transport=httpx.MockTransport(handler), **settings)) as client:
            return await client.complete(request, events.append)

    return asyncio.run(go()), events, seen


def stream(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": "text/event-stream"})


def test_deltas_keepalives_and_the_usage_after_finish_reason():
    body = sse(": OPENROUTER PROCESSING\n\n", chunk("Hello"), ": OPENROUTER PROCESSING\n\n", chunk(" there."),
               chunk(finish="stop"), {"id": "gen-1", "choices": [], "usage": USAGE}, "data: [DONE]\n\n")
    r, events, seen = send([stream(body)])
    assert r.text == "Hello there." and [e.text for e in events] == ["Hello", " there."]
    assert r.finish_reason == "stop" and r.usage.audio_tokens == 376
    assert r.cost_usd == 0.000251 and r.cost_source == "reported"
    assert r.generation_id == "gen-1" and r.provider == "Mistral" and r.attempts == 1
    assert seen[0].headers["authorization"] == f"Bearer {KEY}" and json.loads(seen[0].content)["stream"] is True


def test_tool_call_arguments_are_joined_across_chunks():
    calls = [{"index": 0, "id": "call_1", "function": {"name": "lookup", "arguments": '{"q": '}},
             {"index": 0, "function": {"arguments": '"pgvector"}'}}]
    body = sse(*[{"choices": [{"delta": {"tool_calls": [c]}}]} for c in calls],
               chunk(finish="tool_calls"), "data: [DONE]\n\n")
    r, _, _ = send([stream(body)])
    assert [(c.id, c.name, c.args) for c in r.tool_calls] == [("call_1", "lookup", {"q": "pgvector"})]


def test_a_stream_that_ends_after_finish_reason_is_kept_and_one_that_ends_before_is_retried():
    whole = sse(chunk("Complete."), chunk(finish="stop"), {"choices": [], "usage": USAGE})
    r, _, seen = send([stream(whole)])
    assert r.text == "Complete." and r.cost_usd == 0.000251 and len(seen) == 1
    cut = sse(chunk("Half"))
    r, events, seen = send([stream(cut), stream(whole)])
    assert r.text == "Complete." and r.attempts == 2 and len(seen) == 2
    assert type(events[1]).__name__ == "Retrying"
    with pytest.raises(APIConnectionError, match="the stream ended before the answer did") as err:
        send([stream(cut)] * 3)
    assert err.value.partial_text == "Half" and err.value.attempts == 3


@pytest.mark.parametrize("code", [502, "server_error"])
def test_an_error_chunk_mid_stream_keeps_the_partial_text(code):
    error = {"code": code, "message": "Provider disconnected", "metadata": {"raw": "upstream 502"}}
    body = sse(chunk("Partial"), {"id": "gen-9", "error": error, "choices": [
        {"index": 0, "delta": {}, "finish_reason": "error"}]}, "data: [DONE]\n\n")
    with pytest.raises(ServerError) as err:
        send([stream(body)], max_attempts=1)
    assert err.value.partial_text == "Partial" and err.value.generation_id == "gen-9"
    assert str(err.value).startswith("Provider disconnected: upstream 502")


def test_a_200_whose_choice_failed_is_an_error():
    body = {"id": "gen-3", "choices": [{"message": {"content": "Half an"}, "finish_reason": "error",
                                        "error": {"code": 502, "message": "upstream died"}}]}
    with pytest.raises(ServerError, match="upstream died") as err:
        send([httpx.Response(200, json=body)], request=REQUEST.__class__(
            "q", REQUEST.audio, Params(stream=False)), max_attempts=1)
    assert err.value.partial_text == "Half an"


@pytest.mark.parametrize("status, body, cls, message", [
    (400, {"error": {"code": 400, "message": "Bad field", "metadata": {"raw": "temperature too high"}}},
     BadRequestError, "HTTP 400: Bad field: temperature too high"),
    (401, {"error": {"code": 401, "message": "User not found."}}, AuthenticationError, "HTTP 401: User not found."),
    (402, {"error": {"code": 402, "message": "Insufficient credits"}}, InsufficientCreditsError, "credits"),
    (403, {"error": {"code": 403, "message": "Flagged", "metadata": {"reasons": ["x"]}}}, ModerationError, "Flagged"),
    (422, {"detail": [{"loc": ["body", "model"], "msg": "Field required"}]}, BadRequestError,
     "HTTP 422: body.model: Field required"),
    (500, "upstream exploded\n  at line 3", ServerError, "HTTP 500: upstream exploded at line 3"),
])
def test_error_bodies_in_every_shape(status, body, cls, message):
    response = (httpx.Response(status, json=body) if isinstance(body, dict)
                else httpx.Response(status, text=body))
    with pytest.raises(cls) as err:
        send([response] * 3, max_attempts=1)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("retry_after", ["0.05", "date"])
def test_retry_after_in_seconds_or_as_a_date(retry_after):
    if retry_after == "date":
        retry_after = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=1), usegmt=True)
    limited = httpx.Response(429, json={"error": {"code": 429, "message": "Rate limit exceeded"}},
                             headers={"retry-after": retry_after})
    ok = stream(sse(chunk("Fine."), chunk(finish="stop"), "data: [DONE]\n\n"))
    r, events, _ = send([limited, ok])
    assert r.text == "Fine." and r.retries[0][0] == "RateLimitError 429"
    waited = events[0].wait_s
    assert (0.05 <= waited <= 0.08) if retry_after == "0.05" else (0 <= waited <= 2.0)


def test_rate_limits_are_waited_out_for_the_patience_then_said_in_one_line():
    limited = httpx.Response(429, json={"error": {"code": 429, "message": "Rate limit exceeded"}},
                             headers={"retry-after": "0.1"})
    with pytest.raises(RateLimitError) as err:
        send([limited] * 50, rate_limit_patience=0.5)
    e = err.value
    assert 3 <= e.attempts <= 6 and 0.4 <= e.waited_s < 0.65  # no wait begun that would end past the patience
    assert str(e).endswith(f"[gave up after {e.attempts} attempts over {e.waited_s:.0f} s]")


def test_an_echoed_key_is_masked_in_every_body():
    error = {"error": {"code": 401, "message": f"Invalid API key provided: Bearer {KEY}",
                       "metadata": {"raw": json.dumps({"headers": {"Authorization": f"Bearer {KEY}"}})}}}
    with pytest.raises(AuthenticationError) as err:
        send([httpx.Response(401, json=error)])
    shown = str(err.value) + json.dumps(err.value.metadata)
    assert KEY not in shown and shown.count(MASK) >= 2
    pieces = ["Your key is ", KEY[:10], KEY[10:], "."]
    body = sse(*(chunk(p) for p in pieces), chunk(finish="stop"), "data: [DONE]\n\n")
    r, events, _ = send([stream(body)])
    assert r.text == f"Your key is {MASK}." and KEY not in "".join(e.text for e in events if isinstance(e, TextDelta))
