"""Typed requests: option checking before sending, and the exact body the endpoint receives."""
from __future__ import annotations

import json

import pytest

from voxmagic.audio import EncodedAudio
from voxmagic.errors import ConfigError
from voxmagic.chat import ChatRequest, Params, response_format

CLIP = EncodedAudio(b"ID3fake-mp3-bytes", "mp3", 2.5, "a.mp3")


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": 2.5}, r"temperature=2.5 is out of range: use a number from 0 to 2$"),
    ({"top_p": 0}, r"top_p=0 is out of range: use a number above 0 and at most 1$"),
    ({"max_tokens": 0}, r"max_tokens=0 is out of range: use a whole number of at least 1$"),
    ({"frequency_penalty": -3}, "frequency_penalty=-3 is out of range: use a number from -2 to 2"),
    ({"presence_penalty": "high"}, "presence_penalty='high' is not a number: use a number from -2 to 2"),
    ({"seed": 1.5}, "seed=1.5 is out of range: use a whole number$"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
    ({"tool_choice": "lookup"}, "tool_choice='lookup'"),
    ({"response_format": 42}, "response_format"),
])
def test_bad_values_name_the_option(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Params(**kwargs)


def test_only_set_parameters_are_sent():
    assert Params().body() == {"stream": True}
    body = Params(max_tokens=100, temperature=0.2, top_p=0.95, stop="END", frequency_penalty=0.5,
                  presence_penalty=-0.5, seed=7, response_format="json", stream=False,
                  tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="f",
                  extra={"user": "u1"}).body()
    assert body == {
        "max_tokens": 100, "temperature": 0.2, "top_p": 0.95, "stop": ["END"], "frequency_penalty": 0.5,
        "presence_penalty": -0.5, "seed": 7, "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}}, "stream": False, "user": "u1"}


def test_response_format_from_schema_and_pydantic():
    from pydantic import BaseModel

    class Decision(BaseModel):
        topic: str
        agreed: bool

    rf = response_format(Decision)
    assert rf["type"] == "json_schema" and rf["json_schema"]["name"] == "Decision"
    assert set(rf["json_schema"]["schema"]["properties"]) == {"topic", "agreed"}
    plain = response_format({"type": "object", "properties": {"n": {"type": "integer"}}})
    assert plain["json_schema"]["schema"]["properties"] == {"n": {"type": "integer"}}
    assert Params(response_format=Decision).wants_json


def test_openrouter_body_shape():
    req = ChatRequest("What is said?", (CLIP,), Params(temperature=0.2), system="Answer in French.")
    body = req.body()
    (message,) = body["messages"]
    assert message["role"] == "user"
    text, part = message["content"]
    assert text == {"type": "text", "text": "Answer in French.\n\nWhat is said?"}
    assert part["type"] == "input_audio"
    assert part["input_audio"] == {"data": CLIP.base64(), "format": "mp3"}
    assert body["model"] == "mistralai/voxtral-small-24b-2507" and body["temperature"] == 0.2


def test_openrouter_routes_structured_output_only_to_capable_providers():
    assert ChatRequest("q", (CLIP,), Params(response_format="json")).body()["provider"] == {
        "require_parameters": True}
    assert "provider" not in ChatRequest("q", (CLIP,), Params(response_format="json"), dialect="openai").body()


def test_mistral_dialect_sends_a_bare_base64_string():
    body = ChatRequest("q", (CLIP, CLIP), dialect="mistral").body()
    parts = body["messages"][0]["content"]
    assert parts[1] == {"type": "input_audio", "input_audio": CLIP.base64()} and len(parts) == 3


def test_preview_elides_audio():
    preview = ChatRequest("q", (CLIP,)).preview()
    assert CLIP.base64() not in preview
    assert json.loads(preview)["messages"][0]["content"][1]["input_audio"]["data"] == \
        "<17 bytes of mp3, 2.50 s>"


def test_request_validates_against_the_openrouter_sdk_model():
    """The official SDK's pydantic model of a chat request accepts our body without dropping keys."""
    from openrouter import components

    body = ChatRequest("q", (CLIP,), Params(max_tokens=10, stop=["x"], seed=1)).body()
    model = components.ChatRequest.model_validate(body)
    dumped = model.model_dump(by_alias=True, exclude_unset=True)
    assert dumped["messages"][0]["content"][1]["input_audio"] == body["messages"][0]["content"][1]["input_audio"]
    assert {k: dumped[k] for k in body} == body
