"""Opening audio cheaply: the container sniffed from its first bytes, a 16-bit PCM WAV read with
numpy, FFmpeg asked to probe 32 bytes instead of 5 MB — and every one of these giving exactly what
FFmpeg's own probe and decoders give (the "generic path": sniffing switched off), including for
files whose extension lies, truncated files and garbage."""
from __future__ import annotations

import io
import struct
import wave
from fractions import Fraction

import av
import numpy as np
import pytest

from voxmagic import audio, resample, sniff
from voxmagic.errors import AudioError
from voxmagic.testing.synth import CONTAINERS, speechlike, tone, tone_file, write_audio

DEMUXER = {"wav": "wav", "mp3": "mp3", "flac": "flac", "ogg": "ogg", "opus": "ogg", "m4a": "mov", "aac": "aac",
           "webm": "matroska", "mp4": "mov", "mkv": "matroska"}


@pytest.fixture
def generic(monkeypatch):
    """A function that runs ``fn()`` with sniffing off: FFmpeg probes every file itself, as before."""

    def run(fn):
        with monkeypatch.context() as m:
            m.setattr(sniff, "container", lambda file: None)
            m.setattr(sniff, "pcm_wav", lambda file: None)
            return fn()

    return run


def _wav(path, samples: np.ndarray, rate: int, before_data: bytes = b"", tag: int = 1, extra: bytes = b"") -> bytes:
    """A RIFF WAV of int16 ``samples`` (n, channels) written by hand: optional chunks before the
    data chunk, the format tag (1, or 0xFFFE with ``extra`` as the extensible part)."""
    channels = samples.shape[1]
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * 2 * channels, 2 * channels, 16) + extra
    data = samples.astype("<i2").tobytes()
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + before_data
            + b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b""))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return data


def _noise(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-20_000, 20_000, (round(seconds * rate), channels), dtype=np.int16)


# -- sniffing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", sorted(CONTAINERS))
def test_each_container_is_sniffed_as_ffmpeg_probes_it(tmp_path, suffix):
    path = tone_file(tmp_path / f"clip.{suffix}", 0.5)
    kind = sniff.container(str(path))
    assert kind == DEMUXER[suffix]
    assert sniff.container(io.BytesIO(path.read_bytes())) == kind
    with av.open(str(path)) as probed:  # FFmpeg's own probe names the same demuxer
        assert kind in probed.format.name.split(",")


