"""What every request of a batch shares: a :class:`Batch`, built by :func:`transcription_batch` or
:func:`question_batch` — the instruction, the endpoint, how long audio is cut, the cache — and
sent over many sources by :func:`voxmagic.batch_run.run`.
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Any

from . import audio as _audio
from . import limits
from .as_is import MP3_ONLY, unchanged_formats
from .audio import AudioSource, EncodedAudio
from .chat import ChatRequest, Params
from .cost import pricing_for
from .errors import ConfigError
from .prompts import extraction_prompt, transcription_prompt
from .providers import sends_timestamps, transcription_price
from .runner import Caching, bounded
from .settings import Settings
from .subtitles import CUE_CHUNK_S
from .transcriptions import TranscriptionRequest, check_speakers_and_words

DEFAULT_CHUNK_S = limits.DEFAULT_CHUNK_MINUTES * 60
STREAM_ABOVE_S = 120  # with stream=None, only chunks longer than this stream (keep-alives)
PIPELINE = "v6"  # bump when decoding/encoding changes, so prepared-source records are not reused
MAX_RESPLITS = 3
Gate = AbstractAsyncContextManager[Any]  # how many requests may be in flight
DIARIZE_OVERLAP_S = 20.0  # speakers heard on both sides of a cut tie the chunks' labels together


@dataclass(frozen=True)
class Batch:
    """One job's fixed inputs: what every request of it shares."""

    prompt: str
    settings: Settings
    params: Params
    audio_format: str = _audio.DEFAULT_FORMAT
    max_chunk_s: float | None = DEFAULT_CHUNK_S
    caching: Caching = Caching()
    stream: bool | None = None  # None: stream long chunks only
    system: str | None = None
    # a transcript's length follows from its audio, so max_tokens gets a bound from the duration;
    # an answer to a question (or a JSON object) does not
    transcript: bool = True
    # "chat" (completions with an instruction) or "transcriptions" (a speech-to-text endpoint
    # that also gives timed segments; only for plain transcripts)
    endpoint: str = "chat"
    language: str | None = None  # for the transcriptions endpoint (chat has it in the prompt)
    diarize: bool = False  # speakers labelled (a transcriptions endpoint that does it)
    vocabulary: tuple[str, ...] = ()  # for the transcriptions endpoint (chat has it in the prompt)

    def __post_init__(self) -> None:
        limits.check("max_chunk_s", self.max_chunk_s)
        limits.text("system", self.system, "the instructions")

    @property
    def structured(self) -> bool:
        """Each answer is a JSON object, parsed into table columns; they cannot be stitched."""
        return self.params.wants_json

    def request(self, clip: EncodedAudio) -> ChatRequest | TranscriptionRequest:
        """A table row has nothing to show until its transcript is whole, so short clips are not
        streamed (half the work per request); long ones are, so keep-alives hold the connection."""
        if self.endpoint == "transcriptions":
            return TranscriptionRequest(
                clip,
                self.settings.transcription_model or "",
                self.language,
                self.params.temperature,
                dialect=self.transcription_dialect,
                diarize=self.diarize,
                vocabulary=self.vocabulary,
            )
        stream = self.stream if self.stream is not None else clip.duration_s > STREAM_ABOVE_S
        params = bounded(self.params, clip.duration_s) if self.transcript and not self.structured else self.params
        return ChatRequest(
            self.prompt,
            (clip,),
            replace(params, stream=stream),
            self.settings.model,
            self.system,
            self.settings.effective_dialect,
        )

    def audio_price(self) -> float | None:
        """USD per second of audio sent: what each second of silence trimmed saves."""
        if self.endpoint == "transcriptions":
            return transcription_price(self.settings.transcription_model or "")
        return pricing_for(self.settings.model).audio_second

    @property
    def transcription_dialect(self) -> str:
        return "mistral" if self.settings.effective_dialect == "mistral" else "openai"

    @property
    def overlap_s(self) -> float:
        """Chunks of a diarized file overlap, so that speakers heard on both sides of a cut can be
        given the same labels (see :func:`voxmagic.stitch.segment_rows`)."""
        return DIARIZE_OVERLAP_S if self.diarize else 0.0

    def check(self) -> Batch:
        """What would fail every request, before any is made: no key, no such endpoint."""
        self.settings.check()
        if self.diarize and (self.endpoint != "transcriptions" or self.settings.effective_dialect != "mistral"):
            raise ConfigError(f"{self.settings.provider} cannot label speakers ({self.endpoint} endpoint): --diarize "
                              "needs Mistral's transcriptions endpoint, use --provider mistral")  # fmt: skip
        if self.endpoint == "transcriptions":
            check_speakers_and_words(self.transcription_dialect, self.diarize, self.language, self.vocabulary)
        if self.endpoint == "transcriptions" and not self.settings.transcription_model:
            raise ConfigError(
                f"{self.settings.provider} has no transcriptions endpoint for Voxtral; use "
                "the chat endpoint (--api chat, api='chat')"
            )
        return self

    @property
    def unchanged_formats(self) -> tuple[str, ...]:
        """Containers a file may be uploaded in as it is (see :mod:`voxmagic.as_is`)."""
        return MP3_ONLY if self.endpoint == "transcriptions" else unchanged_formats(self.settings.effective_dialect)

    def fingerprint(self, source: AudioSource) -> str | None:
        digest = source.content_digest()
        if digest is None:
            return None
        unchanged = ",".join(self.unchanged_formats)
        key = f"{digest}|{self.audio_format}|{self.max_chunk_s or None}|{self.overlap_s}|{unchanged}|{PIPELINE}"
        return hashlib.sha256(key.encode()).hexdigest()


