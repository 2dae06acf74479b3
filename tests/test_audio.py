"""Audio in: real decoding of real containers, real encoding, clear errors for bad input,
bounded and interruptible downloads from a real local HTTP server."""
from __future__ import annotations

import asyncio
import json
import signal
import struct
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest

import voxmagic
from voxmagic import audio
from voxmagic.errors import AudioError
from voxmagic.loop import LOOP
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


def _two_voices(path, codec: str, fmt: str, rate: int = 44_100, seconds: float = 23.0):
    """A stereo file whose channels differ (a tone left, another right): a decoder's planes or
    interleaved channels mixed up, or one dropped, is heard in the downmix."""
    import av

    t = np.arange(int(seconds * rate)) / rate
    left, right = 0.4 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 1234 * t + 1.0)
    x = np.stack([left, right]).astype(np.float32)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="stereo")
        for start in range(0, x.shape[1], 4000):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, start : start + 4000]), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


LOSSLESS = [("flac", "flac", "flac"), ("pcm_s24le", "wav", "wav"), ("pcm_u8", "wav", "wav"), ("pcm_f32le", "wav", "wav")]


@pytest.mark.parametrize("codec, fmt, suffix, moment", [
    *[(*c, None) for c in LOSSLESS], *[(*c, (3.21, 14.007)) for c in LOSSLESS],
    ("libmp3lame", "mp3", "mp3", None), ("aac", "adts", "aac", None)])  # a lossy moment: see test_moments
def test_decoding_gives_every_channel_of_every_frame_as_pyav_reads_it(tmp_path, codec, fmt, suffix, moment):
    """voxmagic's decode equals the file's frames read one by one with PyAV's own ``to_ndarray``,
    downmixed and resampled alike: packed and planar sample formats (s16, s32, u8, flt, fltp),
    ~10-s pieces gathered from many frames, and a moment's first and last frames cut to the sample
    (lossless files, where a moment is exact)."""
    import av

    from voxmagic.resample import resampled

    path = _two_voices(tmp_path / f"two.{suffix}", codec, fmt)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray() for f in container.decode(container.streams.audio[0])]
        planar, rate = container.streams.audio[0].format.is_planar, container.streams.audio[0].rate
    whole = np.concatenate([f if planar else f.reshape(-1, 2).T for f in frames], axis=1)
    a, b = (0, whole.shape[1]) if moment is None else (round(moment[0] * rate), round(moment[1] * rate))
    expected = np.concatenate(list(resampled([(whole[:, a:b], rate)])))
    source = voxmagic.as_source(str(path))
    got = (source if moment is None else source.moments(moment)).decode().samples
    assert got.size == expected.size and np.array_equal(got, expected)
    assert np.abs(got).max() > 0.25 * 32768  # not silent: both tones are in it


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


GOOD = np.zeros(1600, np.float32)


@pytest.mark.parametrize("rate, says", [
    (-16_000, "-16,000 Hz is outside 1,000–768,000 Hz"), (0, "0 Hz is outside"),
    (16, r"16 Hz is outside .*\(16 kHz is 16000\)"), (10**12, "is outside"), (2**31, "is outside"),
    (float("nan"), "nan is not a whole number"), (float("inf"), "inf is not a whole number"),
    (16_000.5, "16000.5 is not a whole number"), (np.float64(8000.5), "8000.5 is not a whole number"),
    ("16000", "'16000' is a str, not a number of Hz"), (True, "True is a bool"),
    (None, "needs its sample rate"), ([16_000], "is a list"),
])
def test_bad_rates_are_one_line_audio_errors_at_as_source(rate, says):
    for call in (lambda: audio.as_source((GOOD, rate), label="clip"),
                 lambda: audio.as_source(GOOD, sample_rate=rate, label="clip")):
        with pytest.raises(AudioError, match=f"^clip: .*{says}") as err:
            call()  # no decoding: the check happens where the array comes in
        assert "\n" not in str(err.value) and "pass" in str(err.value)


