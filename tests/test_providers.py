"""Each provider end to end through the magics and the Python API: OpenRouter (chat), Mistral's API
(chat, and its transcriptions endpoint with timed segments), an OpenAI-compatible vLLM on
localhost (no key); and subtitles written from those transcripts, parsed back."""
from __future__ import annotations

import pytest
import srt
import webvtt
from IPython.core.error import UsageError

from conftest import run

import voxmagic
from voxmagic.settings import Settings
from voxmagic.testing.server import LocalServer
from voxmagic.testing.synth import speechlike, tone_file, write_audio


@pytest.fixture
def mistral(monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "mistral-test-key")
    with LocalServer(dialect="mistral") as srv:
        yield srv


@pytest.fixture
def vllm():
    with LocalServer(dialect="vllm") as srv:
        yield srv


@pytest.fixture
def ip(shell, tmp_path):
    tone_file(tmp_path / "talk.mp3", 23.4)
    tone_file(tmp_path / "short.wav", 2.0, channels=1)
    return shell


def test_settings_follow_the_provider(monkeypatch):
    monkeypatch.delenv("VOXMAGIC_BASE_URL", raising=False)
    monkeypatch.setenv("MISTRAL_API_KEY", "m-key")
    s = Settings.resolve(provider="mistral")
    assert (s.base_url, s.model, s.key_env, s.api_key, s.effective_dialect, s.transcription_model) == (
        "https://api.mistral.ai/v1", "voxtral-small-latest", "MISTRAL_API_KEY", "m-key", "mistral",
        "voxtral-mini-latest")
    local = Settings.resolve(base_url="http://localhost:8000/v1")
    assert local.provider == "openai-compatible" and local.api_key is None
    assert local.check() is local  # no key needed on localhost
    with pytest.raises(voxmagic.ConfigError, match="no API key for openai-compatible: set OPENAI_API_KEY"):
        Settings.resolve(provider="openai-compatible", base_url="https://gpu.example.com/v1").check()
    with pytest.raises(voxmagic.ConfigError, match="unknown provider 'azure'"):
        Settings.resolve(provider="azure")


def test_mistral_transcripts_use_the_transcriptions_endpoint_with_segments(ip, mistral, tmp_path):
    out, err = run(ip, f"%voxtral_transcribe talk.mp3 --provider mistral --base-url {mistral.base_url} "
                       "--srt subs --vtt subs -o df;")
    assert not err
    (rec,) = mistral.requests
    assert rec.body["model"] == "voxtral-mini-latest" and rec.body["timestamp_granularities"] == ["segment"]
    assert rec.headers["Authorization"] == "Bearer ***"  # the server hides it; it was sent
    df = ip.user_ns["df"]
    assert df["text"].iloc[0].startswith("segment 1 0.0-10.0 s heard") and df["error"].isna().all()
    assert df["cost_usd"].iloc[0] == pytest.approx(24 * 0.003 / 60)  # billed seconds × Mistral's price
    # the provider's segments are the subtitle times: 0-10, 10-20, 20-23.4 s
    cues = list(srt.parse((tmp_path / "subs" / "talk.srt").read_text()))
    spans = sorted({(round(c.start.total_seconds()), round(c.end.total_seconds())) for c in cues})
    assert cues[0].start.total_seconds() == 0 and abs(cues[-1].end.total_seconds() - 23.4) < 0.06
    assert {s for s, _ in spans} >= {0, 10, 20}
    vtt = webvtt.from_string((tmp_path / "subs" / "talk.vtt").read_text())
    assert [c.text for c in vtt] == [c.content for c in cues]
    assert "wrote 2 subtitle files to subs" in out
    # a rerun is answered from the cache, segments included: the same subtitles, nothing sent
    (tmp_path / "subs" / "talk.srt").unlink()
    run(ip, f"%voxtral_transcribe talk.mp3 --provider mistral --base-url {mistral.base_url} --srt subs -o df2;")
    assert mistral.request_count == 1 and bool(ip.user_ns["df2"]["cached"].iloc[0])
    assert list(srt.parse((tmp_path / "subs" / "talk.srt").read_text())) == cues


def test_mistral_chat_and_the_chat_api_for_transcripts(ip, mistral):
    run(ip, f"%%voxtral short.wav --provider mistral --base-url {mistral.base_url} -o ans\nWho speaks?")
    rec = mistral.requests[-1]
    assert rec.body["model"] == "voxtral-small-latest"
    assert isinstance(rec.body["messages"][0]["content"][1]["input_audio"], str)  # Mistral's shape
    assert ip.user_ns["ans"].startswith("Heard 1 clips")
    run(ip, f"%voxtral_transcribe short.wav --provider mistral --base-url {mistral.base_url} --api chat "
            "--language fr -o df;")
    assert mistral.requests[-1].prompt.startswith("Transcribe this audio verbatim")
    # translation needs chat even by default
    run(ip, f"%voxtral_transcribe short.wav --provider mistral --base-url {mistral.base_url} "
            "--translate-to English -o df;")
    assert "Translate the speech" in mistral.requests[-1].prompt


