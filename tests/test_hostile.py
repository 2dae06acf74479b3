"""A server that echoes the key, and streams that end oddly: the key reaches nothing a user can see
or keep, and an answer the server billed is never thrown away."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from IPython.utils.capture import capture_output
from nbclient import NotebookClient

import voxmagic
from voxmagic import runner
from voxmagic.redact import MASK, Redactor
from voxmagic.testing.server import LocalServer
from voxmagic.testing.synth import tone_file

KEY = "sk-or-v1-" + "5eC12e7" * 9  # what the client sends; the server refuses it and echoes it
REFUSED = {"api_key": "the-only-key-this-server-takes"}


@pytest.fixture
def clip(tmp_path):
    return str(tone_file(tmp_path / "clip.mp3", 1.5))


def _everything_kept(tmp_path: Path) -> bytes:
    """Every byte voxmagic wrote to disk: history and cache (with SQLite's WAL), price caches."""
    folder = Path(os.environ["VOXMAGIC_HISTORY"]).parent
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def _faults(server: LocalServer) -> None:
    """The three places a careless server echoes the Authorization header (see the local server's
    echo_key): a 401 body, a 400's metadata.raw, an error chunk in the middle of a stream."""
    server.add_fault("http_400", match="four hundred")
    server.add_fault("error_chunk", after_tokens=3, match="mid stream")


def test_the_python_api_never_shows_an_echoed_key(tmp_path, clip):
    with LocalServer(echo_key=True) as srv:
        _faults(srv)
        texts = []
        for prompt in ("four hundred", "mid stream"):
            with pytest.raises(voxmagic.APIError) as err:
                voxmagic.ask(clip, prompt, base_url=srv.base_url, api_key=KEY, max_attempts=1)
            e = err.value
            texts += [str(e), repr(e), e.message, json.dumps(e.metadata), e.partial_text]
            assert MASK in str(e) or MASK in json.dumps(e.metadata)  # it was there, and it is hidden
        srv.configure(**REFUSED)
        with pytest.raises(voxmagic.AuthenticationError) as err:
            voxmagic.ask(clip, "refused", base_url=srv.base_url, api_key=KEY)
        texts += [str(err.value), repr(err.value)]
        assert "Invalid API key provided: Bearer " + MASK in str(err.value)
        df = voxmagic.transcribe([clip], base_url=srv.base_url, api_key=KEY)
        texts += [df.to_string(), df.to_csv(), repr(df.to_dict())]
        assert MASK in df["error"].iloc[0]
    history = voxmagic.history()
    texts += [history.to_csv()]
    assert history["error"].notna().sum() == 4
    assert not any(KEY in t for t in texts)
    assert KEY.encode() not in _everything_kept(tmp_path)


def test_the_magics_never_show_an_echoed_key(shell, tmp_path, clip, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    with LocalServer(echo_key=True) as srv:
        _faults(srv)
        shell.run_line_magic("config", f"VoxtralMagics.base_url = {srv.base_url!r}")
        shell.run_line_magic("config", "VoxtralMagics.max_attempts = 1")
        with capture_output() as cap:
            shell.run_cell(f"%%voxtral {clip}\nfour hundred")
            shell.run_cell(f"%%voxtral {clip}\nmid stream")
            srv.configure(**REFUSED)
            shell.run_cell(f"%%voxtral {clip}\nrefused")
            shell.run_cell(f"%voxtral_transcribe {clip} -o df")
            shell.run_cell("df")
            shell.run_cell("%voxtral_history")
        shown = cap.stdout + cap.stderr + "".join(str(o.data) for o in cap.outputs)
    assert shown.count("UsageError") == 3 and MASK in shown
    variables = repr(shell.user_ns["_voxtral_error"]) + str(shell.user_ns["_voxtral_error"].metadata)
    assert KEY not in shown and KEY not in variables and KEY not in shell.user_ns["df"].to_csv()
    assert KEY.encode() not in _everything_kept(tmp_path)


def test_a_saved_notebook_and_the_cli_never_hold_an_echoed_key(tmp_path, clip, monkeypatch):
    with LocalServer(echo_key=True, **REFUSED) as srv:
        env = {**os.environ, "OPENROUTER_API_KEY": KEY, "VOXMAGIC_BASE_URL": srv.base_url}
        cli = subprocess.run([sys.executable, "-m", "voxmagic", "transcribe", clip], env=env,
                             capture_output=True, text=True, timeout=120)
        assert "Invalid API key provided: Bearer " + MASK in cli.stdout + cli.stderr
        assert KEY not in cli.stdout + cli.stderr

        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in (
            "%load_ext voxmagic",
            f"%%voxtral {clip}\nWhat is it?",
            f"%voxtral_transcribe {clip} -o df",
            "df[['source', 'error']]",
            "_voxtral_error",
        )])
        path = tmp_path / "echo.ipynb"
        monkeypatch.setenv("OPENROUTER_API_KEY", KEY)  # the kernel inherits this environment
        monkeypatch.setenv("VOXMAGIC_BASE_URL", srv.base_url)
        NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        nbformat.write(nb, path)
    saved_bytes = path.read_bytes()
    assert b"Invalid API key provided: Bearer " + MASK.encode() in saved_bytes
    assert KEY.encode() not in saved_bytes
    assert KEY.encode() not in _everything_kept(tmp_path)