def transcription_batch(
    settings: Settings,
    params: Params,
    *,
    stream: bool | None = None,
    language: str | None = None,
    hint: str | None = None,
    prompt: str | None = None,
    translate_to: str | None = None,
    audio_format: str = _audio.DEFAULT_FORMAT,
    max_chunk_s: float | None = DEFAULT_CHUNK_S,
    caching: Caching = Caching(),
    api: str | None = None,
    timed: bool = False,
    diarize: bool = False,
    vocabulary: tuple[str, ...] = (),
) -> Batch:
    """The batch that transcribes (or, with a JSON ``response_format``, extracts from) each source:
    its instruction, its endpoint — a provider's speech-to-text endpoint for plain transcripts
    where it has one (cheaper; timed segments and speakers come with it) — and, when rows need
    times (``timed``: segments, subtitles) but the endpoint gives none, 30 s chunks cut at pauses
    (with a schema, ``max_chunk_s`` stays as given: one JSON answer per chunk)."""
    plain = prompt is None and not hint and not translate_to and not params.wants_json
    limits.flag("segments", timed)
    for name, value in (("prompt", prompt), ("hint", hint), ("translate_to", translate_to)):
        limits.text(name, value)
    if prompt is not None and hint:  # the hint lives in the instruction prompt= replaces
        raise ConfigError("prompt= replaces the whole instruction, so hint= would be dropped: put the hint in it")
    if language is not None and not isinstance(language, str):
        raise ConfigError(f"language={language!r}: give its name or code as text, e.g. 'en' or 'French'")
    if api == "transcriptions" and not plain:  # a speech-to-text endpoint takes audio, not instructions
        given = [n for n, v in (("--translate-to", translate_to), ("--prompt (hint=)", hint),
                                ("prompt=", prompt is not None), ("--schema", params.wants_json)) if v]  # fmt: skip
        raise ConfigError(
            f"--api transcriptions (api='transcriptions') takes no instruction, so {', '.join(given)} would be "
            "dropped: leave out --api (they go by chat), or leave them out"
        )
    if prompt is None:
        prompt = (
            extraction_prompt(language, hint)
            if params.wants_json
            else transcription_prompt(language, hint, translate_to, vocabulary)
        )
    if api not in (None, "chat", "transcriptions"):
        raise ConfigError(f"api={api!r}: use 'chat' or 'transcriptions'")
    endpoint = api or ("transcriptions" if (plain or diarize) and settings.has_transcriptions else "chat")
    gives_times = endpoint == "transcriptions" and (sends_timestamps(settings.effective_dialect, language) or diarize)
    if timed and not gives_times and not params.wants_json:  # (a JSON answer per chunk as asked)
        max_chunk_s = min(max_chunk_s or CUE_CHUNK_S, CUE_CHUNK_S)  # a segment per short chunk
    return Batch(prompt, settings, params, audio_format, max_chunk_s, caching, stream, endpoint=endpoint,
                 language=language, diarize=diarize, vocabulary=vocabulary)  # fmt: skip


def question_batch(
    settings: Settings,
    params: Params,
    prompt: str,
    *,
    stream: bool | None = None,
    system: str | None = None,
    audio_format: str = _audio.DEFAULT_FORMAT,
    caching: Caching = Caching(),
) -> Batch:
    """The batch that asks ``prompt`` about each source: whole sources, no transcript bound."""
    limits.text("prompt", prompt, "the question", required=True)
    return Batch(prompt, settings, params, audio_format, None, caching, stream, system=system, transcript=False)