def test_vllm_on_localhost_needs_no_key(ip, vllm, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY")
    out, err = run(ip, f"%%voxtral short.wav --base-url {vllm.base_url} "
                       "--model mistralai/Voxtral-Small-24B-2507 -o ans\nWho speaks?")
    assert not err and ip.user_ns["ans"].startswith("Heard 1 clips")
    assert "Authorization" not in vllm.requests[-1].headers
    df = voxmagic.transcribe("short.wav", base_url=vllm.base_url, api="transcriptions")
    assert vllm.requests[-1].body["response_format"] == "verbose_json"
    assert df["text"].iloc[0].startswith("segment 1 0.0-2.0 s heard")


def test_missing_provider_key_and_wrong_endpoint_are_one_line(ip, mistral, monkeypatch):
    monkeypatch.delenv("MISTRAL_API_KEY")
    with pytest.raises(UsageError, match="no API key for mistral: set MISTRAL_API_KEY"):
        ip.run_line_magic("voxtral_transcribe", f"short.wav --provider mistral --base-url {mistral.base_url}")
    with pytest.raises(UsageError, match="openrouter has no transcriptions endpoint"):
        ip.run_line_magic("voxtral_transcribe", "short.wav --api transcriptions")
    assert mistral.request_count == 0


def test_subtitles_from_short_chat_chunks(ip, server, tmp_path):
    """OpenRouter has no timed segments: 30 s chunks cut at pauses give the cue times."""
    write_audio(tmp_path / "lecture.wav", speechlike(75.0), 16_000)
    run(ip, "%voxtral_transcribe lecture.wav --srt subs -o df;")
    spans = [(a.duration_s, r.body.get("stream")) for r in server.requests for a in r.audio]
    assert len(spans) == 3 and all(d <= 30.0 for d, _ in spans)
    assert sum(d for d, _ in spans) == pytest.approx(75.0, abs=0.01)
    cues = list(srt.parse((tmp_path / "subs" / "lecture.srt").read_text()))
    assert cues[0].start.total_seconds() == 0 and cues[-1].end.total_seconds() == pytest.approx(75.0, abs=0.002)
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:]))
    df = ip.user_ns["df"]
    assert len(df) == 1 and df["chunks"].iloc[0] == 3  # still one row per file
    assert " ".join(c.content.replace("\n", " ") for c in cues).split() == df["text"].iloc[0].split()


def test_transcripts_api(server, tmp_path):
    write_audio(tmp_path / "a.wav", speechlike(40.0), 16_000)
    (t,) = voxmagic.transcripts(tmp_path / "a.wav", base_url=server.base_url, api_key="k")
    assert t.cues and t.cues[-1].end_s == pytest.approx(40.0, abs=0.002)
    assert srt.parse(t.to_srt()) and t.to_vtt().startswith("WEBVTT")


def test_a_refused_key_names_the_providers_variable(ip, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "wrong")
    with LocalServer(dialect="mistral", api_key="right") as srv:
        with pytest.raises(UsageError, match=r"HTTP 401: .*check the key in MISTRAL_API_KEY"):
            ip.run_cell_magic("voxtral", f"short.wav --provider mistral --base-url {srv.base_url}", "Q")


def test_the_magics_name_every_provider_settings_knows():
    from voxmagic.providers import PROVIDER_NAMES
    from voxmagic.providers import PROVIDERS

    assert PROVIDER_NAMES == tuple(PROVIDERS)


def test_a_provider_chosen_above_a_base_url_set_for_another_goes_to_its_own(ip, server, mistral, monkeypatch):
    """A line's --provider (or provider=) did not change the session's URL: MISTRAL_API_KEY went to
    OpenRouter's address, OPENROUTER_API_KEY to Mistral's."""
    monkeypatch.setenv("VOXMAGIC_BASE_URL", server.base_url)  # OpenRouter's (local) address, from the environment
    assert Settings.resolve(provider="mistral").base_url == "https://api.mistral.ai/v1"  # not OpenRouter's
    assert Settings.resolve(provider="openrouter").base_url == server.base_url  # the same provider's: kept
    assert Settings.resolve().base_url == server.base_url
    own = "http://127.0.0.1:9/v1"  # an address of no known provider (your own server) is kept
    assert Settings.resolve(provider="mistral", base_url=own).base_url == own
    monkeypatch.setenv("VOXMAGIC_BASE_URL", own)
    assert Settings.resolve(provider="mistral").base_url == own
    # the session set up for Mistral; one line asks OpenRouter: it goes to OpenRouter's address
    monkeypatch.setenv("VOXMAGIC_BASE_URL", server.base_url)
    ip.run_line_magic("config", "VoxtralMagics.provider = 'mistral'")
    ip.run_line_magic("config", f"VoxtralMagics.base_url = {mistral.base_url!r}")
    run(ip, "%%voxtral short.wav -o on_mistral\nWho speaks?")
    out, err = run(ip, "%%voxtral short.wav --provider openrouter -o on_openrouter\nWho speaks?")
    assert not err and ip.user_ns["on_openrouter"].startswith("Heard 1 clips")
    assert mistral.request_count == 1 and server.request_count == 1
    assert server.requests[-1].headers["Authorization"] == "Bearer ***"  # OPENROUTER_API_KEY, to OpenRouter's


def test_a_bad_environment_variable_is_named(monkeypatch):
    """VOXMAGIC_PROVIDER=azure or a VOXMAGIC_BASE_URL that is no URL was reported as if typed in the call."""
    monkeypatch.setenv("VOXMAGIC_PROVIDER", "azure")
    with pytest.raises(voxmagic.ConfigError, match=r"^unknown provider 'azure' \(from \$VOXMAGIC_PROVIDER\); use"):
        Settings.resolve()
    monkeypatch.delenv("VOXMAGIC_PROVIDER")
    monkeypatch.setenv("VOXMAGIC_BASE_URL", "localhost:8000")
    with pytest.raises(voxmagic.ConfigError, match=r"^\$VOXMAGIC_BASE_URL='localhost:8000' is not a URL"):
        Settings.resolve()
    with pytest.raises(voxmagic.ConfigError, match=r"^the base URL 'nope' is not a URL"):
        Settings.resolve(base_url="nope")
