"""Audio in: real decoding of real containers, real encoding, clear errors for bad input."""
from __future__ import annotations

import http.server
import threading
from functools import partial

import numpy as np
import pytest

from voxmagic import audio
from voxmagic.errors import AudioError
from voxmagic.testing.synth import CONTAINERS, tone, tone_file

TRUTH_S = 2.5


@pytest.mark.parametrize("suffix", sorted(CONTAINERS))
def test_every_container_decodes_to_16k_mono_with_exact_duration(tmp_path, suffix):
    path = tone_file(tmp_path / f"clip.{suffix}", TRUTH_S)
    pcm = audio.as_source(str(path)).decode()
    assert pcm.sample_rate == 16_000 and pcm.samples.dtype == np.int16 and pcm.samples.ndim == 1
    assert abs(pcm.duration_s - TRUTH_S) < 0.05
    # the tone (amplitude 0.3 with tremolo, identical channels) survives downmixing: not silent, not clipped
    peak = np.abs(pcm.samples).max() / 32768
    assert 0.2 < peak < 0.4


@pytest.mark.parametrize("fmt", audio.UPLOAD_FORMATS)
def test_every_upload_format_round_trips(fmt):
    pcm = audio.as_source((tone(3.0, 16_000, 1), 16_000)).decode()
    enc = audio.encode(pcm, fmt)
    assert enc.format == fmt and enc.duration_s == pcm.duration_s
    if fmt == "pcm16":
        assert len(enc.data) == 2 * pcm.samples.size
        return
    back = audio.as_source(enc.data).decode()
    assert abs(back.duration_s - 3.0) < 0.08  # AAC adds priming samples


def test_default_upload_is_compact_and_deterministic():
    pcm = audio.as_source((tone(10.0), 44_100)).decode()
    first, second = audio.encode(pcm), audio.encode(pcm)
    assert first.format == audio.DEFAULT_FORMAT
    assert first.data == second.data and first.sha256 == second.sha256  # usable as a cache key
    raw_wav_per_s = 44_100 * 2 * 2
    assert len(first.data) / 10.0 < raw_wav_per_s / 10  # ≥ 10× smaller than 44.1 kHz stereo WAV


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
@pytest.mark.parametrize("channels", [1, 2])
def test_arrays_are_resampled_exactly(rate, channels):
    samples = tone(1.75, rate, channels)
    arr = samples[0] if channels == 1 else samples
    pcm = audio.as_source(arr, sample_rate=rate).decode()
    assert abs(pcm.samples.size - 1.75 * 16_000) <= 2


def test_integer_arrays_are_scaled_not_clipped():
    ints = (tone(1.0, 16_000, 1)[0] * 32767).astype(np.int16)
    pcm = audio.as_source((ints, 16_000)).decode()
    assert 0.2 < np.abs(pcm.samples).max() / 32768 < 0.4


def test_array_needs_its_rate():
    with pytest.raises(AudioError, match="sample rate"):
        audio.as_source(np.zeros(100, dtype=np.float32))


def test_nan_array_is_refused():
    bad = np.full(1600, np.nan, dtype=np.float32)
    with pytest.raises(AudioError, match="NaN"):
        audio.as_source((bad, 16_000)).decode()


def test_bytes_and_ipython_audio(tmp_path):
    from IPython.display import Audio

    path = tone_file(tmp_path / "a.flac", 1.5)
    from_bytes = audio.as_source(path.read_bytes()).decode()
    from_file = audio.as_source(Audio(filename=str(path))).decode()
    mono = tone(1.5, 22_050, 1)[0]
    from_array = audio.as_source(Audio(mono, rate=22_050)).decode()
    for pcm in (from_bytes, from_file, from_array):
        assert abs(pcm.duration_s - 1.5) < 0.02


@pytest.fixture
def file_server(tmp_path):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_url_is_downloaded(file_server):
    root, url = file_server
    tone_file(root / "remote.mp3", 2.0)
    src = audio.as_source(f"{url}/remote.mp3")
    assert src.label == f"{url}/remote.mp3"
    assert abs(src.decode().duration_s - 2.0) < 0.05


def test_url_errors_name_the_url_and_cause(file_server, monkeypatch):
    root, url = file_server
    with pytest.raises(AudioError, match=r"missing\.mp3: could not download: HTTP 404"):
        audio.as_source(f"{url}/missing.mp3").decode()
    tone_file(root / "big.wav", 2.0)
    monkeypatch.setattr(audio, "MAX_DOWNLOAD_BYTES", 1000)
    with pytest.raises(AudioError, match="cap"):
        audio._download(f"{url}/big.wav", limit=1000)
    with pytest.raises(AudioError, match="could not download"):
        audio.as_source("http://127.0.0.1:9/nothing.mp3").decode()


def test_missing_file(tmp_path):
    with pytest.raises(AudioError) as err:
        audio.as_source("interviews/nope.mp3").decode()
    assert str(err.value).startswith("interviews/nope.mp3: no such file")


def test_directory(tmp_path):
    with pytest.raises(AudioError, match="is a directory"):
        audio.as_source(str(tmp_path)).decode()


def test_not_audio(tmp_path):
    fake = tmp_path / "notes.mp3"
    fake.write_text("these are meeting notes, not audio\n" * 20)
    with pytest.raises(AudioError, match="notes.mp3: not a readable audio or video file"):
        audio.as_source(str(fake)).decode()
    with pytest.raises(AudioError, match="not a readable"):
        audio.as_source(np.random.default_rng(0).bytes(4000)).decode()


def test_video_without_audio_track(tmp_path):
    import av

    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(AudioError, match="has no audio track"):
        audio.as_source(str(path)).decode()


def test_empty_audio(tmp_path):
    import wave

    path = tmp_path / "empty.wav"
    with wave.open(str(path), "wb") as w:  # a valid header and zero frames
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16_000)
    with pytest.raises(AudioError, match=r"empty\.wav: contains no audio samples \(0 s\)"):
        audio.as_source(str(path)).decode()


def test_truncated_file_keeps_what_decodes(tmp_path):
    path = tone_file(tmp_path / "cut.mp3", 4.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    pcm = audio.as_source(str(path)).decode()
    assert 1.0 < pcm.duration_s < 3.0


def test_unusable_object():
    with pytest.raises(AudioError, match="cannot use a dict as audio"):
        audio.as_source({"not": "audio"})


def test_unknown_upload_format():
    pcm = audio.as_source((tone(0.5, 16_000, 1), 16_000)).decode()
    with pytest.raises(AudioError, match="unknown upload format 'opus'"):
        audio.encode(pcm, "opus")


def test_a_compact_mp3_is_uploaded_as_it_is(tmp_path):
    from voxmagic.testing.synth import speechlike, write_audio

    memo = write_audio(tmp_path / "memo.mp3", speechlike(3.0, 16_000), 16_000)  # ~28 kbit/s mono
    enc = audio.prepare(str(memo))
    assert enc.data == memo.read_bytes() and enc.format == "mp3"
    assert enc.duration_s == audio.as_source(str(memo)).decode().duration_s  # exact, from decoding
    loud = tone_file(tmp_path / "music.mp3", 3.0)  # 44.1 kHz stereo at 128 kbit/s: re-encoded
    assert audio.prepare(str(loud)).data != loud.read_bytes()
    assert audio.prepare(str(memo), "flac").format == "flac"  # another format was asked for
    assert audio.as_source(str(memo)).as_is("mp3", max_s=2.0) is None  # too long to go whole
