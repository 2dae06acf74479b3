"""Live prices: OpenRouter's GET /models, cached for a day, the seeds offline, into every estimate."""
from __future__ import annotations

import asyncio
import json
import math
import os
import time

import httpx
import pytest
from openrouter import components as orc

import voxmagic
from voxmagic import cost, prices
from voxmagic.loop import LOOP
from voxmagic.settings import Settings
from voxmagic.testing.server import LocalServer
from voxmagic.testing.synth import tone_file

SMALL = "mistralai/voxtral-small-24b-2507"
MINI = "mistralai/voxtral-mini-3b-2507"
TEXT_ONLY = "mistralai/mistral-small-3.2-24b-instruct"
DAY = 86_400


@pytest.fixture(autouse=True)
def _fresh_prices():
    """No live price or loaded-URL memory leaks into or out of a test."""
    prices.reset()
    yield
    prices.reset()


def settings_for(base_url: str) -> Settings:
    return Settings.resolve(base_url=base_url, api_key="k")


def closed_base_url() -> str:
    """The base URL of a server that has stopped: connections are refused at once."""
    srv = LocalServer().start()
    url = srv.base_url
    srv.stop()
    return url


def age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


# -- the local server's list ----------------------------------------------------------------
def _paths(obj, prefix=""):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield prefix + key
            yield from _paths(value, prefix + key + ".")
    elif isinstance(obj, list):
        for value in obj:
            yield from _paths(value, prefix)


def test_server_lists_models_in_openrouters_shape(server):
    body = httpx.get(server.base_url + "/models").json()
    parsed = orc.ModelsListResponse.model_validate(body, strict=True)
    assert set(_paths(body)) <= set(_paths(parsed.model_dump(mode="json", by_alias=True)))  # no key dropped
    ids = {m.id: m for m in parsed.data}
    assert {SMALL, MINI, TEXT_ONLY} <= set(ids)
    assert "audio" not in ids[TEXT_ONLY].architecture.input_modalities
    assert ids[SMALL].pricing.audio == "0.0001" and ids[SMALL].pricing.prompt == "0.0000001"
    assert server.models_requests == 1
    server.configure(model_prices={SMALL: {"audio": 0.0002}, "acme/listener": {"prompt": "0.000001"}})
    body = httpx.get(server.base_url + "/models").json()
    orc.ModelsListResponse.model_validate(body, strict=True)
    listed = {m["id"]: m for m in body["data"]}
    assert listed[SMALL]["pricing"] == {"prompt": "0.0000001", "completion": "0.0000003", "audio": "0.0002"}
    assert listed["acme/listener"]["pricing"]["prompt"] == "0.000001"
    assert "$200 per million seconds" in listed[SMALL]["description"]
    assert server.models_requests == 2


# -- converting OpenRouter's strings ---------------------------------------------------------
def entry(model, pricing, inputs=("text", "audio"), description=""):
    return {"id": model, "description": description, "pricing": pricing,
            "architecture": {"input_modalities": list(inputs), "output_modalities": ["text"]}}


def test_pricing_from_model_units():
    voxtral = prices.pricing_from_model(entry(SMALL, {"prompt": "0.0000001", "completion": "0.0000003",
                                                      "audio": "0.0001"}))
    assert voxtral == cost.Pricing(1e-7, 3e-7, 1e-4)  # audio per second: $0.006 a minute
    assert voxtral == cost.VOXTRAL_SMALL
    # a description that prices audio in seconds marks any model as per-second
    other = entry("acme/ears", {"prompt": "0", "completion": "0", "audio": "0.00005"},
                  description="Input audio is priced at $50 per million seconds.")
    assert prices.audio_price(other) == ("second", 0.00005)
    # elsewhere the SDK's unit holds: USD per audio token, at 12.5 tokens per second for estimates
    gpt = prices.pricing_from_model(entry("openai/gpt-audio", {"prompt": "0.0000025", "completion": "0.00001",
                                                               "audio": "0.000032"}))
    assert gpt.audio_second == pytest.approx(0.000032 * cost.AUDIO_TOKENS_PER_SECOND)
    # audio input without an audio price: audio tokens at the prompt price
    gemini = entry("google/gemini", {"prompt": "0.000001", "completion": "0.000004"})
    assert prices.audio_price(gemini) == ("token", 1e-6)
    assert prices.pricing_from_model(entry(TEXT_ONLY, {"prompt": "0.1", "completion": "0.1"},
                                           inputs=("text", "image"))) is None
    assert prices.pricing_from_model(entry("openrouter/auto", {"prompt": "-1", "completion": "-1"})) is None
    assert prices.pricing_from_model(entry(SMALL, {"prompt": "n/a", "completion": "0"})) is None


