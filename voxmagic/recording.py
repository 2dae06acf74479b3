"""A recording as it arrives from a microphone: 16 kHz mono PCM in blocks, cut at pauses into
pieces that are transcribed as they come (live captions), then one source for everything else.

The notebook's record/stop control (``voxmagic.notebook.recorder``) sends what the browser
records while it records; this module is the data half and knows nothing of widgets:
:class:`Take` collects the samples, finds where the speaker paused (the detector of
:mod:`voxmagic.silence`: Silero VAD, else loudness), transcribes each piece with the batch
runner (:func:`transcriber`), and when the recording stops becomes an :class:`AudioSource`
(an ``(array, 16000)`` source: ``%%voxtral clip``, ``voxmagic.transcribe(clip)``), a small Opus
copy for a player, and a transcript of the whole that replaces the captions.

Where the provider has a realtime transcription endpoint (Mistral's, vLLM's: :mod:`voxmagic.realtime`)
the captions come from it instead: every block goes to the session as it arrives and its deltas
grow the caption. If the session cannot be had (the handshake refused: 403 or 404 from an older
vLLM or one serving a model without realtime; no answer; an error event) the take says so in one
note and cuts pieces as above, from the first sample when nothing was captioned yet, else from
where the audio has got to: every sample is kept in the take either way, and the transcript of
the whole at the stop is made as always.

Why PCM and not the browser's MediaRecorder: measured in headless Chromium on 4 s of speech,
MediaRecorder's WebM/Opus (250 ms timeslices) came to 14,400 bytes a second and raw 16-bit PCM
at 16 kHz to 32,000 — 2.2 times the bytes, 256 kbit/s, nothing on any connection a notebook
runs over. But a WebM timeslice cannot be decoded alone: captions would decode the whole
growing container again at every pause (quadratic in the recording's length), and the samples
would pass through a lossy codec before the correlation the browser test checks. PCM arrives
as the samples themselves: appending is the whole decoding.

Threads: every method of a :class:`Take` runs on voxmagic's loop thread (:mod:`voxmagic.loop`),
where its captions are requested too; the callbacks are called there.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import limits
from .audio import AudioSource
from .codec import PCM, PREVIEW_BIT_RATE, SAMPLE_RATE, encode
from .errors import VoxmagicError
from .realtime import realtime_url, transcribe_stream
from .silence import detect, frame_rms

if TYPE_CHECKING:
    from .runner import Caching
    from .settings import Settings

MIN_PIECE_S = 1.0  # a caption's piece is at least this long ...
PAUSE_S = 0.3  # ... and ends in the middle of the first pause this long after that,
MAX_PIECE_S = 8.0  # or, when nobody pauses, at the quietest moment before this
CHECK_S = 0.25  # look for a pause each time this much more audio has arrived
DEFAULT_MAX_S = limits.DEFAULT_RECORDING_SECONDS  # a recording stops by itself after this long (see max_seconds)
NO_MICROPHONE = "no microphone here: {why}; pass a file instead: %%voxtral path/to/clip.wav"

Transcriber = Callable[[AudioSource], Awaitable[str]]
#: Realtime captions: stream the blocks, report the text each time it grows, return the whole.
Live = Callable[[AsyncIterator[bytes], Callable[[str], None]], Awaitable[str]]


def no_microphone(why: str) -> str:
    """The one line said where nothing can be recorded."""
    return NO_MICROPHONE.replace("{why}", why)


def check_max_seconds(seconds: float, spelled: str | None = "--max-seconds") -> float:
    return float(limits.check("max_seconds", seconds, spelled))


@dataclass
class Piece:
    """A stretch of the recording between two pauses (sample indices) and its caption."""

    start: int
    end: int
    speech: bool = True
    text: str | None = None  # None while its transcript is on its way
    error: str = ""


def next_cut(tail: np.ndarray, rate: int = SAMPLE_RATE) -> tuple[int, bool] | None:
    """Where the next piece of ``tail`` (samples not yet cut) ends, and whether it holds speech;
    None while it is too short or nobody has paused yet."""
    if tail.size < MIN_PIECE_S * rate:
        return None
    speech, hop, _, _ = detect(PCM(tail, rate))
    if not speech.any():  # nobody speaks: let it go, keeping a little where speech may begin
        return tail.size - round(PAUSE_S * rate), False
    edges = np.diff(np.concatenate(([0], (~speech).astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    first_speech = int(np.argmax(speech))
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        middle = (a + b) // 2 * hop
        if a > first_speech and (b - a) * hop >= PAUSE_S * rate and middle >= MIN_PIECE_S * rate:
            return middle, True
    if tail.size < MAX_PIECE_S * rate:
        return None
    rms = frame_rms(tail[: round(MAX_PIECE_S * rate)], hop)
    first = math.ceil(MIN_PIECE_S * rate / hop)
    return (first + int(np.argmin(rms[first:]))) * hop, True


class PieceTranscriber:
    """Transcribes a piece with the batch runner, as ``%voxtral_transcribe`` would (the provider's
    transcriptions endpoint where it has one): its text, or a :class:`VoxmagicError`. ``live`` is
    the provider's realtime session for captions (Mistral, vLLM), None where it has none."""

    def __init__(self, settings: Settings, language: str | None = None, caching: Caching | None = None):
        from .batch import transcription_batch
        from .chat import TRANSCRIPT_TEMPERATURE, Params
        from .runner import Caching

        self.batch = transcription_batch(
            settings,
            Params(temperature=TRANSCRIPT_TEMPERATURE),
            stream=False,
            language=language,
            caching=caching or Caching(),
        )
        self.live: Live | None = None
        if realtime_url(settings) is not None:

            async def live(blocks: AsyncIterator[bytes], on_text: Callable[[str], None]) -> str:
                return await transcribe_stream(settings, blocks, language=language, on_text=on_text)

            self.live = live

    async def __call__(self, source: AudioSource) -> str:
        from .batch_run import run

        row = (await run([source], self.batch, concurrency=1))[0]
        if row.get("error"):
            raise VoxmagicError(str(row["error"]))
        return str(row.get("text") or "").strip()