def test_mp3_variants_adts_aiff_and_flac_behind_an_id3_tag_are_sniffed(tmp_path):
    memo = write_audio(tmp_path / "memo.mp3", speechlike(1.0, 16_000), 16_000)  # MPEG-2 layer III
    assert sniff.container(str(memo)) == "mp3"
    bare = io.BytesIO()  # no ID3 tag, no Xing frame: found by two frame headers in a row
    with av.open(bare, "w", format="mp3", container_options={"write_xing": "0", "id3v2_version": "0"}) as out:
        stream = out.add_stream("libmp3lame", rate=44_100, layout="mono")
        frame = av.AudioFrame.from_ndarray(tone(1.0, 44_100, 1), format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 44_100, 0, Fraction(1, 44_100)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert bare.getvalue()[:1] == b"\xff" and sniff.container(io.BytesIO(bare.getvalue())) == "mp3"
    tagged_flac = b"ID3\x04\x00\x00\x00\x00\x00\x05" + b"\0" * 5 + tone_file(tmp_path / "t.flac", 0.2).read_bytes()
    assert sniff.container(io.BytesIO(tagged_flac)) == "flac"
    aiff = tmp_path / "a.aiff"
    with av.open(str(aiff), "w", format="aiff") as out:
        stream = out.add_stream("pcm_s16be", rate=8_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(tone(0.5, 8_000, 1), format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 8_000, 0, Fraction(1, 8_000)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert sniff.container(str(aiff)) == "aiff"
    assert audio.as_source(str(aiff)).probe_duration() == 0.5 and audio.as_source(str(aiff)).decode().duration_s == 0.5


@pytest.mark.parametrize("data", [
    b"", b"these are meeting notes, not audio\n" * 4, np.random.default_rng(0).bytes(5000),
    b"\xff\xfb\x90\x00" + np.random.default_rng(1).bytes(5000),  # one plausible MP3 header, then noise
    b"\xff\xf1\x50\x80\xff\xff\xfc" + np.random.default_rng(8).bytes(100),  # an ADTS frame longer than the file
    b"ID3\x04\x00\x00\x00\x00\x00\x10" + bytes(16) + np.random.default_rng(2).bytes(3000),
])  # fmt: skip
def test_what_no_rule_knows_is_left_to_ffmpeg(data):
    assert sniff.container(io.BytesIO(data)) is None


# -- the same samples as FFmpeg's own probe ----------------------------------------------------


@pytest.mark.parametrize("suffix", sorted(CONTAINERS))
def test_every_container_decodes_to_the_same_samples_and_duration(tmp_path, generic, suffix):
    path = str(tone_file(tmp_path / f"clip.{suffix}", 2.5))
    source = audio.as_source(path)
    moments = source.moments((0.3, 1.2), (1.7, None))
    fast = source.decode().samples, moments.decode().samples, source.probe_duration()
    slow = generic(lambda: (source.decode().samples, moments.decode().samples, source.probe_duration()))
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])
    assert fast[2] == pytest.approx(slow[2], abs=1e-9)
    assert np.array_equal(audio.as_source(open(path, "rb").read()).decode().samples, fast[0])  # bytes too


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_a_16_bit_wav_read_with_numpy_matches_ffmpeg(tmp_path, generic, rate, channels):
    path = tmp_path / "noise.wav"
    _wav(path, _noise(23.5, rate, channels), rate)  # 3 blocks of 10 s: the resampler fed piece by piece
    layout = sniff.pcm_wav(str(path))
    assert layout is not None and (layout.channels, layout.rate, layout.frames) == (channels, rate, round(23.5 * rate))
    source = audio.as_source(str(path))
    for spans in [(), ((0.0, 23.5),), ((1.0, 11.0), (12.3, None)), ((0.125, 0.75),), ((5.0, 5.01),)]:
        moment = source.moments(*spans) if spans else source
        fast, slow = moment.decode().samples, generic(lambda m=moment: m.decode().samples)
        assert fast.size == slow.size and np.array_equal(fast, slow), spans
    assert source.probe_duration() == generic(source.probe_duration) == 23.5


def test_wav_chunk_layouts_read_with_numpy(tmp_path, generic):
    samples = _noise(1.3, 16_000, 2)
    guid = b"\x01\x00" + bytes.fromhex("000000001000800000aa00389b71")
    files = {
        "list.wav": {"before_data": b"LIST" + struct.pack("<I", 5) + b"abcde\0"},  # odd chunk, padded
        "extensible.wav": {"tag": 0xFFFE, "extra": struct.pack("<HHI", 22, 16, 3) + guid},
        "odd.wav": {},
    }
    for name, how in files.items():
        path = tmp_path / name
        _wav(path, samples[:-1] if name == "odd.wav" else samples, 16_000, **how)
        assert sniff.pcm_wav(str(path)) is not None, name
        fast, slow = audio.as_source(str(path)).decode().samples, generic(audio.as_source(str(path)).decode)
        assert np.array_equal(fast, slow.samples), name


def test_wavs_numpy_does_not_read_are_left_to_ffmpeg(tmp_path, generic):
    rate, samples = 16_000, _noise(1.0, 16_000, 2)
    streamed = tmp_path / "streamed.wav"  # data size 0: FFmpeg reads to the end of the file
    data = _wav(streamed, samples, rate)
    raw = streamed.read_bytes()
    at = raw.index(b"data") + 4
    streamed.write_bytes(raw[:at] + b"\0\0\0\0" + raw[at + 4 :])
    cut = tmp_path / "cut.wav"
    cut.write_bytes(raw[: len(raw) // 2])
    spdif = tmp_path / "spdif.wav"  # a sync word FFmpeg's WAV demuxer takes for AC-3 over S/PDIF
    _wav(spdif, np.frombuffer(b"\x72\xf8\x1f\x4e" + data[4:], "<i2").reshape(-1, 2), rate)
    for path in (streamed, cut, spdif):
        assert sniff.pcm_wav(str(path)) is None, path.name
    assert audio.as_source(str(streamed)).decode().duration_s == 1.0  # not 0 s
    assert 0.4 < audio.as_source(str(cut)).decode().duration_s < 0.6
    for codec_name in ("pcm_u8", "pcm_s24le", "pcm_f32le"):
        path = tmp_path / f"{codec_name}.wav"
        with av.open(str(path), "w", format="wav") as out:
            stream = out.add_stream(codec_name, rate=rate, layout="mono")
            frame = av.AudioFrame.from_ndarray(speechlike(1.0, rate), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        assert sniff.container(str(path)) == "wav" and sniff.pcm_wav(str(path)) is None
        fast, slow = audio.as_source(str(path)).decode(), generic(audio.as_source(str(path)).decode)
        assert np.array_equal(fast.samples, slow.samples) and fast.duration_s == 1.0


def test_stereo_is_averaged_to_the_same_float32_values_as_numpys_mean():
    rng = np.random.default_rng(4)
    for dtype in (np.int16, np.int32, np.uint8, np.float32):
        if np.dtype(dtype).kind == "f":
            interleaved = rng.uniform(-1, 1, (4_410, 2)).astype(dtype)
        else:
            info = np.iinfo(dtype)
            interleaved = rng.integers(info.min, info.max, (4_410, 2), endpoint=True, dtype=dtype)
        for a in (interleaved.T, np.ascontiguousarray(interleaved.T)):  # packed and planar frames
            scaled = a.astype(np.float32)
            if a.dtype.kind == "u":
                scaled = (scaled - 128.0) / 128.0
            elif a.dtype.kind == "i":
                scaled = scaled / float(np.iinfo(a.dtype).max + 1)
            assert np.array_equal(resample.mono(a), scaled.mean(axis=0, dtype=np.float32)), dtype


# -- lies, damage, and what is not opened ------------------------------------------------------


def test_a_file_whose_extension_lies_still_decodes(tmp_path):
    wav = tone_file(tmp_path / "real.wav", 1.5)
    named_mp3 = tmp_path / "actually_a_wav.mp3"
    named_mp3.write_bytes(wav.read_bytes())
    assert np.array_equal(audio.as_source(str(named_mp3)).decode().samples, audio.as_source(str(wav)).decode().samples)
    assert audio.as_source(str(named_mp3)).as_is("mp3") is None  # a WAV is not uploaded as an MP3
    assert audio.prepare(str(named_mp3)).format == "mp3"
    memo = write_audio(tmp_path / "memo.mp3", speechlike(2.0, 16_000), 16_000)
    named_wav = tmp_path / "actually_an_mp3.wav"
    named_wav.write_bytes(memo.read_bytes())
    sent = audio.prepare(str(named_wav))
    assert sent.data == memo.read_bytes() and sent.duration_s == audio.as_source(str(memo)).decode().duration_s
    m4a = tone_file(tmp_path / "real.m4a", 1.0)
    named_flac = tmp_path / "actually_an_m4a.flac"
    named_flac.write_bytes(m4a.read_bytes())
    assert np.array_equal(audio.as_source(str(named_flac)).decode().samples, audio.as_source(str(m4a)).decode().samples)


def test_a_sniffed_demuxer_that_fails_falls_back_to_ffmpegs_probe(tmp_path, monkeypatch):
    path = tone_file(tmp_path / "clip.flac", 1.0)
    expected = audio.as_source(str(path)).decode().samples
    monkeypatch.setattr(sniff, "container", lambda file: "wav")  # a wrong guess
    assert np.array_equal(audio.as_source(str(path)).decode().samples, expected)
    assert audio.as_source(path.read_bytes()).decode().samples.size == expected.size  # BytesIO rewound


@pytest.mark.parametrize("name, data", [
    ("flac", b"fLaC" + np.random.default_rng(3).bytes(3000)),
    ("ogg", b"OggS" + np.random.default_rng(4).bytes(3000)),
    ("m4a", b"\x00\x00\x00\x18ftypM4A " + np.random.default_rng(5).bytes(3000)),
    ("mkv", b"\x1a\x45\xdf\xa3" + np.random.default_rng(6).bytes(3000)),
    ("wav", b"RIFF\x24\x00\x00\x00WAVE" + np.random.default_rng(7).bytes(3000)),
    ("wav", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x02\x00\x44\xac\x00\x00\x10\xb1\x02\x00\x04\x00\x10\x00"),
])  # fmt: skip
def test_garbage_behind_magic_bytes_is_a_one_line_error(tmp_path, generic, name, data):
    path = tmp_path / f"broken.{name}"
    path.write_bytes(data)
    with pytest.raises(AudioError) as fast:
        audio.as_source(str(path)).decode()
    with pytest.raises(AudioError) as slow:
        generic(audio.as_source(str(path)).decode)
    assert str(fast.value) == str(slow.value)
    assert str(fast.value).startswith(f"{path}: ") and "\n" not in str(fast.value)
    assert audio.as_source(str(path)).probe_duration() is None and audio.as_source(str(path)).as_is("mp3") is None


@pytest.mark.parametrize("suffix", ["m4a", "flac", "wav", "mp3"])
def test_truncated_files_give_what_ffmpegs_probe_gives(tmp_path, generic, suffix):
    path = tone_file(tmp_path / f"cut.{suffix}", 3.0)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    def outcome():
        try:
            return audio.as_source(str(path)).decode().samples.tobytes()
        except AudioError as exc:
            assert "\n" not in str(exc)
            return str(exc)

    assert outcome() == generic(outcome)


def test_a_file_that_is_not_an_mp3_is_not_opened_to_ask(tmp_path, monkeypatch):
    paths = [tone_file(tmp_path / f"clip.{s}", 0.5) for s in ("wav", "flac", "m4a", "ogg")]
    memo = write_audio(tmp_path / "memo.mp3", speechlike(1.0, 16_000), 16_000)

    def no_ffmpeg(*args, **kwargs):
        raise AssertionError("av.open was called")

    monkeypatch.setattr(av, "open", no_ffmpeg)
    assert all(audio.as_source(str(p)).as_is("mp3") is None for p in paths)
    assert audio.as_source(str(paths[0])).probe_duration() == 0.5  # a WAV's header, read without FFmpeg
    assert audio.as_source(str(paths[0])).decode().duration_s == 0.5
    monkeypatch.undo()
    sent = audio.as_source(str(memo)).as_is("mp3")
    assert sent is not None and sent.duration_s == audio.as_source(str(memo)).decode().duration_s


def test_wave_module_files_and_empty_wavs(tmp_path):
    path = tmp_path / "stdlib.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(11_025)
        w.writeframes(_noise(0.5, 11_025, 2).tobytes())
    assert sniff.pcm_wav(str(path)) == sniff.PcmWav(44, round(0.5 * 11_025), 2, 11_025)
    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16_000)
    with pytest.raises(AudioError, match=r"empty\.wav: contains no audio samples \(0 s\)"):
        audio.as_source(str(empty)).decode()