# -- fetch, cache, fallbacks -----------------------------------------------------------------
def test_live_table_lists_audio_models_with_their_prices(server):
    df = prices.models_table(settings_for(server.base_url))
    assert list(df.columns) == prices.COLUMNS
    assert list(df["id"]) == sorted([SMALL, MINI])  # the text-only model is filtered out
    small = df.set_index("id").loc[SMALL]
    assert small["audio_usd_per_minute"] == pytest.approx(0.006)
    assert small["prompt_usd_per_m"] == pytest.approx(0.10) and small["completion_usd_per_m"] == pytest.approx(0.30)
    assert math.isnan(small["audio_usd_per_m_tokens"]) and small["context_length"] == 32768
    assert set(df["source"]) == {"live"} and df.attrs["source"] == "live"
    path = prices.cache_path(server.base_url)
    assert path.parent == voxmagic.storage.default_path().parent and path.is_file()
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []  # written atomically
    assert server.models_requests == 1


def test_within_a_day_the_cache_answers_after_a_day_the_server(server):
    settings = settings_for(server.base_url)
    assert prices.models_table(settings).attrs["source"] == "live"
    df = prices.models_table(settings)
    assert df.attrs["source"] == "cached" and server.models_requests == 1
    assert df.set_index("id").loc[SMALL, "audio_usd_per_minute"] == pytest.approx(0.006)
    age(prices.cache_path(server.base_url), DAY + 60)
    server.configure(model_prices={SMALL: {"audio": 0.0002}})
    df = prices.models_table(settings)
    assert df.attrs["source"] == "live" and server.models_requests == 2
    assert df.set_index("id").loc[SMALL, "audio_usd_per_minute"] == pytest.approx(0.012)
    assert prices.models_table(settings, refresh=True).attrs["source"] == "live"  # refresh skips the cache
    assert server.models_requests == 3
    models, source = LOOP.run(prices.fetch_models(settings, max_age_s=0))
    assert source == "live" and SMALL in [m["id"] for m in models] and server.models_requests == 4


def test_unreachable_server_uses_the_stale_cache_then_the_seeds():
    srv = LocalServer().start()
    settings = settings_for(srv.base_url)
    live, source = LOOP.run(prices.fetch_models(settings))
    srv.stop()
    assert source == "live"
    path = prices.cache_path(srv.base_url)
    age(path, 3 * DAY)
    models, source = LOOP.run(prices.fetch_models(settings))  # refused: no exception
    assert source == "cached" and models == live
    path.unlink()
    models, source = LOOP.run(prices.fetch_models(settings))
    assert source == "seed" and [m["id"] for m in models] == list(cost.PRICES)
    df = prices.models_table(settings)
    assert df.attrs["source"] == "seed" and list(df["id"]) == [SMALL]
    assert df.loc[0, "audio_usd_per_minute"] == pytest.approx(0.006)


