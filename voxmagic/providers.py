"""Where Voxtral is served and how each service is spoken to — every provider fact in one place.

A leaf: it imports nothing of voxmagic, so the notebook layer can name the providers when the
extension loads (no httpx, numpy or pandas) and every other module asks here instead of keeping
its own copy of a URL, a key variable, a MIME type or a rule.

Dialects are the request shapes: ``"openrouter"`` (OpenRouter's chat completions),
``"mistral"`` (Mistral's API: its chat audio part is a bare base64 string, and its
transcriptions endpoint refuses timestamps together with a language) and ``"openai"`` (vLLM and
other OpenAI-compatible servers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigError

DEFAULT_MODEL = "mistralai/voxtral-small-24b-2507"
DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
KEY_ENV = "OPENROUTER_API_KEY"
TRANSCRIPTIONS_ENDPOINT = "audio/transcriptions"
TRANSCRIPTION_DIALECTS = ("mistral", "openai")
#: Containers a dialect's chat endpoint is documented to decode from ``input_audio``, so that a
#: file may go as it is (:mod:`voxmagic.as_is`): OpenRouter names ``m4a`` among its formats;
#: Mistral's chat part carries no format name, and vLLM decodes with whatever its host has.
UNCHANGED_FORMATS: dict[str, tuple[str, ...]] = {"openrouter": ("mp3", "m4a"), "mistral": ("mp3",), "openai": ("mp3",)}


@dataclass(frozen=True)
class Provider:
    """Where Voxtral is served, and how that service is spoken to."""

    name: str
    base_url: str
    key_env: str
    model: str  # for chat completions
    dialect: str
    transcription_model: str | None  # for POST /audio/transcriptions; None: no such endpoint
    has_transcriptions: bool = False  # used for plain transcripts unless told otherwise
    key_example: str = "..."


PROVIDERS: dict[str, Provider] = {
    "openrouter": Provider(
        "openrouter", DEFAULT_BASE_URL, KEY_ENV, DEFAULT_MODEL, "openrouter", None, key_example="sk-or-..."
    ),
    "mistral": Provider(
        "mistral",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        "voxtral-small-latest",
        "mistral",
        "voxtral-mini-latest",
        has_transcriptions=True,
    ),
    # e.g. `vllm serve mistralai/Voxtral-Small-24B-2507 ...`; it has /audio/transcriptions too, but
    # another OpenAI-compatible server may not, so it is used only when asked for (--api transcriptions)
    "openai-compatible": Provider(
        "openai-compatible",
        "http://localhost:8000/v1",
        "OPENAI_API_KEY",
        "mistralai/Voxtral-Small-24B-2507",
        "openai",
        "mistralai/Voxtral-Small-24B-2507",
    ),
}
PROVIDER_NAMES = tuple(PROVIDERS)
_BY_DIALECT = {"openrouter": "openrouter", "mistral": "mistral", "openai": "openai-compatible"}
#: Every environment variable that may hold a key: all of them are kept out of output.
KEY_ENVS = tuple(dict.fromkeys(p.key_env for p in PROVIDERS.values()))


# Realtime transcription over a WebSocket, by dialect: the path under the base URL. Mistral's takes
# pcm_s16le and the model in the query (docs.mistral.ai/capabilities/audio_transcription/
# realtime_transcription: ``wss://api.mistral.ai/v1/audio/transcriptions/realtime?model=
# voxtral-mini-transcribe-realtime-2602``); vLLM serves ``/v1/realtime`` only when its model is a
# realtime one (named in ``session.update``; elsewhere the handshake is refused). OpenRouter has none.
REALTIME_PATHS = {"mistral": "audio/transcriptions/realtime", "openai": "realtime"}
REALTIME_MODEL = "voxtral-mini-transcribe-realtime-2602"  # Mistral's; vLLM is told the served model


def dialect_for(base_url: str) -> str:
    """Guess the server's dialect from its URL: OpenRouter, Mistral's API, or plain OpenAI-style."""
    if "openrouter.ai" in base_url or base_url.rstrip("/").endswith("/api/v1"):
        return "openrouter"
    if "api.mistral.ai" in base_url:
        return "mistral"
    return "openai"


def provider_name_for(base_url: str | None) -> str:
    """The provider a base URL belongs to (OpenRouter when none is given)."""
    return _BY_DIALECT[dialect_for(base_url)] if base_url else "openrouter"


def is_loopback(url: str) -> bool:
    """A server on this machine (a self-hosted vLLM, voxmagic's local server)."""
    return (urlsplit(url).hostname or "") in ("localhost", "127.0.0.1", "::1")


def needs_key(provider: str, base_url: str) -> bool:
    """A self-hosted OpenAI-compatible server on this machine usually runs without a key."""
    return not (provider == "openai-compatible" and is_loopback(base_url))


def sends_timestamps(dialect: str, language: str | None) -> bool:
    """Whether a transcription can come with timed segments. Mistral's docs
    (docs.mistral.ai/capabilities/audio_transcription): "``timestamp_granularities`` is currently
    not compatible with ``language``, please use either one or the other"."""
    return not (dialect == "mistral" and language)


# What an upload's file part is labelled (multipart) and what a player is told; raw PCM has no
# container a server could sniff, so it has no entry.
MIME_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "aiff": "audio/aiff",
    "webm": "audio/webm",
}

