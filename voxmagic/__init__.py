"""voxmagic: talk to audio from a notebook (Voxtral via OpenRouter or any OpenAI-compatible endpoint).

Names are resolved lazily so ``%load_ext voxmagic`` and ``import voxmagic`` stay cheap: pandas,
PyAV and httpx load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # ask, transcribe and ask_each show live views in a Jupyter kernel (voxmagic.notebook.calls);
    # elsewhere they are voxmagic.api's own functions
    "ask": "notebook.calls",
    "ask_async": "api",
    "transcribe": "notebook.calls",
    "transcribe_async": "api",
    "ledger": "api",
    "transcription_prompt": "prompts",
    "plan": "api",
    "history": "api",
    "Plan": "runner",
    "Conversation": "conversation",
    "ask_each": "notebook.calls",
    "ask_each_async": "api",
    "transcripts": "api",
    "Transcript": "subtitles",
    "Cue": "subtitles",
    "Job": "jobs",
    "Interrupted": "errors",
    "AudioSource": "audio",
    "EncodedAudio": "audio",
    "PCM": "audio",
    "as_source": "audio",
    "prepare": "audio",
    "encode": "audio",
    "Client": "client",
    "TextDelta": "streaming",
    "Retrying": "streaming",
    "Planned": "streaming",
    "Sent": "streaming",
    "CostLedger": "cost",
    "Pricing": "cost",
    "estimate": "cost",
    "audio_tokens": "cost",
    "Params": "chat",
    "ChatRequest": "chat",
    "TranscriptionRequest": "transcriptions",
    "Response": "results",
    "Usage": "results",
    "ToolCall": "results",
    "Settings": "settings",
    "VoxmagicError": "errors",
    "AudioError": "errors",
    "ConfigError": "errors",
    "BudgetError": "errors",
    "APIError": "errors",
    "BadRequestError": "errors",
    "NotFoundError": "errors",
    "AuthenticationError": "errors",
    "InsufficientCreditsError": "errors",
    "ModerationError": "errors",
    "RetryableError": "errors",
    "RateLimitError": "errors",
    "APITimeoutError": "errors",
    "ServerError": "errors",
    "APIConnectionError": "errors",
}

__all__ = sorted(_EXPORTS)


# What a first ``%%voxtral`` needs before its request leaves (numpy and httpx come with the first;
# PyAV, libsoxr and LAME decode and encode; httpcore, the TLS set-up and anyio's event-loop backend
# make the connection), in that order: from ``%load_ext`` on, in the background (see warmup.py).
# Then the live view (anywidget, ~0.1 s), only while no call has begun: a cell run at once shows
# it after sending. Not pandas (0.4 s): a first cell run at once would wait for it; tables import
# it when needed.
FIRST_CALL_MODULES = ("voxmagic.notebook.ask", "av", "soxr", "lameenc", "httpcore", "voxmagic.client:ready_to_connect")
AFTER_SENDING_MODULES = ("voxmagic.notebook.live_text",)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext voxmagic``: register the magics (their modules load only now) and start
    importing what the first call will need."""
    from . import warmup
    from .notebook.magics import VoxtralMagics

    ipython.register_magics(VoxtralMagics)
    warmup.start(FIRST_CALL_MODULES, then=AFTER_SENDING_MODULES)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext voxmagic``: remove the magics and their %config entry."""
    from .notebook.magics import MAGICS, VoxtralMagics

    manager = ipython.magics_manager
    for kind, names in MAGICS.items():
        for name in names:
            manager.magics[kind].pop(name, None)
    manager.registry.pop(VoxtralMagics.__name__, None)
    ipython.configurables[:] = [c for c in ipython.configurables if not isinstance(c, VoxtralMagics)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    try:  # submodules too: voxmagic.audio.prepare(...) after a plain `import voxmagic`
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise  # the submodule exists but needs something missing: say what
        raise AttributeError(f"module 'voxmagic' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
