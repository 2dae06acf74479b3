"""Tool calls answered and sent back, follow-up questions, and one question over many files —
through the magics and the Python API, against the local server."""
from __future__ import annotations

import json
import re

import pytest
from IPython.core.error import UsageError

from conftest import run

import voxmagic
from voxmagic import runner
from voxmagic.cost import audio_tokens
from voxmagic.testing.synth import tone_file


@pytest.fixture
def ip(shell, tmp_path):
    tone_file(tmp_path / "meeting.mp3", 2.0)
    for name, seconds in (("one.wav", 1.0), ("two.wav", 2.5), ("three.wav", 4.0)):
        tone_file(tmp_path / name, seconds, channels=1)
    shell.run_cell(
        "calls = []\n"
        "def log_decision(topic: str, votes: int = 0):\n"
        '    """Record a decision.\n\n    topic: what was decided\n    """\n'
        "    calls.append(topic)\n"
        '    return f"logged {topic} with {votes}"\n'
        "def broken(topic: str):\n"
        '    """Always fails."""\n'
        '    raise RuntimeError("database is down")\n')
    return shell


def magic(ip):
    return ip.magics_manager.registry["VoxtralMagics"]


def messages(rec):
    return rec.body["messages"]


# --- tool calls ------------------------------------------------------------------------------

def test_tool_calls_are_shown_not_run_without_auto_tools(ip, server):
    out, err = run(ip, "%%voxtral meeting.mp3 --tools log_decision -o ans\nLog it.")
    assert server.request_count == 1 and ip.user_ns["calls"] == []  # nothing ran
    (call,) = ip.user_ns["ans"]
    assert call["name"] == "log_decision" and isinstance(call["arguments"], dict)
    assert call["id"] == ip.user_ns["_voxtral"].tool_calls[0].id
    assert "→ log_decision(topic=" in out and "(not run)" in out and "--auto-tools" in out


def test_auto_tools_run_send_results_back_and_answer(ip, server):
    out, err = run(ip, "%%voxtral meeting.mp3 --tools log_decision --tool-choice log_decision "
                       "--auto-tools -o ans\nLog it.")
    assert not err and server.request_count == 2
    first, second = server.requests
    assert first.body["tool_choice"] == {"type": "function", "function": {"name": "log_decision"}}
    assert second.body["tool_choice"] == "auto"  # forcing it again would loop until the bound
    user, assistant, tool = messages(second)
    assert user["content"][1]["type"] == "input_audio" and len(second.audio) == 1  # audio sent once
    (tool_call,) = assistant["tool_calls"]
    arguments = json.loads(tool_call["function"]["arguments"])
    topic, votes = arguments["topic"], arguments["votes"]
    result = f"logged {topic} with {votes}"
    assert tool["tool_call_id"] == tool_call["id"] and tool["content"] == result
    assert ip.user_ns["calls"] == [topic]
    assert ip.user_ns["ans"] == f"Tool log_decision returned: {result}"
    response = ip.user_ns["_voxtral"]
    assert response.tool_runs == [{"name": "log_decision", "arguments": arguments, "round": 1,
                                   "result": result, "error": None}]
    assert f"→ log_decision(topic='{topic}', votes={votes}) = '{result}'" in out
    # both requests were billed and are in the tally, each once
    assert runner.ledger.total_usd == pytest.approx(sum(r.cost for r in server.requests))
    assert len(runner.ledger.entries) == 2 and "these 2 calls" in out
    # one cost, one number: the result, its header and the footer all say the sum of the rounds
    total = sum(r.cost for r in server.requests)
    assert response.cost_usd == pytest.approx(total) and len(response.rounds) == 2
    assert [r.cost_usd for r in response.rounds] == pytest.approx([r.cost for r in server.requests])
    assert response.usage.completion_tokens == sum(r.usage.completion_tokens for r in response.rounds)
    shown = re.findall(r"\$\d+\.\d+", out)
    assert f"${total:.6f}" in shown[-3:-1] and out.count(f"${total:.6f}") >= 2


