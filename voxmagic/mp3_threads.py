"""An MP3 decoded on two cores: its packets in pieces of ~15 s, each piece by a decoder of its
own on a pool of two threads, the frames handed on in order. FFmpeg's MP3 decoder gives up the
GIL while it decodes, so two pieces decode at once (decoding a 10-minute 128 kbit/s file: ~1.1 s
on one thread, ~0.75 s on two).

A decoder that starts mid-file lacks what MP3 frames lean on from the frames before them: the bit
reservoir reaches back at most 511 bytes (under 6 frames at MPEG-1's smallest, 32 kbit/s at
48 kHz; 255 bytes in MPEG-2), the transform overlaps one granule, the synthesis filter holds 512
samples. So each piece's decoder first decodes the :data:`WARM_FRAMES` packets before its piece
and drops what they give; from there on it gives the very samples one decoder from the start
gives (``tests/test_mp3_threads.py`` compares every sample, 8 to 320 kbit/s, CBR and ABR, mono
and stereo; 5 warm-up frames were too few there).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

PIECE_S = 15.0
WARM_FRAMES = 10
AHEAD = 1  # pieces decoded or decoding beyond the one handed on (more were no faster)
MIN_S = 90.0  # a shorter file gains nothing here (1 min: 165 ms either way; 2 min: 322 → 298 ms)
# A longer file is cut into pieces that the helper process encodes beside this one (both cores are
# busy already), and the pieces decoded ahead here added 34 MB to a 2-hour file's peak (262 MB)
MAX_S = 30 * 60.0
CODECS = ("mp3float", "mp3")
SAMPLES_PER_FRAME = 1152  # MPEG-1 layer III (MPEG-2's 576 make pieces of half the time)

_pool: ThreadPoolExecutor | None = None


def worth_it(stream: Any, seconds: float | None) -> bool:
    """Whether ``stream``, ``seconds`` long by its header, is an MP3 of a length that gains, on a
    machine with a second core."""
    if stream.codec_context.name not in CODECS or (os.cpu_count() or 1) < 2:
        return False
    return seconds is not None and MIN_S <= seconds <= MAX_S


def frames(container: Any, stream: Any) -> Iterator[Any]:
    """The frames ``container.decode(stream)`` gives, the same samples, from two decoders at once.
    A decoding error comes after the frames decoded before it, as from one decoder."""
    # the first piece is the stream's own decoder's: it knows the packets' time base, which times
    # the first frame after the encoder's delay it drops (a new decoder would stamp it 0)
    decoder, name = stream.codec_context, stream.codec_context.name
    per = max(1, round(PIECE_S * (stream.codec_context.sample_rate or 44_100) / SAMPLES_PER_FRAME))
    pending: deque[Future] = deque()
    piece: list[Any] = []
    warm = 0
    try:
        for packet in container.demux(stream):
            if not packet.size:  # the demuxer's closing empty packet: each piece's decoder is flushed
                continue
            piece.append(packet)
            if len(piece) - warm >= per:
                pending.append(_workers().submit(_decoded, decoder, piece, warm))
                decoder, warm = name, min(WARM_FRAMES, len(piece))
                piece = piece[-warm:]
                while len(pending) > AHEAD:
                    yield from _handed(pending.popleft())
        if len(piece) > warm:
            pending.append(_workers().submit(_decoded, decoder, piece, warm))
        while pending:
            yield from _handed(pending.popleft())
    finally:
        for future in pending:  # the caller stopped early: what has not begun never will
            future.cancel()


def _workers() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="voxmagic-mp3")
    return _pool


def _handed(future: Future) -> Iterator[Any]:
    decoded, error = future.result()
    yield from decoded
    if error is not None:
        raise error


def _decoded(decoder: Any, packets: list[Any], warm: int) -> tuple[list[Any], BaseException | None]:
    """One piece's frames (the first ``warm`` packets' dropped), and the error that ended it;
    ``decoder``: a codec's name for a new one."""
    import av

    if isinstance(decoder, str):
        decoder = av.CodecContext.create(decoder, "r")
    out: list[Any] = []
    for packet in packets[:warm]:
        try:
            decoder.decode(packet)
        except av.error.FFmpegError:  # a cold decoder's complaint about the frames before it
            pass
    try:
        for packet in packets[warm:]:
            out += decoder.decode(packet)
        out += decoder.decode(None)
    except av.error.FFmpegError as exc:
        return out, exc
    return out, None