def test_whole_rates_of_any_numeric_type_are_taken():
    for rate in (16_000, 16_000.0, np.int32(16_000), np.float32(16_000), Fraction(16_000)):
        src = audio.as_source((GOOD, rate))
        assert src.sample_rate == 16_000 and type(src.sample_rate) is int
        assert src.label == "<array 0.10 s @ 16000 Hz>"


@pytest.mark.parametrize("samples, says", [
    (np.array(["a", "b"]), "dtype str32 is not audio samples; pass int or float samples"),
    (np.array([0.1, None], dtype=object), "dtype object is not audio samples"),
    (np.zeros(10, complex), "complex numbers; pass real samples"),
    (np.zeros(10, bool), "boolean"),
    (np.zeros(3, "datetime64[s]"), "is not audio samples"),
    (np.zeros(0, np.float32), r"empty \(shape \(0,\)\)"),
    (np.zeros((2, 0), np.float32), "empty"),
    (np.zeros((3, 3, 3)), r"shape \(3, 3, 3\) is not \(samples,\) or \(channels, samples\)"),
    (np.zeros((100, 100)), "at most 8 channels"),
    (np.full(1600, np.nan, np.float32), "NaN or infinite values; replace them"),
    (np.r_[np.zeros(1600, np.float32), np.inf], "NaN or infinite"),
])
def test_bad_arrays_are_one_line_audio_errors_at_as_source(samples, says):
    with pytest.raises(AudioError, match=f"^take3: .*{says}") as err:
        audio.as_source((samples, 16_000), label="take3")
    assert "\n" not in str(err.value)


def test_array_layouts_and_integer_types():
    wave = tone(1.0, 16_000, 2)  # (channels, samples) as IPython.display.Audio takes it
    as_soundfile_reads_it = np.ascontiguousarray(wave.T)  # (samples, channels)
    for arr in (wave, as_soundfile_reads_it, wave[0], wave[0].astype(np.float16)):
        assert abs(audio.as_source((arr, 16_000)).decode().duration_s - 1.0) < 0.01
    src = audio.as_source((as_soundfile_reads_it, 16_000))
    assert src.probe_duration() == 1.0 and src.label == "<array 1.00 s @ 16000 Hz>"
    for dtype in (np.int16, np.int32, np.uint8, np.uint16):  # unsigned PCM is centred on the middle
        half = (np.iinfo(dtype).max + 1) // (1 if np.iinfo(dtype).min else 2)  # full scale
        ints = (wave[0] * half + (half if dtype in (np.uint8, np.uint16) else 0)).astype(dtype)
        peak = np.abs(audio.as_source((ints, 16_000)).decode().samples).max() / 32768
        assert 0.2 < peak < 0.4, dtype


def test_one_rule_for_an_array_and_its_rate():
    arr = np.zeros(16_000, np.float32)
    pair = (arr, 16_000)
    assert audio.is_array_pair(pair) and audio.is_array_pair((arr, "16000"))  # a bad rate, said so
    assert audio.is_array_pair((arr, np.int64(16_000)))
    assert not audio.is_array_pair((arr, arr))  # two arrays: two sources
    assert not audio.is_array_pair([arr, 16_000]) and not audio.is_array_pair((arr,))
    assert not audio.is_array_pair(("a.mp3", "b.mp3")) and not audio.is_array_pair((np.float32(1), 16_000))
    assert audio.as_list(pair) == [pair]
    assert audio.as_list([pair, pair]) == [pair, pair] and audio.as_list((pair, "b.mp3")) == [pair, "b.mp3"]
    assert audio.as_list(("a.mp3", "b.mp3")) == ["a.mp3", "b.mp3"]
    assert audio.as_list("a.mp3") == ["a.mp3"] and audio.as_list(b"RIFF") == [b"RIFF"]
    assert len(audio.as_list((arr, arr))) == 2
    with pytest.raises(AudioError, match="'16000' is a str"):
        audio.as_source(audio.as_list((arr, "16000"))[0])