def test_tool_rounds_are_bounded(ip, server):
    out, _ = run(ip, "%%voxtral meeting.mp3 --tools log_decision --auto-tools --max-tool-rounds 2 -o ans\n"
                     "Please call tools 5 times.")
    assert server.request_count == 3 and len(ip.user_ns["calls"]) == 2
    assert [r["round"] for r in ip.user_ns["_voxtral"].tool_runs] == [1, 2]
    assert "stopped after 2 rounds" in out
    assert len(messages(server.requests[-1])) == 5  # user, (assistant, tool) × 2
    run(ip, "%%voxtral meeting.mp3 --tools log_decision --auto-tools -o ans\nPlease call tools 2 times.")
    assert ip.user_ns["ans"].startswith("Tool log_decision returned")


def test_a_failing_tool_is_reported_to_the_model_and_the_user(ip, server):
    out, err = run(ip, "%%voxtral meeting.mp3 --tools broken --auto-tools -o ans\nGo.")
    tool = messages(server.requests[-1])[-1]
    assert json.loads(tool["content"]) == {"error": "RuntimeError: database is down"}
    assert "! RuntimeError: database is down" in out
    assert ip.user_ns["ans"].startswith("Tool broken returned:")


def test_api_tools_as_functions(server, tmp_path):
    tone_file(tmp_path / "a.wav", 1.0, channels=1)
    seen = []

    def lookup_price(item: str) -> float:
        """Price of an item."""
        seen.append(item)
        return 4.5

    r = voxmagic.ask(tmp_path / "a.wav", "What does it cost?", tools=[lookup_price], auto_tools=True,
                     base_url=server.base_url, api_key="k")
    assert r.text == "Tool lookup_price returned: 4.5" and len(seen) == 1
    assert server.requests[0].body["tools"][0]["function"]["parameters"]["properties"] == {
        "item": {"type": "string"}}


def test_each_sources_tool_calls_are_in_the_table_and_auto_tools_is_for_one_question(ip, server, tmp_path):
    """--tools with --each answered with empty text and no column for the calls: what the model
    asked for was gone; --auto-tools was accepted and ignored; ask_each(tools=[f]) failed every
    row ("Object of type function is not JSON serializable")."""
    out, err = run(ip, "%%voxtral one.wav two.wav --tools log_decision --each -o te\nLog it.")
    assert not err and server.request_count == 2 and ip.user_ns["calls"] == []  # nothing ran
    te = ip.user_ns["te"]
    assert list(te.columns[:3]) == ["source", "text", "tool_calls"] and te["error"].isna().all()
    for calls in te["tool_calls"]:
        (call,) = calls
        assert call["name"] == "log_decision" and json.loads(call["arguments"])["topic"] and call["id"]
    out, err = run(ip, "%%voxtral one.wav two.wav --tools log_decision --auto-tools --each\nLog it.")
    assert "UsageError: --auto-tools runs the tools of one question (one source): --each asks each source " \
           "once, and the calls each answer makes are in the table's tool_calls column" in err
    assert server.request_count == 2 and "Traceback" not in err

    def lookup_price(item: str) -> float:
        """Price of an item."""
        return 4.5

    files = [str(tmp_path / "one.wav"), str(tmp_path / "two.wav")]
    df = voxmagic.ask_each(files, "What does it cost?", tools=[lookup_price], base_url=server.base_url, api_key="k")
    assert df["error"].isna().all() and [c[0]["name"] for c in df["tool_calls"]] == ["lookup_price"] * 2
    assert server.requests[-1].body["tools"][0]["function"]["name"] == "lookup_price"
    with pytest.raises(voxmagic.ConfigError, match=r"^auto_tools= runs the tools of one question \(voxmagic.ask\)"):
        voxmagic.ask_each(files, "What?", tools=[lookup_price], auto_tools=True, base_url=server.base_url)
    plain = voxmagic.ask_each(files[:1], "What?", base_url=server.base_url, api_key="k")
    assert "tool_calls" not in plain.columns  # only when tools were offered
    none = voxmagic.ask_each(files[:1], "What?", tools=[lookup_price], tool_choice="none", base_url=server.base_url,
                             api_key="k")  # offered, not called: the column is there (df.tool_calls raised KeyError)
    assert none["tool_calls"].tolist() == [None]
    seg = voxmagic.transcribe(files[:1], tools=[lookup_price], segments=True, base_url=server.base_url, api_key="k")
    assert seg["tool_calls"].iloc[0][0]["name"] == "lookup_price"  # with segments=True too (they were lost)


