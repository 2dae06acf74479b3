"""Requests to a dedicated speech-to-text endpoint, ``POST {base_url}/audio/transcriptions``.

Mistral's API and a self-hosted vLLM both offer it next to chat completions. It takes one file as
``multipart/form-data`` and answers the transcript with timed segments, billed per second of
audio instead of per token. A :class:`TranscriptionRequest` offers the surface the rest of
voxmagic reads from a :class:`~voxmagic.chat.ChatRequest` (``audio``, ``audio_seconds``,
``model``, ``text``, ``params``, ``body()``, ``cache_key()``, ``preview()``), so history, cache
and the cost ledger treat both alike; :meth:`voxmagic.client.Client.transcription` sends it.

The two dialects, as their sources describe them:

* ``"mistral"`` (https://api.mistral.ai/v1) — form fields ``model``, ``file``, ``language``,
  ``temperature``, ``timestamp_granularities`` (repeated, no brackets: mistralai/client-python
  ``models/audiotranscriptionrequest.py`` and ``utils/forms.py``, which sends a list as one field
  per value). The answer is ``{model, text, language, segments: [{text, start, end, type:
  "transcription_segment"}], usage: {prompt_audio_seconds, prompt_tokens, completion_tokens,
  total_tokens}}`` (``models/transcriptionresponse.py``, ``transcriptionsegmentchunk.py``,
  ``usageinfo.py``). Mistral's docs (docs.mistral.ai/capabilities/audio_transcription): the
  endpoint "currently supports ``voxtral-mini-latest``", and "``timestamp_granularities`` is
  currently not compatible with ``language``, please use either one or the other" — so with a
  language this dialect asks for no timestamps (the text says so) rather than be refused.
* ``"openai"`` (vLLM, OpenAI-style) — the same fields, plus ``response_format`` (``json`` →
  ``{text, usage: {type: "duration", seconds}}``; ``verbose_json`` → ``{text, language, duration
  (a string), segments: [{id, start, end, text, ...}]}``) and ``timestamp_granularities[]``
  (vllm-project/vllm ``entrypoints/openai/speech_to_text/protocol.py``: ``TranscriptionRequest``,
  ``TranscriptionResponse``, ``TranscriptionResponseVerbose``; ``speech_to_text.py`` rounds the
  usage seconds up).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .audio import EncodedAudio
from .chat import Params, elided
from .cost import Estimate
from .errors import ConfigError
from .providers import (
    MAX_BIAS_TERMS,
    MIME_TYPES,
    TRANSCRIPTION_DIALECTS,
    TRANSCRIPTIONS_ENDPOINT,
    bias_terms,
    sends_timestamps,
    transcription_price,
)

DEFAULT_MODEL = "voxtral-mini-latest"


def billed_seconds(duration_s: float) -> int:
    """Seconds a provider bills for a clip: the duration rounded up (as vLLM's usage reports it)."""
    return max(1, math.ceil(duration_s - 1e-9))


def check_speakers_and_words(dialect: str, diarize: bool, language: str | None, vocabulary: tuple[str, ...]) -> None:
    """What Mistral would refuse with a 422 for every chunk: said once, before any request."""
    if diarize and dialect != "mistral":
        raise ConfigError("--diarize (diarize=True) needs Mistral's transcriptions endpoint, which labels "
                          "speakers: use --provider mistral")  # fmt: skip
    if diarize and language:
        raise ConfigError("Mistral labels speakers only with segment timestamps, which it does not combine "
                          "with a language: leave out --language (it is detected) or --diarize")  # fmt: skip
    if dialect == "mistral" and len(bias_terms(vocabulary)) > MAX_BIAS_TERMS:
        raise ConfigError(f"--vocab has {len(bias_terms(vocabulary))} terms; Mistral's context_bias takes "
                          f"at most {MAX_BIAS_TERMS}")  # fmt: skip


@dataclass(frozen=True)
class TranscriptionRequest:
    """One clip for ``POST {base_url}/audio/transcriptions`` (multipart form).

    ``timestamps`` asks for segment timestamps (Mistral: ``timestamp_granularities=segment``;
    ``"openai"``: ``response_format=verbose_json`` and ``timestamp_granularities[]=segment``).
    ``dialect`` is ``"mistral"`` or ``"openai"`` (vLLM and other OpenAI-style servers).
    """

    clip: EncodedAudio
    model: str = DEFAULT_MODEL
    language: str | None = None
    temperature: float | None = None
    timestamps: bool = True
    dialect: str = "mistral"
    diarize: bool = False  # a speaker_id per segment (Mistral only; needs segment timestamps)
    vocabulary: tuple[str, ...] = ()  # words to spell as given: Mistral's context_bias, vLLM's prompt

    def __post_init__(self) -> None:
        if not isinstance(self.clip, EncodedAudio):
            raise ConfigError(f"a transcription needs one EncodedAudio clip, not {type(self.clip).__name__}")
        if self.clip.format not in MIME_TYPES:
            raise ConfigError(
                f"the transcriptions endpoint needs a container format (mp3, flac, wav, ...), "
                f"not {self.clip.format!r}; prepare the audio with another format"
            )
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"model must be a non-empty string, not {self.model!r}")
        if self.language is not None and (not isinstance(self.language, str) or not self.language.strip()):
            raise ConfigError(f"language must be a language code such as 'en' or 'fr', not {self.language!r}")
        if self.dialect not in TRANSCRIPTION_DIALECTS:
            raise ConfigError(
                f"dialect={self.dialect!r}: the transcriptions endpoint speaks 'mistral' (Mistral's "
                "API) or 'openai' (vLLM and other OpenAI-style servers)"
            )
        Params(stream=False, temperature=self.temperature)  # checks the temperature's range
        check_speakers_and_words(self.dialect, self.diarize, self.language, self.vocabulary)

    # -- the surface shared with ChatRequest -----------------------------------------------
    @property
    def audio(self) -> tuple[EncodedAudio, ...]:
        return (self.clip,)

    @property
    def audio_seconds(self) -> float:
        return self.clip.duration_s

    @property
    def params(self) -> Params:
        return Params(stream=False, temperature=self.temperature)

    @property
    def sends_timestamps(self) -> bool:
        """Whether segment timestamps are asked for: Mistral refuses them together with a language."""
        return self.timestamps and sends_timestamps(self.dialect, self.language)

    @property
    def text(self) -> str:
        """A short description in place of a prompt (history's prompt column, previews)."""
        bits = [f"language={self.language}" if self.language else "language detected"]
        if self.temperature is not None:
            bits.append(f"temperature={self.temperature:g}")
        if self.timestamps and not self.sends_timestamps:
            bits.append("no timestamps (Mistral does not combine them with a language)")
        elif not self.timestamps and not self.diarize:
            bits.append("no timestamps")
        if self.diarize:
            bits.append("speakers labelled")
        if self.vocabulary:
            bits.append(f"vocabulary: {', '.join(self.vocabulary)}")
        return "transcriptions endpoint, " + ", ".join(bits)

    all_text = text  # every text the request carries: none besides the description
    question = text  # what is asked now (history's prompt)

    def form_fields(self) -> list[tuple[str, str]]:
        """The form fields other than the file, in order; repeated names for list values."""
        fields: list[tuple[str, str]] = [("model", self.model)]
        if self.language:
            fields.append(("language", self.language))
        if self.temperature is not None:
            fields.append(("temperature", f"{self.temperature:g}"))
        if self.dialect == "openai":
            fields.append(("response_format", "verbose_json" if self.timestamps else "json"))
            if self.timestamps:
                fields.append(("timestamp_granularities[]", "segment"))
            if self.vocabulary:  # OpenAI-style servers take a prompt to guide spelling
                fields.append(("prompt", f"Vocabulary: {', '.join(self.vocabulary)}."))
            return fields
        if self.sends_timestamps or self.diarize:
            fields.append(("timestamp_granularities", "segment"))
        if self.diarize:
            fields.append(("diarize", "true"))
        fields += [("context_bias", term) for term in bias_terms(self.vocabulary)]
        return fields

    def upload(self) -> tuple[str, bytes, str]:
        """The file part: (file name, bytes, content type). The name never reveals a local path."""
        return f"audio.{self.clip.format}", self.clip.data, MIME_TYPES[self.clip.format]

    def body(
        self, *, elide_audio: bool = False, audio_data: Callable[[EncodedAudio], Any] | None = None
    ) -> dict[str, Any]:
        """The form as a dict (a repeated field becomes a list); ``file`` holds the bytes, or
        ``<N bytes of mp3, D s>`` with ``elide_audio``, or what ``audio_data`` makes of the clip."""
        if elide_audio:
            audio_data = elided
        out: dict[str, Any] = {}
        for name, value in self.form_fields():
            if name in out:
                out[name] = [*out[name], value] if isinstance(out[name], list) else [out[name], value]
            else:
                out[name] = [value] if name.startswith("timestamp_granularities") else value
        out["file"] = audio_data(self.clip) if audio_data else self.clip.data
        return out

    def cache_key(self, base_url: str) -> str:
        """Same endpoint, form fields and audio bytes (by their sha256, never the bytes) ⇒ same key.

        The clip's label and position in its source do not count; the endpoint's name keeps the key
        apart from a chat request's."""
        body = self.body(audio_data=lambda clip: f"sha256:{clip.sha256}")
        blob = json.dumps(
            {"base_url": base_url.rstrip("/"), "endpoint": TRANSCRIPTIONS_ENDPOINT, "body": body}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def preview(self) -> str:
        """The form as JSON with the audio elided (for --dry-run and logs); never includes a key."""
        return f"POST .../{TRANSCRIPTIONS_ENDPOINT} (multipart/form-data)\n" + json.dumps(
            self.body(elide_audio=True), indent=2, ensure_ascii=False
        )

    # -- cost -------------------------------------------------------------------------------
    def estimate(self) -> Estimate:
        """What the call may cost before it is sent: the clip's seconds (rounded up) at the
        endpoint's price; $0 for a model without a known price (a self-hosted server)."""
        price = transcription_price(self.model)
        usd = price * billed_seconds(self.clip.duration_s) if price is not None else 0.0
        return Estimate(usd, 0, 0, self.clip.duration_s)