def test_pandas_holds_several_sources():
    pd = pytest.importorskip("pandas")
    assert audio.as_list(pd.Series(["a.mp3", "b.mp3"])) == ["a.mp3", "b.mp3"]
    assert audio.as_list(pd.Index(["a.mp3"])) == ["a.mp3"]
    assert audio.as_list(pd.RangeIndex(2)) == [0, 1]
    samples = pd.Series(np.zeros(8_000, np.float32))
    assert audio.as_source((samples, 16_000)).probe_duration() == 0.5  # inside a pair: samples
    with pytest.raises(AudioError, match="several sources"):
        audio.as_source(pd.Series(["a.mp3"]))


def test_bytes_and_ipython_audio(tmp_path):
    from IPython.display import Audio

    path = tone_file(tmp_path / "a.flac", 1.5)
    from_bytes = audio.as_source(path.read_bytes()).decode()
    from_file = audio.as_source(Audio(filename=str(path))).decode()
    mono = tone(1.5, 22_050, 1)[0]
    from_array = audio.as_source(Audio(mono, rate=22_050)).decode()
    for pcm in (from_bytes, from_file, from_array):
        assert abs(pcm.duration_s - 1.5) < 0.02


def test_url_is_downloaded(file_server):
    root, url = file_server
    tone_file(root / "remote.mp3", 2.0)
    src = audio.as_source(f"{url}/remote.mp3")
    assert src.label == f"{url}/remote.mp3"
    assert abs(src.decode().duration_s - 2.0) < 0.05


def test_a_signed_urls_query_is_never_shown_or_stored(file_server, server, tmp_path):
    """A presigned URL's token showed on the progress line and in the source column, and was
    written to the history and the subtitles' index: it is a credential."""
    root, url = file_server
    tone_file(root / "remote.mp3", 2.0)
    signed = f"{url}/remote.mp3?X-Amz-Signature=SECRETTOKEN123&X-Amz-Expires=60"
    src = audio.as_source(signed)
    assert src.label == f"{url}/remote.mp3?…" and src.url == signed
    df = voxmagic.transcribe(signed, base_url=server.base_url, api_key="k", segments=True, cache=False)
    assert df["error"].isna().all() and (df["source"] == f"{url}/remote.mp3?…").all()
    for t in voxmagic.transcripts(signed, base_url=server.base_url, api_key="k"):
        t.save(tmp_path / "subs", "srt")
    stored = "".join(p.read_text() for p in (tmp_path / "subs").iterdir()) + voxmagic.history().to_csv()
    assert "SECRETTOKEN123" not in stored and "remote.mp3?…" in stored
    again = voxmagic.ask(df.iloc[0], "Again?", base_url=server.base_url, api_key="k")  # the row finds its audio
    assert again.text.startswith("Heard 1 clips")
    with pytest.raises(AudioError, match=r"missing\.mp3\?…: could not download: HTTP 404") as caught:
        audio.as_source(f"{url}/missing.mp3?sig=SECRETTOKEN123").decode()
    assert "SECRETTOKEN123" not in str(caught.value)
    audio._URLS.clear()  # a new session: the saved table's source cannot find its token
    with pytest.raises(AudioError, match=r"remote\.mp3\?…: is a URL shown without its query .*give the full URL"):
        voxmagic.ask(df.iloc[0], "Again?", base_url=server.base_url, api_key="k")


def test_url_errors_name_the_url_and_cause(file_server, monkeypatch):
    root, url = file_server
    with pytest.raises(AudioError, match=r"missing\.mp3: could not download: HTTP 404"):
        audio.as_source(f"{url}/missing.mp3").decode()
    tone_file(root / "big.wav", 2.0)
    with pytest.raises(AudioError, match=r"big\.wav: download is [\d,]+ bytes, over the 1,000-byte cap"):
        asyncio.run(audio.download(f"{url}/big.wav", limit=1000))
    monkeypatch.setattr(audio, "MAX_DOWNLOAD_BYTES", 1000)  # the sync path reads it when called
    with pytest.raises(AudioError, match="over the 1,000-byte cap"):
        audio.as_source(f"{url}/big.wav").decode()
    with pytest.raises(AudioError, match=r"nothing\.mp3: could not download: .*(refused|connect)"):
        audio.as_source("http://127.0.0.1:9/nothing.mp3").decode()


