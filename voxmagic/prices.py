"""Live model prices: OpenRouter's ``GET /models``, cached for a day, with cost.py's seeds offline.

OpenRouter lists every model with ``pricing`` as decimal strings in USD (``"prompt":
"0.0000001"``) and ``architecture.input_modalities``. :func:`ensure_prices` loads that list once
per process and base URL and registers the audio models' prices in :mod:`voxmagic.cost`, so
estimates and budgets follow price changes; :func:`models_table` shows the audio models as a
DataFrame (``%voxtral_models``). Nothing here raises for network trouble: a stale cache file, then
the seed prices of :data:`voxmagic.cost.PRICES`, stand in.

Units (the ``audio`` price is the one to get right):

- ``prompt`` / ``completion``: USD per token (the SDK's ``PublicPricing`` model: "Price in USD per
  token for prompt (input) processing").
- ``audio``: the SDK documents it generically as "Price in USD per audio input token", which holds
  for token-billed audio models (OpenAI's gpt-audio: ``$32/M audio tokens``). Voxtral is billed
  per *second* instead: OpenRouter's own description of mistralai/voxtral-small-24b-2507 says
  "Input audio is priced at $100 per million seconds", i.e. ``"audio": "0.0001"`` is USD per second
  ($0.006 per minute). Read per token, the same number would cost 12.5 tokens/s × 60 × $0.0001 =
  $0.075 per minute, 12.5 times what OpenRouter and Mistral publish. So the audio price is per
  second for Voxtral models (and any model whose description prices audio in seconds), per audio
  token otherwise; a model with audio input but no ``audio`` price bills audio as prompt tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import cost
from .cost import AUDIO_TOKENS_PER_SECOND, CONTEXT_TOKENS, Pricing
from .providers import TRANSCRIPTION_PRICES, is_loopback
from .redact import Redactor

if TYPE_CHECKING:
    import pandas as pd

    from .settings import Settings

__all__ = [
    "cache_path",
    "fetch_models",
    "pricing_from_model",
    "audio_price",
    "ensure_prices",
    "models_table",
    "seed_models",
    "reset",
    "MAX_AGE_S",
    "COLUMNS",
]

log = logging.getLogger(__name__)

MAX_AGE_S = 86_400.0  # a day
RETRY_S = 600.0  # after a failed live fetch, ensure_prices tries again this much later
TIMEOUT = 10.0
COLUMNS = [
    "id",
    "name",
    "context_length",
    "prompt_usd_per_m",
    "completion_usd_per_m",
    "audio_usd_per_minute",
    "audio_usd_per_m_tokens",
    "source",
]
# What the cache keeps of each listed model (OpenRouter's entries also carry long descriptions,
# per-request limits, links...; Mistral's carry `capabilities`, vLLM's `max_model_len`).
_KEEP = (
    "id",
    "name",
    "description",
    "context_length",
    "architecture",
    "pricing",
    "capabilities",
    "max_context_length",
    "max_model_len",
    "owned_by",
)
_SECONDS = re.compile(r"\bper (?:million |1m |thousand |1k )?seconds?\b|\baudio seconds?\b", re.IGNORECASE)

# ensure_prices' memory: base URL -> (monotonic time of the last load, whether it was fresh)
_loaded: dict[str, tuple[float, bool]] = {}
_inflight: dict[str, asyncio.Task] = {}


# -- cache ------------------------------------------------------------------------------------
def _key(base_url: str) -> str:
    return base_url.rstrip("/")


def cache_path(base_url: str) -> Path:
    """The JSON file holding ``base_url``'s model list: next to the history database, named from
    a short hash of the URL."""
    from .storage import default_path

    digest = hashlib.sha256(_key(base_url).encode()).hexdigest()[:12]
    return default_path().parent / f"models-{digest}.json"


def _read_cache(path: Path) -> tuple[list[dict], float] | None:
    """The cached list and its age in seconds (from the file's modification time), or None."""
    try:
        age = time.time() - path.stat().st_mtime
        data = _trimmed(json.loads(path.read_text(encoding="utf-8"))["data"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return data, age


def _write_cache(path: Path, base_url: str, data: list[dict]) -> None:
    """Write atomically (temp file + ``os.replace``) so readers never see half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"base_url": _key(base_url), "fetched_at": time.time(), "data": data}, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:  # a read-only cache dir costs a refetch next time, nothing more
        log.debug("could not write the model cache %s: %s", path, exc)


# -- fetching ---------------------------------------------------------------------------------
def _trimmed(entries: Any) -> list[dict]:
    if not isinstance(entries, list):
        raise ValueError("/models answered without a `data` list")
    return [{k: e[k] for k in _KEEP if k in e} for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]


async def _get(settings: Settings) -> list[dict]:
    import httpx

    from .client import tls_context  # built once (loading the CA bundle: 50-90 ms)

    headers = {"User-Agent": "voxmagic", "Accept": "application/json"}
    if settings.api_key:  # OpenRouter's /models needs no key; Mistral's does
        headers["Authorization"] = f"Bearer {settings.api_key}"
    timeout = httpx.Timeout(TIMEOUT, connect=min(TIMEOUT, 5.0))
    async with httpx.AsyncClient(timeout=timeout, headers=headers, follow_redirects=True, verify=tls_context()) as http:
        response = await http.get(_key(settings.base_url) + "/models")
        response.raise_for_status()
        body = response.json()
    if not isinstance(body, dict):
        raise ValueError("/models answered with something other than a JSON object")
    return _trimmed(body.get("data"))


def _price_str(usd: float) -> str:
    """A price as OpenRouter writes it: a plain decimal string (1e-07 -> "0.0000001")."""
    return f"{usd:.12f}".rstrip("0").rstrip(".") or "0"


def seed_models() -> list[dict]:
    """cost.PRICES in the shape of OpenRouter's model list (the offline fallback)."""
    return [
        {
            "id": model,
            "name": model,
            "context_length": CONTEXT_TOKENS,
            "architecture": {"input_modalities": ["text", "audio"], "output_modalities": ["text"]},
            "pricing": {
                "prompt": _price_str(p.prompt),
                "completion": _price_str(p.completion),
                "audio": _price_str(p.audio_second),
            },
        }
        for model, p in cost.PRICES.items()
    ]


async def _fetch(settings: Settings, max_age_s: float, refresh: bool) -> tuple[list[dict], str, str | None]:
    """(models, source, failure): why a live fetch that was wanted failed (None: it was not
    wanted, or it worked)."""
    path = cache_path(settings.base_url)
    cached = _read_cache(path)
    if cached is not None and not refresh and cached[1] < max_age_s:
        return cached[0], "cached", None
    try:
        if os.environ.get("VOXMAGIC_OFFLINE") == "1" and not is_loopback(settings.base_url):
            raise ConnectionRefusedError("VOXMAGIC_OFFLINE=1: only servers on this machine are asked")
        data = await _get(settings)
    except Exception as exc:  # network, HTTP status, JSON: fall back, never raise
        log.debug("GET %s/models failed: %r", _key(settings.base_url), exc)
        failure = Redactor.for_key(settings.api_key).brief(exc)
        if cached is not None:
            return cached[0], "cached", failure
        return seed_models(), "seed", failure
    _write_cache(path, settings.base_url, data)
    return data, "live", None


async def fetch_models(
    settings: Settings, *, max_age_s: float = MAX_AGE_S, refresh: bool = False
) -> tuple[list[dict], str]:
    """The model list of ``settings.base_url`` and where it came from: ``"live"`` (just fetched),
    ``"cached"`` (the cache file: younger than ``max_age_s``, or older when the fetch failed) or
    ``"seed"`` (cost.PRICES, when offline with no cache). ``refresh`` skips a fresh cache."""
    data, source, _ = await _fetch(settings, max_age_s, refresh)
    return data, source


# -- prices -----------------------------------------------------------------------------------
def _price(value: Any) -> float | None:
    """OpenRouter's price string as a float; None when missing, unparsable or negative (routers
    such as openrouter/auto list "-1": the price depends on the model picked)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        usd = float(value)
    except (TypeError, ValueError):
        return None
    return usd if math.isfinite(usd) and usd >= 0 else None


def _has_audio_input(entry: dict) -> bool:
    arch = entry.get("architecture")
    return isinstance(arch, dict) and "audio" in (arch.get("input_modalities") or [])


def audio_price(entry: dict) -> tuple[str, float] | None:
    """``("second", usd_per_second)`` or ``("token", usd_per_audio_token)`` for an OpenRouter
    entry with audio input; None when it has no usable prices. See the module docstring for why
    Voxtral's ``audio`` price is per second."""
    if not _has_audio_input(entry):
        return None
    pricing = entry["pricing"] if isinstance(entry.get("pricing"), dict) else {}
    audio = _price(pricing.get("audio"))
    if audio is None:  # audio input without an audio price: billed as prompt tokens
        prompt = _price(pricing.get("prompt"))
        return None if prompt is None else ("token", prompt)
    description = entry["description"] if isinstance(entry.get("description"), str) else ""
    per_second = "voxtral" in entry["id"].lower() or bool(_SECONDS.search(description))
    return ("second" if per_second else "token"), audio


def pricing_from_model(entry: dict) -> Pricing | None:
    """cost.Pricing (USD per prompt token, per completion token, per audio second) of an OpenRouter
    model entry with audio input; None for other models or missing prices.

    Token-billed audio is turned into a per-second price at Voxtral's 12.5 audio tokens per second,
    the only audio tokenisation cost.py knows; for other models' estimates it is approximate."""
    audio = audio_price(entry)
    pricing = entry["pricing"] if isinstance(entry.get("pricing"), dict) else {}
    prompt, completion = _price(pricing.get("prompt")), _price(pricing.get("completion"))
    if audio is None or prompt is None or completion is None:
        return None
    unit, usd = audio
    return Pricing(prompt, completion, usd if unit == "second" else usd * AUDIO_TOKENS_PER_SECOND)


def _register(models: list[dict]) -> None:
    for entry in models:
        pricing = pricing_from_model(entry) if isinstance(entry, dict) else None
        if pricing is not None:
            cost.register(entry["id"], pricing)


async def _load(settings: Settings) -> None:
    key = _key(settings.base_url)
    fresh = False
    try:
        data, source, failure = await _fetch(settings, MAX_AGE_S, False)
        fresh = failure is None
        if source != "seed":
            _register(data)
    finally:
        _loaded[key] = (time.monotonic(), fresh)


async def ensure_prices(settings: Settings) -> None:
    """Register OpenRouter's live prices of audio models in cost.py (cache or network), once per
    process and base URL — again after a day, or 10 minutes after a failed fetch. Only for the
    OpenRouter dialect; never raises; a repeated call costs a dict lookup. Concurrent first calls
    share one fetch."""
    try:
        if settings.effective_dialect != "openrouter":
            return
        key = _key(settings.base_url)
        last = _loaded.get(key)
        if last is not None and time.monotonic() - last[0] < (MAX_AGE_S if last[1] else RETRY_S):
            return
        loop = asyncio.get_running_loop()
        task = _inflight.get(key)
        if task is None or task.done() or task.get_loop() is not loop:
            task = _inflight[key] = loop.create_task(_load(settings))
        await asyncio.shield(task)  # a cancelled caller leaves the shared fetch running
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.debug("loading live prices failed: %r", exc)


def reset() -> None:
    """Forget registered live prices and which base URLs were loaded (tests; after a price change
    you want picked up at once, ``models_table(refresh=True)`` is the user-facing way)."""
    cost.clear_registered()
    _loaded.clear()
    _inflight.clear()


# -- the table --------------------------------------------------------------------------------
def _context_length(entry: dict) -> int | None:
    for name in ("context_length", "max_context_length", "max_model_len"):
        value = entry.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _row(entry: dict, source: str) -> dict | None:
    nan = float("nan")
    row = {
        "id": entry["id"],
        "name": entry.get("name") or entry["id"],
        "context_length": _context_length(entry),
        "prompt_usd_per_m": nan,
        "completion_usd_per_m": nan,
        "audio_usd_per_minute": nan,
        "audio_usd_per_m_tokens": nan,
        "source": source,
    }
    if "architecture" in entry:  # OpenRouter's shape: audio models only, priced from the list
        if not _has_audio_input(entry):
            return None
        pricing = entry["pricing"] if isinstance(entry.get("pricing"), dict) else {}
        prompt, completion = _price(pricing.get("prompt")), _price(pricing.get("completion"))
        row["prompt_usd_per_m"] = nan if prompt is None else prompt * 1e6
        row["completion_usd_per_m"] = nan if completion is None else completion * 1e6
        audio = audio_price(entry)
        if audio is not None:
            unit, usd = audio
            row["audio_usd_per_minute" if unit == "second" else "audio_usd_per_m_tokens"] = (
                usd * 60 if unit == "second" else usd * 1e6
            )
        return row
    # Mistral's or vLLM's list: no prices; skip models that say they take no audio
    capabilities = entry.get("capabilities")
    if isinstance(capabilities, dict) and capabilities.get("audio") is False:
        return None
    seed = cost.PRICES.get(entry["id"])
    if seed is not None:
        row.update(
            prompt_usd_per_m=seed.prompt * 1e6,
            completion_usd_per_m=seed.completion * 1e6,
            audio_usd_per_minute=seed.audio_second * 60,
        )
    elif (per_second := TRANSCRIPTION_PRICES.get(entry["id"])) is not None:  # billed by the minute of audio
        row["audio_usd_per_minute"] = per_second * 60
    return row


def table(models: list[dict], source: str) -> pd.DataFrame:
    """The audio-capable models of a /models list as a DataFrame sorted by id."""
    import pandas as pd

    rows = [r for r in (_row(e, source) for e in models if isinstance(e, dict) and "id" in e) if r]
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["context_length"] = df["context_length"].astype("Int64")
    df = df.sort_values("id", kind="stable").reset_index(drop=True)
    df.attrs["source"] = source
    return df


def models_table(settings: Settings | None = None, *, refresh: bool = False) -> pd.DataFrame:
    """Audio-capable models with their prices: ``id, name, context_length, prompt_usd_per_m,
    completion_usd_per_m, audio_usd_per_minute, audio_usd_per_m_tokens, source`` (``source`` —
    also in ``df.attrs["source"]`` — is live, cached or seed). Audio billed per second shows in
    ``audio_usd_per_minute``, audio billed per token in ``audio_usd_per_m_tokens``. For endpoints
    whose /models has no prices (Mistral, vLLM) every listed model appears, priced from cost.PRICES
    where known (NaN otherwise). ``refresh`` fetches even when the cache is fresh; a live list also
    updates the prices estimates use (OpenRouter dialect)."""
    from .loop import LOOP
    from .settings import Settings

    settings = settings or Settings.resolve()

    async def load() -> tuple[list[dict], str, str | None]:
        data, source, failure = await _fetch(settings, MAX_AGE_S, refresh)
        if source != "seed" and settings.effective_dialect == "openrouter":
            _register(data)
        return data, source, failure

    data, source, failure = LOOP.run(load())
    df = table(data, source)
    df.attrs["failure"] = failure  # why the list could not be fetched (None: it was not asked, or came)
    return df