def test_a_key_split_across_deltas_is_still_hidden():
    stream = Redactor([KEY]).stream()
    pieces = ["The key was ", KEY[:5], KEY[5:30], KEY[30:], " and then", " more."]
    shown = "".join(stream.feed(p) for p in pieces) + stream.flush()
    assert shown == f"The key was {MASK} and then more."
    held = Redactor([KEY]).stream()
    assert held.feed("ordinary text ending in s") == "ordinary text ending in " and held.flush() == "s"
    assert Redactor(["short"]).text("a short word") == "a short word"  # placeholders are not keys
    # a variable set from a CRLF file holds the key and its line end; a message shows the key without it
    assert Redactor(iter([KEY + "\r\n"])).text(f"header b'Bearer {KEY}\\r\\n'") == f"header b'Bearer {MASK}\\r\\n'"


# -- streams that end oddly ----------------------------------------------------------------------

def test_a_stream_without_done_is_kept_not_billed_twice(server, clip):
    opts = dict(base_url=server.base_url, api_key="k")
    server.add_fault("no_done")
    r = voxmagic.ask(clip, "Describe.", **opts)
    assert server.request_count == 1 and r.attempts == 1
    assert r.cost_source == "reported" and r.cost_usd == server.requests[-1].cost
    server.add_fault("no_usage")
    r = voxmagic.ask(clip, "Describe again.", **opts)
    assert server.request_count == 2 and r.finish_reason == "stop"
    assert r.cost_source == "estimated" and r.cost_usd > 0  # the server never said; the price table did
    history = voxmagic.history()
    assert history["outcome"].tolist() == ["answered", "answered"]


def test_a_dropped_attempt_without_streaming_is_abandoned_too(shell, server, clip):
    """Streamed, a dropped attempt was listed as the provider may bill it; not streamed, it was
    not, though its request had reached the server just the same."""
    server.add_fault("reset_mid_stream")  # not streaming: the connection drops at once, after the request
    shell.run_line_magic("config", "VoxtralMagics.backoff = 0.01")
    with capture_output():
        shell.run_cell(f"%%voxtral {clip} --no-stream -o a\nDescribe.")
        shell.run_cell("%voxtral_cost -o costs")
    assert shell.user_ns["a"] and server.request_count == 2
    assert shell.user_ns["costs"]["outcome"].tolist() == ["abandoned", "answered"]


def test_a_dropped_transcriptions_attempt_is_abandoned_too(clip, monkeypatch):
    """On Mistral's transcriptions endpoint (billed per second) a dropped attempt was retried but
    not listed as one the provider may bill, where the chat endpoint lists it."""
    from voxmagic.testing.server import LocalServer

    with LocalServer(dialect="mistral") as srv:
        srv.add_fault("reset_mid_stream")
        df = voxmagic.transcribe(clip, provider="mistral", base_url=srv.base_url, api_key="k", backoff=0.01,
                                 cache=False)
        assert df["error"].isna().all() and srv.request_count == 2
    outcomes = [e.outcome for e in voxmagic.ledger.entries]
    assert outcomes == ["abandoned", "answered"], outcomes


