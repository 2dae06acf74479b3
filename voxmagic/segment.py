"""Long audio in pieces Voxtral can take, cut where nobody speaks.

A file longer than ``max_s`` is cut into chunks of at most ``max_s``: each cut goes in the middle
of the longest pause (≥ ``min_pause_s``) found by searching back ``search_s`` (at most half a
chunk) from the limit, with silence judged against the audio's own loudness (RMS over 20 ms frames); with no pause
there, at the quietest 20 ms. Chunks tile the audio exactly — no sample lost or sent twice — and
only about one chunk of 16 kHz samples is held at a time, so a 2-hour file streams through.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator

import numpy as np

from .audio import NO_SPEECH, PCM, SAMPLE_RATE, AudioSource, EncodedAudio, encode
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


def split_blocks(
    blocks: Iterable[np.ndarray],
    rate: int,
    max_s: float,
    *,
    search_s: float = 120.0,
    min_pause_s: float = 0.3,
    overlap_s: float = 0.0,
) -> Iterator[tuple[int, np.ndarray]]:
    """(start sample, samples) for consecutive chunks of at most ``max_s`` seconds; with
    ``overlap_s`` each chunk after the first begins that much before the previous one ended."""
    limit = max(1, round(max_s * rate))
    overlap = min(round(overlap_s * rate), limit // 4)
    search = min(limit // 2, round(search_s * rate))  # short chunks are cut in their second half
    pending: list[np.ndarray] = []
    held, start = 0, 0
    for block in blocks:
        pending.append(block)
        held += block.size
        while held > limit:
            buffer = np.concatenate(pending)
            cut = max(1, find_cut(buffer, limit - search, limit, rate, min_pause_s))
            pending = []
            yield start, buffer[:cut]  # a view: encoded before the rest is copied out
            back = min(overlap, cut - 1)
            rest = buffer[cut - back :].copy()
            del buffer
            pending, held, start = [rest], rest.size, start + cut - back
    if held:
        yield start, np.concatenate(pending)


def pieces(
    source: AudioSource, max_s: float | None, overlap_s: float = 0.0
) -> Generator[tuple[float, np.ndarray], None, None]:
    """(start on the source's timeline, samples) of each piece to send, decoded as they are read:
    pieces of at most ``max_s`` cut at pauses (overlapping by ``overlap_s``), or all of it."""
    offset = source.offset_s
    if not max_s:
        yield offset, source.decode().samples
        return
    for start, samples in split_blocks(source.blocks(), SAMPLE_RATE, max_s, overlap_s=overlap_s):
        yield offset + start / SAMPLE_RATE, samples


def encode_piece(samples: np.ndarray, start_s: float, format: str, label: str, trim: bool) -> EncodedAudio | None:
    """One piece as it will be uploaded (trimmed of long pauses with ``trim``: None when only
    silence is left). A plain function of plain values, so another process can run it."""
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
    return sendable(
        source, (encode_piece(x, t, format, source.label, source.trim) for t, x in pieces(source, max_s, overlap_s))
    )