def test_tool_rounds_cut_short_say_why_and_keep_what_was_paid_for(server, tmp_path, monkeypatch):
    """Out of rounds, ask() returned text '' with nothing saying why, and "3 attempts" (rounds, not
    retries); a budget that ran out before round 2 said "nothing was sent" about a call whose first
    round was paid for and whose tool had run — and lost both."""
    tone_file(tmp_path / "a.wav", 1.0, channels=1)
    ran = []

    def lookup(order_id: str) -> dict:
        """Find an order by its id."""
        ran.append(order_id)
        return {"id": order_id}

    opts = {"base_url": server.base_url, "api_key": "k", "tools": [lookup], "auto_tools": True, "cache": False}
    r = voxmagic.ask(tmp_path / "a.wav", "please call tools 5 times", max_tool_rounds=2, **opts)
    assert r.stopped.startswith("stopped after 2 rounds of tool calls") and r.tool_calls and len(r.rounds) == 3
    assert r.attempts == 1 and server.request_count == 3
    estimate = voxmagic.plan(tmp_path / "a.wav", "Which order?", tools=[lookup], max_tokens=20,
                             base_url=server.base_url, api_key="k").estimate.usd
    monkeypatch.setattr(voxmagic.ledger, "budget_usd", voxmagic.ledger.total_usd + estimate * 1.2)
    ran.clear()
    r = voxmagic.ask(tmp_path / "a.wav", "Which order?", max_tokens=20, **opts)
    assert server.request_count == 4 and len(ran) == 1  # round 1 sent and its tool run; round 2 not sent
    assert r.stopped.startswith("stopped before tool round 2: it could cost up to $") and r.cost_usd > 0
    assert [t["name"] for t in r.tool_runs] == ["lookup"] and r.tool_calls


def test_a_budget_stop_shows_each_call_once(ip, server, monkeypatch):
    """The magic printed the call that ran ("= 'logged …'") and then the same call "(not run)"."""
    estimate = voxmagic.plan("meeting.mp3", "Log it.", tools=[ip.user_ns["log_decision"]], max_tokens=20,
                             base_url=server.base_url, api_key="k").estimate.usd
    monkeypatch.setattr(voxmagic.ledger, "budget_usd", voxmagic.ledger.total_usd + estimate * 1.2)
    out, err = run(ip, "%%voxtral meeting.mp3 --tools log_decision --auto-tools --max-tokens 20 --no-cache\nLog it.")
    assert not err and server.request_count == 1 and len(ip.user_ns["calls"]) == 1
    assert out.count("→ log_decision(") == 1 and "(not run)" not in out and "(stopped before tool round 2" in out


# --- follow-up questions ---------------------------------------------------------------------