# USD per second of audio on the transcriptions endpoint. Sources:
# - docs.mistral.ai/models/voxtral-mini-transcribe-25-07: Voxtral Mini Transcribe 25.07,
#   "$0.002 /Min" (it launched at $0.001/min in July 2025);
# - Mistral's "Voxtral transcribes at the speed of sound" (mistral.ai/news/voxtral-transcribe-2,
#   Feb 2026): Voxtral Mini Transcribe V2 (voxtral-mini-2602) at $0.003/min;
# - docs.mistral.ai/capabilities/audio_transcription/offline_transcription: "voxtral-mini-latest
#   for transcription points to voxtral-mini-2602".
# Self-hosted (vLLM) models have no price here: their cost is unknown to voxmagic.
# Realtime (the live captions' WebSocket): $0.006/min for Voxtral Mini Transcribe 2 Realtime
# (mistral.ai/news/voxtral-transcribe-2: "$0.006 per minute" for the realtime model).
TRANSCRIPTION_PRICES: dict[str, float] = {
    "voxtral-mini-2507": 0.002 / 60,
    "voxtral-mini-2602": 0.003 / 60,
    "voxtral-mini-latest": 0.003 / 60,
    "voxtral-mini-transcribe-realtime-2602": 0.006 / 60,
}


# Mistral's context_bias (docs.mistral.ai, "bias context and vocabulary"; vlebert/supervoxtral#2):
# up to 100 terms, each without spaces or commas (^[^,\s]+$), sent as one form field per term.
MAX_BIAS_TERMS = 100


def bias_terms(vocabulary: Sequence[str]) -> tuple[str, ...]:
    """Terms as Mistral's ``context_bias`` takes them: a multi-word term joined with ``_``
    ("Alder Creek" → ``Alder_Creek``), commas dropped, each once, in order."""
    terms = ("_".join(term.replace(",", " ").split()) for term in vocabulary)
    return tuple(dict.fromkeys(t for t in terms if t))


def vocabulary(words: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"Voxtral, OpenRouter,pgvector"`` or a list, as the terms a user meant."""
    if words is None or (isinstance(words, (str, list, tuple)) and not words):
        return ()
    if not isinstance(words, (str, list, tuple)):
        raise ConfigError(f"vocab={words!r:.40}: give the terms as text ('Voxtral, pgvector') or a list")
    items = words.split(",") if isinstance(words, str) else list(words)
    return tuple(dict.fromkeys(" ".join(str(w).split()) for w in items if str(w).strip()))


def transcription_price(model: str) -> float | None:
    """USD per audio second on the transcriptions endpoint; None when voxmagic does not know it."""
    return TRANSCRIPTION_PRICES.get(model)