def test_fetched_turns_a_url_into_bytes_with_the_same_label(file_server, tmp_path):
    root, url = file_server
    path = tone_file(root / "remote.mp3", 2.0)
    src = audio.as_source(f"{url}/remote.mp3")
    local = asyncio.run(audio.fetched(src))
    assert local.url is None and local.data == path.read_bytes() and local.label == src.label
    assert abs(local.probe_duration() - 2.0) < 0.1  # now readable without the network
    other = audio.as_source(str(path))
    assert asyncio.run(audio.fetched(other)) is other
    assert audio.prepare(f"{url}/remote.mp3").data == audio.prepare(str(path)).data


def test_a_slow_download_ends_at_the_total_time_limit(file_server):
    url = f"{file_server.url}/drip"
    started = time.monotonic()
    with pytest.raises(AudioError) as err:
        asyncio.run(audio.download(url, timeout_s=1))
    assert 0.9 < time.monotonic() - started < 3
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{url}: download took longer than 1 s (")
    assert message.endswith(" bytes so far); download the file yourself and pass its path, "
                            "or raise download_timeout")
    assert file_server.wait_for(lambda s: s.open_drips == 0, timeout=2)


def test_cancelling_a_download_closes_its_connection_at_once(file_server):
    async def main():
        task = asyncio.create_task(audio.download(f"{file_server.url}/drip"))
        while not file_server.open_drips:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # some bytes flow
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic()

    cancelled_at = asyncio.run(main())
    assert file_server.wait_for(lambda s: s.open_drips == 0, timeout=3)
    assert time.monotonic() - cancelled_at < 3  # an open drip would go on for hours


def test_the_sync_path_is_bounded_by_the_time_limit(file_server, monkeypatch):
    monkeypatch.setattr(audio, "DOWNLOAD_TIMEOUT_S", 1)
    started = time.monotonic()
    with pytest.raises(AudioError, match="download took longer than 1 s"):
        audio.as_source(f"{file_server.url}/drip").decode()
    assert time.monotonic() - started < 3
    assert file_server.wait_for(lambda s: s.open_drips == 0, timeout=2)


def test_a_kernel_interrupt_stops_a_sync_download_and_closes_the_socket(file_server):
    def interrupt(signum, frame):
        raise KeyboardInterrupt  # what ipykernel's SIGINT handler does in the main thread

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            audio.as_source(f"{file_server.url}/drip").decode()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 5  # 0.5 s until the interrupt, then at once (the drip lasts hours)
    assert file_server.drips_started == 1
    assert file_server.wait_for(lambda s: s.open_drips == 0, timeout=1)


def test_a_blocking_download_on_voxmagics_loop_says_to_await_fetched(file_server):
    async def on_the_loop():
        return audio.as_source(f"{file_server.url}/drip").decode()

    with pytest.raises(RuntimeError, match=r"await voxmagic\.audio\.fetched\(source\)"):
        LOOP.run(on_the_loop())
    assert file_server.drips_started == 0


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
    (tmp_path / "empty.wav").write_bytes(b"")  # a download or a copy that never finished
    with pytest.raises(AudioError, match=r"empty.wav: is empty \(0 bytes\)$"):
        audio.as_source(str(tmp_path / "empty.wav")).decode()


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


def test_probe_duration_reads_headers_only(file_server, tmp_path):
    path = tone_file(tmp_path / "clip.mp3", TRUTH_S)
    assert abs(audio.as_source(str(path)).probe_duration() - TRUTH_S) < 0.1
    assert abs(audio.as_source(path.read_bytes()).probe_duration() - TRUTH_S) < 0.1
    assert audio.as_source((np.zeros(12_345, np.int16), 8_000)).probe_duration() == 12_345 / 8_000
    assert audio.as_source(f"{file_server.url}/clip.mp3").probe_duration() is None  # no download
    assert audio.as_source(str(tmp_path / "missing.wav")).probe_duration() is None
    notes = tmp_path / "notes.mp3"
    notes.write_text("not audio\n" * 50)
    assert audio.as_source(str(notes)).probe_duration() is None  # decoding gives the real error
    assert file_server.drips_started == 0


def _three_hour_wav(path) -> float:
    """A WAV whose header declares 3 hours of 8 kHz 8-bit mono; sparse, so nothing is written."""
    rate, n = 8_000, 3 * 3600 * 8_000
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE" + b"fmt "
                + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8) + b"data" + struct.pack("<I", n))
        f.truncate(44 + n)
    return n / rate


