"""An MP3 decoded on two threads (voxmagic.mp3_threads) gives every sample one decoder gives, in
order, for the bit rates, sample rates and channel counts people's files have; short files and
other codecs are left to one decoder."""

from __future__ import annotations

import threading
from fractions import Fraction

import av
import numpy as np
import pytest

from voxmagic import codec, mp3_threads
from voxmagic.testing.synth import speechlike, tone_file

# (sample rate, channels, bit rate, LAME options): MPEG-1 stereo at a phone's and a CD rip's bit
# rate, average bit rate (frames of varying size, leaning on the reservoir), MPEG-2 and MPEG-2.5
# mono at voice-memo rates
KINDS = {
    "128k-stereo": (44_100, 2, 128_000, {}),
    "320k-stereo": (48_000, 2, 320_000, {}),
    "abr-stereo": (44_100, 2, 96_000, {"abr": "1"}),
    "32k-mono-16khz": (16_000, 1, 32_000, {}),
    "8k-mono-8khz": (8_000, 1, 8_000, {}),
}


def _mp3(path, rate: int, channels: int, bit_rate: int, options: dict, seconds: float = 12.0):
    left = speechlike(seconds, rate, seed=1)[0]
    right = np.roll(speechlike(seconds, rate, seed=2)[0], rate // 3) * 0.7  # the channels differ
    samples = np.stack([left, right])[:channels].astype(np.float32)
    with av.open(str(path), "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="stereo" if channels == 2 else "mono", options=options)
        stream.bit_rate = bit_rate
        for start in range(0, samples.shape[1], rate):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + rate]), format="fltp",
                                               layout=stream.layout.name)  # fmt: skip
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _decoded(path, threaded: bool) -> tuple[np.ndarray, list, str | None]:
    """All samples, the frames' times, and the error that ended decoding (its type)."""
    frames, error = [], None
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        try:
            for frame in mp3_threads.frames(container, stream) if threaded else container.decode(stream):
                frames.append(frame)
        except av.error.FFmpegError as exc:
            error = type(exc).__name__
    samples = np.concatenate([f.to_ndarray().reshape(len(f.layout.channels), -1) for f in frames], axis=1)
    return samples, [f.pts for f in frames], error


@pytest.mark.parametrize("kind", KINDS)
def test_two_threads_give_every_sample_one_decoder_gives(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(mp3_threads, "PIECE_S", 1.3)  # ~9 pieces, so 8 places to go wrong
    path = _mp3(tmp_path / f"{kind}.mp3", *KINDS[kind])
    one, times, error = _decoded(path, threaded=False)
    two, two_times, two_error = _decoded(path, threaded=True)
    assert error is None and two_error is None
    assert two.shape == one.shape and np.array_equal(two, one)
    assert two_times == times


@pytest.mark.parametrize("ahead", [0, 2])
def test_however_many_pieces_are_decoded_ahead(tmp_path, monkeypatch, ahead):
    """Each piece after the first gets a decoder of its own, also when the one before it was
    handed on first (the first piece's decoder, flushed at its end, is never used again)."""
    monkeypatch.setattr(mp3_threads, "PIECE_S", 1.3)
    monkeypatch.setattr(mp3_threads, "AHEAD", ahead)
    path = _mp3(tmp_path / "talk.mp3", *KINDS["128k-stereo"])
    one, times, _ = _decoded(path, threaded=False)
    two, two_times, error = _decoded(path, threaded=True)
    assert error is None and two_times == times and np.array_equal(two, one)


def test_the_audio_it_prepares_is_the_same_to_the_byte(tmp_path, monkeypatch):
    path = _mp3(tmp_path / "talk.mp3", *KINDS["128k-stereo"])
    monkeypatch.setattr(mp3_threads, "PIECE_S", 2.0)
    monkeypatch.setattr(mp3_threads, "MIN_S", 10.0)
    names: set[str] = set()
    decoded = mp3_threads._decoded
    monkeypatch.setattr(mp3_threads, "_decoded", lambda *a: names.add(threading.current_thread().name) or decoded(*a))
    threaded = list(codec.container_blocks(str(path), "talk.mp3"))
    assert names and all(name.startswith("voxmagic-mp3") for name in names)  # it did go to the threads
    monkeypatch.setattr(mp3_threads, "worth_it", lambda *a: False)
    alone = list(codec.container_blocks(str(path), "talk.mp3"))
    assert np.array_equal(np.concatenate(threaded), np.concatenate(alone))
    assert [b.size for b in threaded] == [b.size for b in alone]


def test_damage_mid_file_ends_where_one_decoder_ends(tmp_path, monkeypatch):
    """Garbage in the middle: the same frames, and the same error (or none), as one decoder."""
    monkeypatch.setattr(mp3_threads, "PIECE_S", 1.3)
    path = _mp3(tmp_path / "damaged.mp3", *KINDS["128k-stereo"])
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    one, times, error = _decoded(path, threaded=False)
    two, two_times, two_error = _decoded(path, threaded=True)
    assert two_error == error and two_times == times and np.array_equal(two, one)


def test_short_and_long_files_and_other_codecs_stay_with_one_decoder(tmp_path, monkeypatch):
    """A short file gains nothing; a long one is cut into pieces the helper process prepares
    beside it (and the pieces decoded ahead would raise its memory's peak)."""
    monkeypatch.setattr(mp3_threads, "MIN_S", 10.0)
    monkeypatch.setattr(mp3_threads, "MAX_S", 20.0)
    short = _mp3(tmp_path / "short.mp3", *KINDS["128k-stereo"], seconds=8.0)
    middle = _mp3(tmp_path / "middle.mp3", *KINDS["32k-mono-16khz"], seconds=12.0)
    long = _mp3(tmp_path / "long.mp3", *KINDS["8k-mono-8khz"], seconds=24.0)
    flac = tone_file(tmp_path / "middle.flac", 12.0)
    for path, expected in ((short, False), (middle, True), (long, False), (flac, False)):
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            assert mp3_threads.worth_it(stream, codec.header_seconds(container, stream)) is expected, path.name
