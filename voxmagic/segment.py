"""Long audio in pieces Voxtral can take, cut where nobody speaks.

A file longer than ``max_s`` is cut into chunks of at most ``max_s``: each cut goes in the middle
of the longest pause (≥ ``min_pause_s``) found by searching back ``search_s`` (at most half a
chunk) from the limit, with silence judged against the audio's own loudness (RMS over 20 ms frames); with no pause
there, at the quietest 20 ms. Chunks tile the audio exactly — no sample lost or sent twice — and
only about one chunk of 16 kHz samples is held at a time, so a 2-hour file streams through.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import replace

import numpy as np

from .audio import NO_SPEECH, PCM, SAMPLE_RATE, AudioSource, EncodedAudio, encode
from .codec import STREAMED, encode_blocks
from .errors import AudioError
from .silence import ENERGY_BELOW_LOUD, frame_rms, trimmed_clip

FRAME_S = 0.02


def _longest_pause(quiet: np.ndarray) -> tuple[int, int]:
    """(length, middle index) of the longest run of True, the latest one on ties; (0, -1) if none."""
    best_len, best_mid, run_start = 0, -1, None
    for i, q in enumerate(np.append(quiet, False)):
        if q and run_start is None:
            run_start = i
        elif not q and run_start is not None:
            if i - run_start >= best_len:
                best_len, best_mid = i - run_start, (run_start + i) // 2
            run_start = None
    return best_len, best_mid


def find_cut(samples: np.ndarray, lo: int, hi: int, rate: int, min_pause_s: float = 0.3) -> int:
    """A sample index in [lo, hi] to cut at.

    The middle of the longest pause in the later half of the window, else in the earlier half
    (so chunks stay close to the limit), else the quietest 20 ms of the window.
    """
    frame = max(1, round(FRAME_S * rate))
    rms = frame_rms(samples, frame)
    first, last = lo // frame, min(hi // frame, rms.size)
    if last <= first:
        return hi
    threshold = ENERGY_BELOW_LOUD * max(float(np.percentile(rms, 95)), 1.0)
    middle = (first + last) // 2
    for a, b in ((middle, last), (first, middle)):
        length, mid = _longest_pause(rms[a:b] < threshold)
        if length and length * FRAME_S >= min_pause_s:
            return (a + mid) * frame
    quietest = last - 1 - int(np.argmin(rms[first:last][::-1]))  # the latest on ties: chunks stay long
    return quietest * frame


Part = tuple[int, np.ndarray, "Callable[[], np.ndarray] | None"]


def split_parts(
    blocks: Iterable[np.ndarray],
    rate: int,
    max_s: float,
    *,
    search_s: float = 120.0,
    min_pause_s: float = 0.3,
    overlap_s: float = 0.0,
) -> Iterator[Part]:
    """The chunks of at most ``max_s`` seconds (see :func:`split_blocks`) in parts, as they are
    decoded: (the chunk's first sample, its next samples, and once these end it a function giving
    the whole chunk — at the end of the audio a copy, made only if asked — else None). A chunk's
    samples before its earliest possible cut come out at once, to be encoded while the rest is
    decoded; the rest when its cut is found."""
    limit = max(1, round(max_s * rate))
    overlap = min(round(overlap_s * rate), limit // 4)
    search = min(limit // 2, round(search_s * rate))  # short chunks are cut in their second half
    held: list[np.ndarray] = []  # the chunk's samples so far, as they came
    size, out, start = 0, 0, 0  # how many are held, how many of them went out
    for block in blocks:
        held.append(block)
        size += block.size
        while size > limit:
            buffer = np.concatenate(held) if len(held) > 1 else held[0]
            cut = max(out, 1, find_cut(buffer, limit - search, limit, rate, min_pause_s))
            held = []
            yield start, buffer[out:cut], _given(buffer[:cut])  # views: encoded before the rest is copied
            back = min(overlap, cut - 1)
            rest = buffer[cut - back :].copy()
            del buffer
            held, size, out, start = [rest], rest.size, 0, start + cut - back
        ready = min(size, limit - search)  # no cut comes before this sample
        if out < ready:
            yield start, _held_span(held, size, out, ready), None
            out = ready
    if size:
        yield start, _held_span(held, size, out, size), _joined(held)


def _given(chunk: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: chunk


def _joined(held: list[np.ndarray]) -> Callable[[], np.ndarray]:
    """The ``held`` blocks as one array, copied only when asked (and only if there are several)."""
    return lambda: np.concatenate(held) if len(held) > 1 else held[0] if held else np.zeros(0, np.int16)


def _held_span(held: list[np.ndarray], size: int, a: int, b: int) -> np.ndarray:
    """Samples [a, b) of the ``held`` blocks (``size`` in all): a view when they lie in the last
    one, else a copy of only the blocks they span."""
    if a >= b:
        return held[-1][:0]
    first, i = size, len(held)
    while first > a:
        i -= 1
        first -= held[i].size
    span = held[i] if i == len(held) - 1 else np.concatenate(held[i:])
    return span[a - first : b - first]


def split_blocks(
    blocks: Iterable[np.ndarray], rate: int, max_s: float, **options: float
) -> Iterator[tuple[int, np.ndarray]]:
    """(start sample, samples) for consecutive chunks of at most ``max_s`` seconds; with
    ``overlap_s`` each chunk after the first begins that much before the previous one ended
    (``options``: those of :func:`split_parts`)."""
    for start, _, whole in split_parts(blocks, rate, max_s, **options):
        if whole is not None:
            yield start, whole()


Piece = tuple[float, "np.ndarray | EncodedAudio"]


def pieces(
    source: AudioSource, max_s: float | None, overlap_s: float = 0.0, format: str | None = None
) -> Generator[Piece, None, None]:
    """(start on the source's timeline, samples) of each piece to send, decoded as they are read:
    pieces of at most ``max_s`` cut at pauses (overlapping by ``overlap_s``), or all of it.

    With ``format`` (and no ``trim``) the first piece comes encoded, as an :class:`EncodedAudio`:
    its samples went to the encoder as they were decoded, so MP3 is encoded on another core
    meanwhile (:func:`voxmagic.lame.mp3`) and a 10-minute file is ready about when it is decoded."""
    offset = source.offset_s
    blocks = source.blocks()
    parts = split_parts(blocks, SAMPLE_RATE, max_s, overlap_s=overlap_s) if max_s else whole_parts(blocks)
    if format in STREAMED and not source.trim:
        first = encoded_part(parts, format, source.label)
        if first is None:
            return
        yield offset, replace(first, start_s=offset)
    for start, _, whole in parts:
        if whole is not None:
            yield offset + start / SAMPLE_RATE, whole()


def whole_parts(blocks: Iterable[np.ndarray]) -> Iterator[Part]:
    """All the blocks as one piece, in parts (see :func:`split_parts`)."""
    held = []
    for block in blocks:
        held.append(block)
        yield 0, block, None
    yield 0, np.zeros(0, np.int16), _joined(held)


def seconds(piece: Piece) -> float:
    """How long a piece of :func:`pieces` is."""
    samples = piece[1]
    return samples.duration_s if isinstance(samples, EncodedAudio) else samples.size / SAMPLE_RATE


def encoded_part(parts: Iterator[Part], format: str, label: str) -> EncodedAudio | None:
    """The first piece of ``parts`` (it starts at their first sample) encoded as its parts come
    (see :func:`voxmagic.codec.encode_blocks`); None when there is none. The parts after it are
    left in ``parts``."""
    whole: list[Callable[[], np.ndarray]] = []  # its samples, once its last part came

    def samples() -> Iterator[np.ndarray]:
        for _, part, ends in parts:
            if part.size:  # an empty last part would make a 1-s clip two blocks: LAME on a thread
                yield part
            if ends is not None:
                whole.append(ends)
                return

    clip = encode_blocks(samples(), format, label=label, whole=lambda: whole[0]() if whole else np.zeros(0, np.int16))
    return clip if whole else None


def encode_piece(
    samples: np.ndarray | EncodedAudio, start_s: float, format: str, label: str, trim: bool
) -> EncodedAudio | None:
    """One piece as it will be uploaded (trimmed of long pauses with ``trim``: None when only
    silence is left); a piece :func:`pieces` encoded already is as it is. A plain function of
    plain values, so another process can run it."""
    if isinstance(samples, EncodedAudio):
        return samples
    if trim:
        return trimmed_clip(PCM(samples), format, label, start_s)
    return encode(PCM(samples), format, label=label, start_s=start_s)


def sendable(source: AudioSource, clips: Iterable[EncodedAudio | None]) -> list[EncodedAudio]:
    """The pieces worth sending; a trimmed source with nothing left is an error."""
    kept = [c for c in clips if c is not None]
    if not kept:
        raise AudioError(source.label, NO_SPEECH)
    return kept


def prepare_chunks(source: AudioSource, format: str, max_s: float | None, overlap_s: float = 0.0) -> list[EncodedAudio]:
    """Decode, cut (when longer than ``max_s``) and encode, one piece at a time; each piece knows
    its ``start_s`` on the source's timeline (a moment's too). A compact MP3 short enough to go
    whole is sent as it is (see :meth:`AudioSource.as_is`). A ``trim``-med source loses its long
    pauses piece by piece; a piece of silence only is not sent. (The batch runner prepares the
    same pieces as they are sent: :mod:`voxmagic.preparing`.)"""
    as_is = source.as_is(format, max_s)
    if as_is is not None:
        return [as_is]
    made = pieces(source, max_s, overlap_s, format)
    return sendable(source, (encode_piece(x, t, format, source.label, source.trim) for t, x in made))
