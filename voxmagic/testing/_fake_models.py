"""The local server's model catalogue: ``GET {prefix}/models`` in each dialect's shape.

voxmagic reads prices and modalities from this list (``voxmagic.prices``), so it lives apart
from the HTTP layer as one pure function of the dialect and the configured prices, easy to read
against the real services' documentation:

* OpenRouter — every field its SDK's ``ModelsListResponse`` requires; prices as USD strings
  (per token, Voxtral's audio per second), the Voxtral models plus one text-only model.
* Mistral — ``{"object": "list", "data": [...]}`` with ``capabilities``; no prices.
* vLLM — OpenAI's list with ``permission`` entries and ``max_model_len``; no prices.
"""

from __future__ import annotations

from typing import Any

from ._fake_answers import PRICE_AUDIO_SECOND, PRICE_COMPLETION, PRICE_PROMPT
from ._fake_requests import MODELS

__all__ = ["models_payload"]

CREATED = 1761782400  # 2025-10-30, when OpenRouter listed Voxtral Small
TEXT_ONLY = "mistralai/mistral-small-3.2-24b-instruct"
_SUPPORTED_PARAMETERS = [
    "frequency_penalty",
    "max_tokens",
    "presence_penalty",
    "response_format",
    "seed",
    "stop",
    "structured_outputs",
    "temperature",
    "tool_choice",
    "tools",
    "top_p",
]


def models_payload(dialect: str, model_prices: dict | None = None) -> dict:
    """The body of GET /models. ``model_prices`` (``{model: {"prompt"|"completion"|"audio": USD}}``)
    overrides OpenRouter's listed prices: partial entries merge, unknown ids are added as audio
    models. The other dialects list no prices and ignore it."""
    if dialect == "mistral":
        return _mistral()
    if dialect != "openrouter":
        return _vllm(dialect)
    return _openrouter(model_prices or {})


def _usd(value: Any) -> str:
    """OpenRouter writes plain decimals: 1e-07 -> "0.0000001"; strings pass through."""
    return value if isinstance(value, str) else f"{value:.12f}".rstrip("0").rstrip(".") or "0"


def _title(model: str) -> str:
    return "Mistral: " + model.split("/")[-1].replace("-", " ").title()


def _mistral() -> dict:
    models = [*((m, True) for m in MODELS["mistral"]), ("mistral-small-latest", False)]
    return {
        "object": "list",
        "data": [
            {
                "id": m,
                "object": "model",
                "created": CREATED,
                "owned_by": "mistralai",
                "name": m,
                "description": _title(m),
                "max_context_length": 32768,
                "aliases": [],
                "deprecation": None,
                "type": "base",
                "default_model_temperature": 0.2,
                "capabilities": {
                    "completion_chat": True,
                    "completion_fim": False,
                    "function_calling": True,
                    "fine_tuning": False,
                    "vision": not audio,
                    "classification": False,
                    "audio": audio,
                },
            }
            for m, audio in models
        ],
    }


def _vllm(dialect: str) -> dict:
    return {
        "object": "list",
        "data": [
            {
                "id": m,
                "object": "model",
                "created": CREATED,
                "owned_by": "vllm",
                "root": m,
                "parent": None,
                "max_model_len": 32768,
                "permission": [
                    {
                        "id": f"modelperm-{m.split('/')[-1].lower()}",
                        "object": "model_permission",
                        "created": CREATED,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
            for m in MODELS[dialect]
        ],
    }


def _openrouter(model_prices: dict) -> dict:
    voxtral = {"prompt": PRICE_PROMPT, "completion": PRICE_COMPLETION, "audio": PRICE_AUDIO_SECOND}
    listed = {m: dict(voxtral) for m in MODELS["openrouter"]}
    listed[TEXT_ONLY] = {"prompt": 0.05e-6, "completion": 0.1e-6}
    for model, prices in model_prices.items():
        listed[model] = {**listed.get(model, voxtral), **prices}
    data = [_openrouter_entry(m, p) for m, p in listed.items()]
    return {"data": data, "links": {"next": None}, "total_count": len(data)}


def _openrouter_entry(model: str, prices: dict) -> dict:
    audio = model != TEXT_ONLY
    pricing = {k: _usd(v) for k, v in prices.items()}
    if audio:
        description = (
            "Voxtral adds audio input to a Mistral text model: transcription, translation "
            "and audio understanding. Input audio is priced at "
            f"${float(pricing.get('audio', 0)) * 1e6:g} per million seconds."
        )
    else:
        description = "Mistral Small 3.2 24B, a text and image model without audio input."
    inputs = ["text", "audio"] if audio else ["text", "image"]
    context = 32768 if audio else 131072
    return {
        "id": model,
        "canonical_slug": model,
        "hugging_face_id": None,
        "name": _title(model),
        "created": CREATED,
        "description": description,
        "context_length": context,
        "architecture": {
            "modality": "+".join(inputs) + "->text",
            "input_modalities": inputs,
            "output_modalities": ["text"],
            "tokenizer": "Mistral",
            "instruct_type": None,
        },
        "pricing": pricing,
        "top_provider": {"context_length": context, "max_completion_tokens": None, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": list(_SUPPORTED_PARAMETERS),
        "default_parameters": {"temperature": 0.2, "top_p": 0.95} if audio else None,
        "supported_voices": None,
        "links": {"details": f"/api/v1/models/{model}/endpoints"},
        "expiration_date": None,
        "knowledge_cutoff": None,
    }