def test_continue_keeps_the_conversation_and_prepares_audio_once(ip, server, monkeypatch):
    from voxmagic import audio

    run(ip, "%%voxtral meeting.mp3 -o first\nWho speaks?")
    prepared = []
    original = audio.AudioSource.prepare
    monkeypatch.setattr(audio.AudioSource, "prepare",
                        lambda self, *a, **k: prepared.append(self) or original(self, *a, **k))
    out, err = run(ip, "%%voxtral --continue -o second\nAnd what did they decide?")
    assert not err and prepared == []  # the audio was not decoded or encoded again
    one, two = server.requests
    assert [m["role"] for m in messages(two)] == ["user", "assistant", "user"]
    assert messages(two)[1]["content"] == ip.user_ns["first"]
    assert messages(two)[2]["content"] == "And what did they decide?"
    assert two.audio[0].sha256 == one.audio[0].sha256 and len(two.audio) == 1
    assert "Prompt: Who speaks? And what did they decide?" in ip.user_ns["second"]
    history = voxmagic.history()
    assert list(history["prompt"]) == ["Who speaks?", "And what did they decide?"]
    run(ip, "%%voxtral --continue\nA third question.")
    assert [m["role"] for m in messages(server.requests[-1])] == ["user", "assistant", "user", "assistant", "user"]


def test_a_follow_up_estimate_counts_the_audio_once(ip, server):
    run(ip, "%%voxtral meeting.mp3\nWho speaks?")
    out, _ = run(ip, "%%voxtral --continue --dry-run --max-tokens 10\nAnd then?")
    assert server.request_count == 1
    plan = runner.planned(__import__("voxmagic.conversation").conversation.follow_up(
        magic(ip).session.conversation, "And then?"))
    assert audio_tokens(2.0) < plan.estimate.prompt_tokens < 2 * audio_tokens(2.0)
    assert '"role": "assistant"' in out and out.count("bytes of mp3") == 1


def test_continue_mistakes_are_one_line(ip, server):
    with pytest.raises(UsageError, match="nothing to continue"):
        ip.run_cell_magic("voxtral", "--continue", "Q")
    run(ip, "%%voxtral meeting.mp3\nQ")
    with pytest.raises(UsageError, match="leave out meeting.mp3"):
        ip.run_cell_magic("voxtral", "meeting.mp3 --continue", "Q")
    out, _ = run(ip, "%voxtral_reset")
    assert "conversation cleared" in out
    with pytest.raises(UsageError, match="nothing to continue"):
        ip.run_cell_magic("voxtral", "--continue", "Q")
    assert server.request_count == 1


def test_conversation_api(server, tmp_path):
    tone_file(tmp_path / "a.wav", 1.0, channels=1)
    conv = voxmagic.Conversation(tmp_path / "a.wav", base_url=server.base_url, api_key="k", temperature=0.2)
    conv.ask("First?")
    conv.ask("Second?", max_tokens=20)
    body = server.requests[-1].body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["temperature"] == 0.2 and body["max_tokens"] == 20
    conv.reset()
    conv.ask("Fresh?")
    assert len(server.requests[-1].body["messages"]) == 1


# --- one question over many files ------------------------------------------------------------

def _schema_setup(ip):
    ip.run_cell(
        "from pydantic import BaseModel\n"
        "class Speaker(BaseModel):\n"
        "    name: str\n"
        "    minutes: float\n"
        "class Call(BaseModel):\n"
        "    topic: str\n"
        "    speaker: Speaker\n"
        "    text: str\n")


def test_schema_over_many_files_gives_one_row_per_file(ip, server):
    _schema_setup(ip)
    # the fake model fills numbers with the clip's duration: stopping at "2.5" cuts one answer short
    out, err = run(ip, "%%voxtral one.wav two.wav three.wav --schema Call --stop 2.5 -o df\nExtract.")
    df = ip.user_ns["df"]
    assert server.request_count == 3 and all(len(r.audio) == 1 for r in server.requests)
    assert list(df["source"].map(lambda s: s.rsplit("/", 1)[-1])) == ["one.wav", "two.wav", "three.wav"]
    assert {"topic", "speaker.name", "speaker.minutes", "answer.text"} <= set(df.columns)
    assert list(df["speaker.minutes"].iloc[[0, 2]]) == [1.0, 4.0]
    assert type(df["parsed"].iloc[0]).__name__ == "Call"
    assert df["error"].iloc[1].startswith("the answer is not valid JSON")  # reported in its row
    assert df["error"].iloc[[0, 2]].isna().all() and df["text"].notna().all()
    run(ip, "%%voxtral one.wav two.wav --schema Call --together -o both\nCompare.")
    assert len(server.requests[-1].audio) == 2 and type(ip.user_ns["both"]).__name__ == "Call"
    # every answer cut short: the schema's columns are still there (df.topic raised KeyError)
    run(ip, "%%voxtral one.wav two.wav --schema Call --stop sample --no-cache -o bad\nExtract.")
    bad = ip.user_ns["bad"]
    assert bad["error"].str.startswith("the answer is not valid JSON").all()
    assert list(bad.columns[1:4]) == ["topic", "speaker.name", "speaker.minutes"] and bad["topic"].isna().all()


