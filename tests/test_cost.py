"""Cost arithmetic: token counts from Voxtral's published figures, prices, estimates, the ledger."""
from __future__ import annotations

import threading

import pytest

from voxmagic import cost
from voxmagic.results import Response, Usage


@pytest.mark.parametrize("seconds, tokens", [(1, 376), (30, 376), (31, 751), (600, 7_501),
                                             (1_800, 22_501), (2_400, 30_001)])
def test_audio_tokens_match_mistral_common(seconds, tokens):
    # figures measured with mistral-common 1.13's audio encoder (see cost.py's docstring)
    assert cost.audio_tokens(seconds) == tokens


def test_prices_per_million():
    p = cost.VOXTRAL_SMALL
    assert p.cost(1_000_000, 0, 0) == pytest.approx(0.10)
    assert p.cost(0, 1_000_000, 0) == pytest.approx(0.30)
    assert p.cost(0, 0, 1_000_000) == pytest.approx(100.0)
    # audio tokens are paid per second, not again as prompt tokens
    assert p.cost(1_000, 0, 60, audio_tokens=751) == pytest.approx(249 * 0.1e-6 + 60 * 100e-6)


def test_estimate_is_an_upper_bound_with_every_part():
    est = cost.estimate([60.0, 20.0], "Summarise this meeting.", max_tokens=500)
    assert est.prompt_tokens >= cost.audio_tokens(60) + cost.audio_tokens(20)
    assert est.completion_tokens == 500
    floor = 80 * 100e-6 + 500 * 0.3e-6
    assert floor < est.usd < floor + 0.0001
    unbounded = cost.estimate([60.0], "x", max_tokens=None)
    assert unbounded.completion_tokens == cost.MAX_OUTPUT_TOKENS


def test_transcript_bound_grows_with_duration_and_is_capped():
    assert cost.transcript_token_bound(10) < cost.transcript_token_bound(60)
    assert cost.transcript_token_bound(60) >= 60 * 5  # fast speech fits
    assert cost.transcript_token_bound(4 * 3600) == cost.MAX_OUTPUT_TOKENS


def test_unknown_model_is_priced_as_voxtral_small():
    assert cost.pricing_for("someone/else") is cost.VOXTRAL_SMALL


def test_ledger_is_thread_safe_and_totals_reported_costs():
    ledger = cost.CostLedger()
    r = Response(text="x", model="m", usage=Usage(prompt_tokens=10, completion_tokens=2, cost=0.001),
                 cost_usd=0.001, cost_source="reported", audio_seconds=1.0)

    def work():
        for _ in range(500):
            ledger.record(r, "clip")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.calls == 4_000
    assert ledger.total_usd == pytest.approx(4.0)
    df = ledger.to_dataframe()
    assert len(df) == 4_000 and df["cost_usd"].sum() == pytest.approx(4.0)
    assert str(ledger) == "session $4.0000 (4000 calls)"
    ledger.reset()
    assert ledger.calls == 0 and ledger.total_usd == 0


def test_the_ledgers_lines_count_answers_from_the_cache_apart_from_calls():
    """The cost line and %voxtral_cost's total agree: a cached answer is free and not a call."""
    ledger = cost.CostLedger()
    paid = Response(text="x", model="m", usage=Usage(prompt_tokens=10, completion_tokens=2),
                    cost_usd=0.001, cost_source="reported", audio_seconds=1.0)
    free = Response(text="x", model="m", usage=Usage(), cost_usd=0.0, cost_source="reported",
                    audio_seconds=1.0, cached=True)
    ledger.record(paid, "a")
    for _ in range(2):
        ledger.record(free, "b")
    assert str(ledger) == "session $0.001000 (1 call, 2 answers from the cache)"
    assert ledger.summary() == "total $0.001000 over 1 call and 2 answers from the cache"


def test_the_session_budget_set_in_python_is_checked_as_config_is():
    import voxmagic

    with pytest.raises(voxmagic.ConfigError, match=r"^voxmagic.ledger.budget_usd = -1 is out of range: use a number above 0 USD$"):
        voxmagic.ledger.budget_usd = -1
    assert voxmagic.ledger.budget_usd is None