@pytest.mark.parametrize("fault", ["http_429", "http_503"])
def test_refusals_that_were_retried_are_not_abandoned_attempts(shell, server, clip, fault):
    """A 429 or 503 refused the request before anything began: nothing the provider may bill,
    and not a call of its own (it was 4 "calls" of which 3 "the provider may bill")."""
    server.add_fault(fault, times=3, retry_after=0.01)
    shell.run_line_magic("config", "VoxtralMagics.backoff = 0.01")
    with capture_output() as cap:
        shell.run_cell(f"%%voxtral {clip} -o a\nDescribe.")
        shell.run_cell("%voxtral_cost -o costs")
    assert shell.user_ns["a"] and server.request_count == 4
    assert shell.user_ns["costs"]["outcome"].tolist() == ["answered"]
    assert voxmagic.history()["outcome"].tolist() == ["answered"]
    assert "may bill" not in cap.stdout and "unknown cost" not in cap.stdout and "over 1 call" in cap.stdout
    server.add_fault("http_400")
    with capture_output() as cap:
        shell.run_cell(f"%%voxtral {clip} --no-cache\nAgain.")
        shell.run_cell("%voxtral_cost -o costs")
    refused = shell.user_ns["costs"].iloc[-1]
    assert (refused["outcome"], refused["cost_usd"], refused["cost_source"]) == ("failed", 0.0, "refused")
    assert "over 2 calls" in cap.stdout and "unknown cost" not in cap.stdout


def test_an_attempt_abandoned_after_the_server_started_is_recorded(shell, server, clip):
    server.add_fault("reset_mid_stream", after_tokens=3)
    with capture_output() as cap:
        shell.run_cell(f"%%voxtral {clip} -o a\nDescribe.")
        shell.run_cell("%voxtral_cost -o costs")
    assert shell.user_ns["a"] and server.request_count == 2
    history = voxmagic.history()
    abandoned = history[history["outcome"] == "abandoned"].iloc[0]
    assert abandoned["generation_id"] == server.requests[0].id and abandoned["error_type"] == "APIConnectionError"
    assert history["outcome"].tolist() == ["abandoned", "answered"]
    costs = shell.user_ns["costs"]
    assert costs["outcome"].tolist() == ["abandoned", "answered"] and costs["cost_usd"].isna().tolist() == [True, False]
    assert "1 abandoned attempt the provider may bill" in cap.stdout
    assert not runner.store.cached(history["cache_key"].dropna().iloc[0]).text.startswith("partial")


def test_always_429_ends_after_the_patience_with_one_line(shell, server, clip):
    server.add_fault("http_429", times=1000, retry_after=0.2)
    shell.run_line_magic("config", "VoxtralMagics.rate_limit_patience = 1.5")
    with capture_output() as cap:
        shell.run_cell(f"%%voxtral {clip}\nDescribe.")
    line = cap.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("UsageError: HTTP 429")
    requests = server.request_count
    assert f"[gave up after {requests} attempts over " in line and 4 <= requests <= 12
    waited = float(line.split(" over ")[1].split(" s]")[0])
    assert 1 <= waited <= 2  # it gives up rather than begin a wait that would end past the patience


def test_a_request_that_failed_mid_stream_keeps_its_text_in_history(server, clip):
    server.add_fault("error_chunk", times=9, after_tokens=4)
    with pytest.raises(voxmagic.ServerError) as err:
        voxmagic.ask(clip, "Describe.", base_url=server.base_url, api_key="k", max_attempts=2, backoff=0.01)
    row = voxmagic.history().iloc[-1]
    assert row["outcome"] == "failed" and row["text"] == err.value.partial_text and row["text"].startswith("Heard")
    assert runner.store.cached(runner.store.history().iloc[-1]["cache_key"] or "none") is None  # never a cache hit