def _three_hour_mp3(path) -> float:
    """About 3 hours of 8 kbit/s CBR MP3 silence: ten encoded seconds repeated (no Xing header, so
    FFmpeg has to estimate from the bit rate). Returns the true duration, from decoded samples."""
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3", container_options={"write_xing": "0", "id3v2_version": "0"}) as out:
        stream = out.add_stream("libmp3lame", rate=8_000, layout="mono")
        stream.bit_rate = 8_000
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 80_000), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 8_000, 0, Fraction(1, 8_000)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    piece = buf.getvalue()
    with av.open(io.BytesIO(piece)) as c:
        piece_s = sum(f.samples for f in c.decode(audio=0)) / 8_000
    repeats = round(3 * 3600 / piece_s)
    path.write_bytes(piece * repeats)
    return repeats * piece_s


PROBE = """
import json, resource, sys, time
import av
from voxmagic import audio
out = []
for path in sys.argv[1:]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    seconds = audio.as_source(path).probe_duration()
    out.append([seconds, time.perf_counter() - started,
                (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024])
print(json.dumps(out))
"""


def test_probe_duration_of_three_hour_files_is_cheap(tmp_path):
    wav, mp3 = tmp_path / "long.wav", tmp_path / "long.mp3"
    truths = [_three_hour_wav(wav), _three_hour_mp3(mp3)]
    assert mp3.stat().st_size > 10_000_000
    done = subprocess.run([sys.executable, "-c", PROBE, str(wav), str(mp3)], capture_output=True,
                          text=True, timeout=60, check=True)
    for (seconds, took_s, grew_mb), truth in zip(json.loads(done.stdout), truths):
        assert abs(seconds - truth) < 0.01 * truth
        assert took_s < 5 and grew_mb < 200  # loose: real figures belong in benchmarks (ms, a few MB)


@pytest.mark.parametrize("seconds", [0.3, 1.0, 7.25])
@pytest.mark.parametrize("encoder", ["lameenc", "pyav"])
def test_mp3_uploads_decode_to_exactly_the_samples_sent_in_place(monkeypatch, seconds, encoder):
    """The MP3 path (lameenc's LAME plus an Info frame, or PyAV's libmp3lame without lameenc)
    gives back as many samples as were encoded, not shifted by LAME's delay: timestamps the
    model reports map onto the source."""
    import av

    if encoder == "pyav":
        monkeypatch.setitem(sys.modules, "lameenc", None)  # `import lameenc` raises ImportError
    rng = np.random.default_rng(7)
    t = np.arange(round(seconds * 16_000)) / 16_000
    samples = (np.sin(2 * np.pi * 330 * t) * 9000 + rng.normal(0, 400, t.size)).astype(np.int16)
    enc = audio.encode(audio.PCM(samples), "mp3")
    with av.open(__import__("io").BytesIO(enc.data)) as container:
        back = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    assert back.size == samples.size
    sent = samples[800:-800].astype(float)
    assert np.corrcoef(sent, back[800:-800])[0, 1] > 0.99  # in place: a 576-sample shift gives ~0.5
    assert len(enc.data) < seconds * 32_000 / 8 + 1000  # 32 kbit/s plus the Info frame and padding