def transcriber(settings: Settings, language: str | None = None, caching: Caching | None = None) -> PieceTranscriber:
    """What transcribes a take's pieces and its whole (and, where it can, captions it live)."""
    return PieceTranscriber(settings, language, caching)


class Take:
    """One recording: ``waiting`` → ``recording`` → ``stopped``, or ``failed`` (no microphone,
    nothing recorded). :meth:`feed` blocks of little-endian int16 samples at 16 kHz as they arrive;
    :meth:`stop` makes the source. With ``transcribe``, pieces cut at pauses are captioned as they
    arrive and the whole is transcribed once stopped; with ``live`` too (by default the
    transcriber's own, :class:`PieceTranscriber`), the captions come from a realtime session, and
    from pieces only if it fails (``note`` says why).

    Callbacks (loop thread): ``on_change()`` after anything shown changed, ``on_stop(source)``,
    ``on_transcript(text)`` and ``on_fail(message)``."""

    def __init__(
        self,
        label: str = "recording",
        *,
        transcribe: Transcriber | None = None,
        live: Live | None = None,
        max_seconds: float = DEFAULT_MAX_S,
        on_change: Callable[[], None] | None = None,
        on_stop: Callable[[AudioSource], None] | None = None,
        on_transcript: Callable[[str], None] | None = None,
        on_fail: Callable[[str], None] | None = None,
    ) -> None:
        self.label, self.transcribe, self.max_seconds = label, transcribe, check_max_seconds(max_seconds, None)
        self.on_change, self.on_stop = on_change or (lambda: None), on_stop
        self.on_transcript, self.on_fail = on_transcript, on_fail
        self.state, self.message = "waiting", ""
        self.buffer, self.n = np.zeros(SAMPLE_RATE * 8, np.int16), 0
        self.pieces: list[Piece] = []
        self.cut = self.checked = 0  # samples cut into pieces, and looked at for a pause
        self.final: str | None = None  # the whole recording's transcript
        self.preview = b""  # a small Ogg/Opus copy for a player
        self.tasks: set[asyncio.Task] = set()
        self.live = live or getattr(transcribe, "live", None)
        self.live_text = ""  # the realtime session's captions so far
        self.note = ""  # why the captions came from pieces after all
        self._blocks: asyncio.Queue[bytes | None] | None = None  # on their way to the realtime session

    @property
    def samples(self) -> np.ndarray:
        return self.buffer[: self.n]

    @property
    def duration_s(self) -> float:
        return self.n / SAMPLE_RATE

    def start(self) -> None:
        if self.state == "waiting":
            self.state = "recording"
            if self.transcribe and self.live:
                self._blocks = asyncio.Queue()
                self._spawn(self._caption_live(self._blocks))
            self.on_change()

    def feed(self, data: bytes) -> None:
        """Append a block; past ``max_seconds`` the rest is dropped. Captions: a piece cut here
        has its transcript requested at once."""
        self.start()
        if self.state != "recording":
            return
        block = np.frombuffer(data[: len(data) // 2 * 2], "<i2")[: round(self.max_seconds * SAMPLE_RATE) - self.n]
        if self.n + block.size > self.buffer.size:
            grown = np.zeros(max(2 * self.buffer.size, self.n + block.size), np.int16)
            grown[: self.n] = self.samples
            self.buffer = grown
        self.buffer[self.n : self.n + block.size] = block
        self.n += block.size
        if self._blocks is not None:
            if block.size:
                self._blocks.put_nowait(block.tobytes())
        elif self.transcribe and self.n - self.checked >= CHECK_S * SAMPLE_RATE:
            self.checked = self.n
            found = next_cut(self.samples[self.cut :])
            if found:
                self._caption(Piece(self.cut, self.cut + found[0], found[1]))

    def _caption(self, piece: Piece) -> None:
        self.pieces.append(piece)
        self.cut = piece.end
        if not piece.speech:
            piece.text = ""
            return
        self._spawn(self._transcribe_piece(piece))
        self.on_change()

    async def _transcribe_piece(self, piece: Piece) -> None:
        assert self.transcribe is not None
        try:
            piece.text = await self.transcribe(self._source(piece.start, piece.end, f"{self.label} piece"))
        except VoxmagicError as exc:
            piece.text, piece.error = "", str(exc)
        self.on_change()

    async def _caption_live(self, queue: asyncio.Queue[bytes | None]) -> None:
        """Captions from the realtime session, fed from ``queue`` until the stop (None)."""

        async def blocks() -> AsyncIterator[bytes]:
            while (block := await queue.get()) is not None:
                yield block

        assert self.live is not None
        try:
            self.live_text = (await self.live(blocks(), self._live_caption)).strip()
        except VoxmagicError as exc:
            self._fall_back(exc)
        self.on_change()

    def _live_caption(self, text: str) -> None:
        self.live_text = text.strip()
        self.on_change()

    def _fall_back(self, exc: VoxmagicError) -> None:
        """No realtime captions after all: pieces from the first sample if nothing was captioned,
        else from where the audio has got to."""
        self._blocks = None
        self.note = f"live captions from pieces instead: {exc}"
        self.cut = self.checked = self.n if self.live_text else 0
        if self.state == "stopped":
            self.message += f" · {self.note}"

    def _end_live(self) -> None:
        if self._blocks is not None:
            self._blocks.put_nowait(None)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _source(self, start: int, end: int, label: str) -> AudioSource:
        return AudioSource(label, array=self.samples[start:end].copy(), sample_rate=SAMPLE_RATE)

    def stop(self) -> AudioSource | None:
        """The recording as a source (None when nothing was recorded: the take fails); its player
        and whole transcript follow on the loop."""
        if self.state not in ("waiting", "recording"):
            return None
        if self.n < SAMPLE_RATE // 10:
            self.fail("nothing was recorded: no sound arrived before the stop")
            return None
        self.state = "stopped"
        self._end_live()
        source = self._source(0, self.n, self.label)
        self.message = f"recorded {self.duration_s:.1f} s" + (f" · {self.note}" if self.note else "")
        self._spawn(self._after_stop(source))
        if self.on_stop:
            self.on_stop(source)
        self.on_change()
        return source

    async def _after_stop(self, source: AudioSource) -> None:
        pcm = PCM(self.samples.copy())
        self.preview = (await asyncio.to_thread(encode, pcm, "ogg", bit_rate=PREVIEW_BIT_RATE)).data
        self.on_change()
        if self.transcribe:
            try:
                self.final = await self.transcribe(source)
            except VoxmagicError as exc:
                self.message += f" · no transcript: {exc}"
            else:
                if self.on_transcript:
                    self.on_transcript(self.final)
            self.on_change()

    def fail(self, message: str) -> None:
        if self.state in ("stopped", "failed"):
            return
        self.state, self.message = "failed", message
        self._end_live()
        if self.on_fail:
            self.on_fail(message)
        self.on_change()

    def refuse(self, why: str) -> None:
        """The front end has no microphone to give (refused, absent, an insecure page)."""
        self.fail(no_microphone(why or "the browser gave no microphone"))

    @property
    def captions(self) -> str:
        """What to show under the control: the pieces' captions so far (``…`` for one on its
        way) after the realtime session's, then, once stopped, the transcript of the whole in
        their place."""
        if self.final is not None:
            return self.final
        shown = [p.text if p.text is not None else "…" for p in self.pieces if p.speech]
        return " ".join(t for t in [self.live_text, *shown] if t)

    async def settled(self) -> None:
        """Returns when no caption or transcript is on its way (loop thread)."""
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def __repr__(self) -> str:
        return f"<Take {self.label!r}: {self.state}, {self.duration_s:.2f} s, {len(self.pieces)} pieces>"
