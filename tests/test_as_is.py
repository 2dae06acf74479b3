"""Which files are uploaded as they are (voxmagic.as_is): compact MP3s always, small MP3s and M4As
when re-encoding would save too little to pay for itself, M4A only where the provider names it;
their durations exact without decoding when a header says; and the local OpenRouter-compatible
server (which really decodes every upload) takes what is sent."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest

import voxmagic
from voxmagic import audio, sniff
from voxmagic.as_is import MP3_ONLY, SMALL_SAVING_BYTES, unchanged_formats
from voxmagic.testing.synth import speechlike

OPENROUTER = unchanged_formats("openrouter")


def _written(path, seconds, *, container, codec, rate=44_100, layout="stereo", bit_rate=128_000, options=None):
    """Speech-like sound encoded by PyAV at ``bit_rate``; ``options`` go to the muxer."""
    samples = np.tile(speechlike(seconds, rate), (2 if layout == "stereo" else 1, 1)).astype(np.float32)
    with av.open(str(path), "w", format=container, options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        if bit_rate:
            stream.bit_rate = bit_rate
        for start in range(0, samples.shape[1], rate // 5):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, start : start + rate // 5]), format="fltp", layout=layout
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_a_small_m4a_goes_as_it_is_where_the_provider_names_m4a(tmp_path):
    clip = _written(tmp_path / "memo.m4a", 1.0, container="ipod", codec="aac")
    sent = audio.as_source(str(clip)).as_is("mp3", None, OPENROUTER)
    assert sent is not None and sent.data == clip.read_bytes() and sent.format == "m4a"
    assert sent.duration_s == pytest.approx(1.0, abs=1e-6)  # the header's, not the padded decode
    assert audio.as_source(str(clip)).decode().duration_s > 1.0  # decoding counts the last frame's padding
    assert audio.as_source(str(clip)).as_is("mp3", None, MP3_ONLY) is None  # vLLM, Mistral: re-encoded
    assert audio.as_source(str(clip)).as_is("flac", None, OPENROUTER) is None  # another format was asked for
    assert audio.as_source(str(clip)).as_is("mp3", 0.5, OPENROUTER) is None  # longer than a chunk


def test_re_encoding_that_saves_enough_still_happens(tmp_path):
    long = _written(tmp_path / "talk.m4a", 8.0, container="ipod", codec="aac")  # ~128 KB: saves ~96 KB
    assert long.stat().st_size - 8 * 4_000 >= SMALL_SAVING_BYTES
    assert audio.as_source(str(long)).as_is("mp3", None, OPENROUTER) is None
    big = _written(tmp_path / "hifi.m4a", 1.0, container="ipod", codec="aac", bit_rate=256_000)
    assert audio.as_source(str(big)).as_is("mp3", None, OPENROUTER) is None  # over 1/10 of CD-quality WAV
    lossless = _written(tmp_path / "alac.m4a", 0.5, container="ipod", codec="alac", bit_rate=0)
    assert audio.as_source(str(lossless)).as_is("mp3", None, OPENROUTER) is None  # not AAC
    song = _written(tmp_path / "song.mp3", 1.0, container="mp3", codec="libmp3lame")  # 128 kbit/s, 16 KB
    sent = audio.as_source(str(song)).as_is("mp3")
    assert sent is not None and sent.format == "mp3" and sent.duration_s == pytest.approx(1.0, abs=1e-6)
    minute = _written(tmp_path / "minute.mp3", 6.0, container="mp3", codec="libmp3lame")
    assert audio.as_source(str(minute)).as_is("mp3") is None  # 96 KB, 72 KB of it saved by re-encoding


def test_an_mp3_without_a_length_header_is_counted_by_decoding(tmp_path):
    tagged = _written(tmp_path / "tagged.mp3", 1.3, container="mp3", codec="libmp3lame", rate=16_000, layout="mono",
                      bit_rate=32_000)  # fmt: skip
    bare = _written(tmp_path / "bare.mp3", 1.3, container="mp3", codec="libmp3lame", rate=16_000, layout="mono",
                    bit_rate=32_000, options={"write_xing": "0"})  # fmt: skip
    assert sniff.mp3_length_tag(str(tagged)) and not sniff.mp3_length_tag(str(bare))
    assert sniff.mp3_length_tag(io.BytesIO(tagged.read_bytes()))
    for path in (tagged, bare):
        sent = audio.as_source(str(path)).as_is("mp3")
        assert sent is not None and sent.duration_s == audio.as_source(str(path)).decode().duration_s, path
    assert audio.as_source(str(tagged)).as_is("mp3").duration_s == pytest.approx(1.3, abs=1e-6)


def test_a_file_cut_short_is_timed_by_what_is_there(tmp_path):
    """A download that stopped: the header still tells of the whole (4.8 s was billed and shown
    for 0.13 s the server decoded). Its samples are counted; an M4A cut short is decoded."""
    whole = _written(tmp_path / "whole.mp3", 4.0, container="mp3", codec="libmp3lame", rate=16_000, layout="mono",
                     bit_rate=32_000)  # fmt: skip
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 4])
    sent = audio.as_source(str(cut)).as_is("mp3")
    assert sent is not None and sent.duration_s == audio.as_source(str(cut)).decode().duration_s < 1.2
    assert audio.as_source(str(whole)).as_is("mp3").duration_s == pytest.approx(4.0, abs=1e-6)


def test_the_server_takes_an_m4a_as_it_is_and_vllm_gets_an_mp3(tmp_path, server):
    from voxmagic.testing.server import LocalServer

    small = _written(tmp_path / "small.m4a", 1.0, container="ipod", codec="aac")
    long = _written(tmp_path / "long.m4a", 8.0, container="ipod", codec="aac")
    df = voxmagic.transcribe([str(small), str(long)], base_url=server.base_url, api_key="k", cache=False)
    assert df["error"].isna().all()
    sent = {r.audio[0].format: r.audio[0] for r in server.requests}
    assert set(sent) == {"m4a", "mp3"} and sent["m4a"].n_bytes == small.stat().st_size
    assert sent["m4a"].duration_s == pytest.approx(1.0, abs=1024 / 44_100)  # decoded by the server
    with LocalServer(dialect="vllm", latency=0.0, token_rate=0.0) as vllm:
        df = voxmagic.transcribe([str(small)], base_url=vllm.base_url, api_key="k", cache=False)
        assert df["error"].isna().all() and [r.audio[0].format for r in vllm.requests] == ["mp3"]