def test_lameenc_and_pyav_mp3_uploads_are_the_same_size():
    from voxmagic import codec, lame

    pcm = audio.PCM((np.sin(np.arange(48_000) / 9) * 5000).astype(np.int16))
    fast = lame.mp3([pcm.samples], 16_000, codec.ENCODERS["mp3"].bit_rate)
    assert fast is not None and fast[1] == pcm.samples.size
    fast = fast[0]
    assert fast[:4] == b"\xff\xf3\x58\xc4" and b"Info" in fast[:60]
    assert abs(len(fast) - len(codec._pyav_encoded(pcm, "mp3", codec.ENCODERS["mp3"].bit_rate))) < 200
    assert lame._info_frame(b"not mp3 frames at all", 100) is None
    assert lame._crc16(b"123456789") == 0xBB3D  # CRC-16/ARC's check value (the LAME tag's checksum)


def test_lame_gets_long_pieces_a_slice_at_a_time_and_makes_the_same_bytes(monkeypatch):
    """A 25-minute chunk in one lameenc call cost ~150 MB at the peak of preparing a 2-hour file
    (lameenc sizes its buffers by the call): slices go in instead, and the MP3 is the same."""
    from voxmagic import lame

    samples = (np.random.default_rng(3).standard_normal(16_000 * 7) * 3000).astype(np.int16)
    sizes: list[int] = []
    encoded = lame._encoded
    monkeypatch.setattr(lame, "_encoded", lambda enc, blocks: encoded(enc, (sizes.append(b.size) or b for b in blocks)))
    monkeypatch.setattr(lame, "SLICE", 16_000)
    sliced = lame.mp3([samples], 16_000, 32_000)
    assert sizes == [16_000] * 7
    monkeypatch.setattr(lame, "SLICE", 10**9)
    assert lame.mp3([samples], 16_000, 32_000) == sliced and sizes[7:] == [samples.size]


def test_a_file_is_encoded_while_it_is_decoded_into_the_same_bytes(tmp_path, monkeypatch):
    """AudioSource.prepare feeds decoded 10 s blocks to LAME on another thread: the upload is the
    one encoding all the samples at once gives, and without lameenc PyAV's gives the same audio."""
    import threading

    path = tone_file(tmp_path / "long.wav", 25.0, rate=44_100, channels=2)
    source = audio.as_source(str(path))
    whole = audio.encode(source.decode(), "mp3")
    before = threading.active_count()
    piped = source.prepare("mp3")
    assert piped.data == whole.data and piped.duration_s == whole.duration_s == 25.0
    assert threading.active_count() == before  # the encoder's thread is gone
    monkeypatch.setitem(sys.modules, "lameenc", None)
    slow = source.prepare("mp3")
    assert slow.duration_s == 25.0 and abs(len(slow.data) - len(piped.data)) < 1000


def test_a_source_that_breaks_while_it_is_encoded_raises_its_error_and_leaves_no_thread():
    import threading

    from voxmagic import codec

    def blocks():
        yield np.zeros(160_000, np.int16)
        yield np.ones(160_000, np.int16)
        raise AudioError("broken.mp3", "the file ends in the middle of a frame")

    before = threading.active_count()
    with pytest.raises(AudioError, match="middle of a frame"):
        codec.encode_blocks(blocks(), "mp3", label="broken.mp3")
    assert threading.active_count() == before


@pytest.mark.parametrize("rate", [22_050, 44_100, 48_000])
def test_resampling_keeps_speech_frequencies_and_removes_what_16k_cannot_hold(rate):
    """A 1 kHz and a 7 kHz tone pass at their amplitude; a 10 kHz tone, above the new Nyquist
    frequency, does not fold back into the band as an alias (≥ 40 dB down)."""
    t = np.arange(rate * 2) / rate

    def level(freq: float) -> tuple[float, float]:
        pcm = audio.as_source((np.sin(2 * np.pi * freq * t) * 0.5).astype(np.float32), sample_rate=rate).decode()
        x = pcm.samples[4000:-4000].astype(float) / 32768
        spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
        freqs = np.fft.rfftfreq(x.size, 1 / 16_000)
        return float(np.sqrt(np.mean(x**2)) * np.sqrt(2)), float(freqs[spectrum.argmax()])

    for freq in (1_000, 7_000):
        amplitude, peak = level(freq)
        assert abs(amplitude - 0.5) < 0.01 and abs(peak - freq) < 5
    amplitude, _ = level(10_000)
    assert amplitude < 0.5 / 100