def test_broken_answers_fall_back_too(server, tmp_path):
    settings = settings_for(server.url + "/nowhere/api/v1")  # 404
    assert LOOP.run(prices.fetch_models(settings))[1] == "seed"
    path = prices.cache_path(server.base_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    models, source = LOOP.run(prices.fetch_models(settings_for(server.base_url)))  # unreadable cache: refetch
    assert source == "live" and json.loads(path.read_text())["data"] == models


# -- into the estimates ----------------------------------------------------------------------
def test_a_changed_live_price_flows_into_pricing_and_estimates(server, tmp_path):
    changed = cost.Pricing(prompt=0.2e-6, completion=0.6e-6, audio_second=0.0002)
    server.configure(model_prices={SMALL: {"prompt": changed.prompt, "completion": changed.completion,
                                           "audio": changed.audio_second}})
    assert cost.pricing_for(SMALL) is cost.VOXTRAL_SMALL  # nothing loaded yet: the seed
    settings = settings_for(server.base_url)
    LOOP.run(prices.ensure_prices(settings))
    assert cost.pricing_for(SMALL) == changed
    assert cost.pricing_for("someone/else") is cost.VOXTRAL_SMALL  # unknown models as before
    audio = tone_file(tmp_path / "clip.wav", 3.0)
    plan = voxmagic.plan(audio, "q", base_url=server.base_url, api_key="k", max_tokens=100)
    durations = [c.duration_s for c in plan.request.audio]
    expected = cost.estimate(durations, plan.request.all_text, 100, changed)
    seeded = cost.estimate(durations, plan.request.all_text, 100, cost.VOXTRAL_SMALL)
    assert plan.estimate.usd == pytest.approx(expected.usd) and plan.estimate.usd == pytest.approx(2 * seeded.usd)
    LOOP.run(prices.ensure_prices(settings))  # once per process and base URL: no second fetch
    assert server.models_requests == 1
    prices.reset()
    assert cost.pricing_for(SMALL) is cost.VOXTRAL_SMALL


def test_concurrent_first_calls_share_one_fetch(server):
    settings = settings_for(server.base_url)

    async def many():
        await asyncio.gather(*(prices.ensure_prices(settings) for _ in range(8)))

    LOOP.run(many())
    assert server.models_requests == 1 and cost.pricing_for(MINI) == cost.VOXTRAL_SMALL


def test_ensure_prices_never_raises_and_retries_later():
    settings = settings_for(closed_base_url())
    assert settings.effective_dialect == "openrouter"
    started = time.monotonic()
    LOOP.run(prices.ensure_prices(settings))
    LOOP.run(prices.ensure_prices(settings))  # the failure is remembered: no second attempt now
    assert time.monotonic() - started < 5
    assert cost.pricing_for(SMALL) is cost.VOXTRAL_SMALL


@pytest.mark.parametrize("dialect", ["vllm", "mistral"])
def test_other_dialects_list_models_without_live_prices(dialect):
    with LocalServer(dialect=dialect) as srv:
        settings = settings_for(srv.base_url)
        assert settings.effective_dialect == "openai"
        LOOP.run(prices.ensure_prices(settings))  # OpenRouter only
        assert srv.models_requests == 0
        df = prices.models_table(settings)
        assert srv.models_requests == 1 and df.attrs["source"] == "live"
    expected = {"vllm": ["mistralai/Voxtral-Small-24B-2507"],
                "mistral": ["voxtral-mini-latest", "voxtral-small-latest"]}[dialect]
    assert list(df["id"]) == expected  # Mistral's text model says it takes no audio
    assert df["prompt_usd_per_m"].isna().all() and df["context_length"].tolist() == [32768] * len(expected)
    # the transcriptions model's published price per minute of audio is filled in, the rest unknown
    per_minute = dict(zip(df["id"], df["audio_usd_per_minute"], strict=True))
    if dialect == "mistral":
        assert per_minute["voxtral-mini-latest"] == pytest.approx(0.003) and per_minute["voxtral-small-latest"] != per_minute["voxtral-small-latest"]
    else:
        assert df["audio_usd_per_minute"].isna().all()


def test_the_models_magic_says_a_list_without_prices_has_none(shell, monkeypatch):
    """Mistral's list: 'prices: live' stood over a column of NaN."""
    from conftest import run

    monkeypatch.setenv("MISTRAL_API_KEY", "local-key")
    with LocalServer(dialect="mistral") as srv:
        out, err = run(shell, f"%voxtral_models --provider mistral --base-url {srv.base_url}")
    assert not err and "2 models taking audio" in out and "prices: live" not in out
    assert ("(the live list has no prices: known ones are filled in; a chat call to the others is estimated at "
            "Voxtral Small's OpenRouter price)") in out


def test_other_dialects_use_seed_prices_for_known_names(monkeypatch):
    monkeypatch.setitem(cost.PRICES, "mistralai/Voxtral-Small-24B-2507", cost.VOXTRAL_SMALL)
    with LocalServer(dialect="vllm") as srv:
        df = prices.models_table(settings_for(srv.base_url))
    assert df.loc[0, "audio_usd_per_minute"] == pytest.approx(0.006)


def test_the_models_magic_and_live_prices_in_a_dry_run(shell, server):
    """%voxtral_models lists the audio models at the session's endpoint; a changed live price
    reaches the estimate %%voxtral --dry-run prints."""
    from conftest import run
    from voxmagic.testing.synth import tone_file

    out, err = run(shell, "%voxtral_models -o models")
    df = shell.user_ns["models"]
    assert not err and "2 models taking audio" in out and "(prices: live)" in out
    assert df.set_index("id").loc["mistralai/voxtral-small-24b-2507", "audio_usd_per_minute"] == pytest.approx(0.006)
    tone_file("clip.wav", 60.0, channels=1)
    out1, _ = run(shell, "%%voxtral clip.wav --dry-run --max-tokens 10\nQ")
    server.configure(model_prices={"mistralai/voxtral-small-24b-2507": {"audio": 0.001}})
    run(shell, "%voxtral_models --refresh;")
    out2, _ = run(shell, "%%voxtral clip.wav --dry-run --max-tokens 10\nQ")
    cost = lambda out: float(out.rsplit("estimated cost ≤ $", 1)[1].split()[0])
    assert cost(out2) == pytest.approx(cost(out1) + 60 * (0.001 - 0.0001), rel=0.01)
    assert server.request_count == 0
    # --refresh at an address where nothing answers said "1 model ... (prices: seed)" as if it had worked
    out, err = run(shell, "%voxtral_models --base-url http://127.0.0.1:9/api/v1 --refresh -o gone")
    first = out.splitlines()[0]
    assert first.startswith("could not fetch the model list from http://127.0.0.1:9/api/v1 (ConnectError: ")
    assert first.endswith("); showing the built-in prices") and "(prices: seed)" in out


def test_offline_mode_never_asks_a_remote_server(monkeypatch):
    """The test suite runs with VOXMAGIC_OFFLINE=1: OpenRouter's list must come from the seeds
    without a connection being attempted."""
    import httpx

    from voxmagic import prices
    from voxmagic.settings import Settings

    def refuse(*args, **kwargs):
        raise AssertionError("a remote server was asked")

    monkeypatch.setattr(httpx.AsyncClient, "get", refuse)
    models, source = LOOP.run(prices.fetch_models(Settings.resolve(base_url="https://openrouter.ai/api/v1")))
    assert source == "seed" and any(m["id"] == "mistralai/voxtral-small-24b-2507" for m in models)