def test_each_asks_every_file_the_same_question(ip, server):
    out, err = run(ip, "%%voxtral one.wav two.wav --each --temperature 0.2 -o df\nHow long is it?")
    df = ip.user_ns["df"]
    assert len(df) == 2 and server.request_count == 2
    assert [r.body["temperature"] for r in server.requests] == [0.2, 0.2]
    assert {round(a.duration_s, 1) for r in server.requests for a in r.audio} == {1.0, 2.5}
    assert all("How long is it?" in t for t in df["text"])
    assert "max_tokens" not in server.requests[0].body  # an answer, not a transcript: no bound


def test_transcribe_with_a_schema_extracts_fields(ip, server):
    ip.user_ns["schema"] = {"type": "object", "properties": {
        "language": {"type": "string"}, "meta": {"type": "object", "properties": {"seconds": {"type": "number"}}}},
        "required": ["language", "meta"]}
    run(ip, "%voxtral_transcribe one.wav three.wav --schema schema -o df;")
    df = ip.user_ns["df"]
    assert list(df["meta.seconds"]) == [1.0, 4.0] and list(df["language"]) == ["sample", "sample"]
    assert server.requests[0].prompt.startswith("Listen to this audio and reply with one JSON object")


def test_a_schema_answer_is_never_stitched_from_chunks(ip, server, tmp_path):
    tone_file(tmp_path / "long.wav", 150.0, channels=1)
    ip.user_ns["schema"] = {"type": "object", "properties": {"topic": {"type": "string"}}}
    run(ip, "%voxtral_transcribe long.wav one.wav --schema schema --chunk-minutes 1 -o df;")
    df = ip.user_ns["df"]
    assert df["error"].iloc[0].startswith("3 chunks: one JSON answer per file")
    assert df["topic"].iloc[1] == "sample" and server.request_count == 1  # nothing sent for long.wav
    run(ip, "%voxtral_transcribe long.wav --schema schema --chunk-minutes 1 --segments -o seg;")
    assert list(ip.user_ns["seg"]["topic"]) == ["sample"] * 3


@pytest.mark.parametrize("line, message", [
    ("meeting.mp3 --tools log_decision --auto-tools --max-tool-rounds 0", "--max-tool-rounds 0 is out of range: use a whole number from 1 to 50"),
    ("one.wav two.wav --each --together", "choose one"),
    ("--continue --each", "does not combine with --each"),
])
def test_contradictory_options_are_one_line_and_send_nothing(ip, server, line, message):
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("voxtral", line, "Q")
    assert server.request_count == 0


def test_the_terminal_shows_each_tool_line_once(ip, server):
    out, _ = run(ip, "%%voxtral meeting.mp3 --tools log_decision --auto-tools --max-tool-rounds 2\n"
                     "Please call tools 3 times.")
    lines = [line for line in out.splitlines() if line.strip()]
    assert sum(line.startswith("→ log_decision(") for line in lines) == 3  # 2 run, 1 shown not run
    assert sum(line.endswith("(not run)") for line in lines) == 1
    assert lines.index(next(l for l in lines if l.endswith("(not run)"))) == 2
