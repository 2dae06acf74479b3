"""Mistral's speaker and vocabulary fields for the local transcription server, and its diarizer.

The form (``_fake_transcriptions`` calls :func:`read_options`, :func:`check_options`, :func:`label`):
* ``diarize``: a form boolean ("true"/"false", as the SDK's ``utils/values.py`` writes it; other
  spellings pydantic takes are accepted, anything else is a 422 ``bool_parsing``). With it every
  segment carries ``speaker_id`` — "speaker_1", "speaker_2", ... (docs.mistral.ai/studio/audio/
  concepts/speakers-and-diarization; a real answer in BerriAI/litellm#23890: ``{"text", "start",
  "end", "speaker_id", "type"}``). It needs ``timestamp_granularities`` to be exactly ``["segment"]``
  (docs.mistral.ai/studio/audio/speech-to-text/diarize-speakers: "the request fails without segment
  timestamps"); the refusal is a 422 with the nested body quoted in laravel/ai#671.
* ``context_bias``: one form field per term (mistralai/client-python ``utils/forms.py`` sends a
  list so); a term must match ``^[^,\\s]+$`` — no spaces or commas, join words with ``_`` — or it
  is a 422 ``string_pattern_mismatch`` (vlebert/supervoxtral#2 and #4); at most 100 terms
  (docs.livekit.io/agents/models/stt/mistralai), above that a 422 ``too_long`` (pydantic's form of
  it, assumed). Accepted terms end each segment's text as ``(bias: term1 term2)``. (Mistral's newer
  page for the Voxtral Transcribe 3 models, docs.mistral.ai/studio/audio/speech-to-text/bias-context-
  and-vocabulary, sends multi-word entries like "Alder Creek Design"; the models served here are
  the Voxtral 2 ones the pattern was reported for.)
* No field names speakers: no public source documents speaker reference clips, so
  ``speaker_references`` (like any field Mistral does not know) is refused with its 422
  ``extra_forbidden`` before anything here runs.

The diarizer tells voices apart by what a test can synthesize exactly (``synth.voices``: each
speaker is its fundamental frequency), with numpy alone:
* Audio is decoded to 16 kHz mono. Frames of 40 ms every 20 ms; a frame is *voiced* when its RMS
  is within ``SILENCE_DB`` (30 dB) of the file's own loudness (the 95th percentile of the frames'
  RMS) and above -80 dBFS.
* The pitch of a voiced frame is the smallest lag whose (Hann-windowed, biased) autocorrelation
  peaks within 85 % of the highest peak between 60 and 500 Hz, refined by a parabola; a frame
  whose best peak is below 0.3 of its energy is aperiodic (no pitch).
* Voiced frames make *runs*; quiet gaps shorter than ``MIN_PAUSE_S`` (0.25 s, syllables) are
  bridged, and runs with no pitched frame are not speech. A run is cut where its pitch (median of
  7 frames) moves more than ``TOLERANCE_ST`` semitones from the current turn's and stays there for
  ``MIN_TURN_S`` (0.3 s). A turn longer than ``MAX_SEGMENT_S`` is split into equal pieces.
* Voices are clustered within one request, in time order: a turn joins the first-seen voice whose
  pitch (the median of its first turn) is within ``TOLERANCE_ST`` (2 semitones, ±12 %), else it
  starts a new voice. Pitches 4 semitones apart or more are always told apart.
* Labels, in order of first appearance: ``speaker_1``, ``speaker_2``, ... (the form Mistral
  answers). Each request is labelled on its own, so the labels of a later chunk of a long file
  follow that chunk's own order and drift as the real API's do (a client that wants them to agree
  overlaps the chunks and matches labels in the overlap).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._fake_forms import Fields, FormError, mistral_422, one

RATE = 16_000
HOP_S, WIN_S = 0.02, 0.04
MIN_PITCH, MAX_PITCH = 60.0, 500.0
SILENCE_DB = 30.0
MIN_PAUSE_S = 0.25
MIN_TURN_S = 0.3
TOLERANCE_ST = 4.0
MIN_VOICE_S = 0.8  # a shorter turn (a word, a pitch error) never starts a new voice
MAX_SEGMENT_S = 10.0
BIAS_TERM, MAX_BIAS_TERMS = r"^[^,\s]+$", 100
_BOOLS = {"true": True, "t": True, "yes": True, "y": True, "on": True, "1": True}
_BOOLS |= {"false": False, "f": False, "no": False, "n": False, "off": False, "0": False}
_HOP, _WIN, _NFFT = round(HOP_S * RATE), round(WIN_S * RATE), 1024
_LAGS = (math.floor(RATE / MAX_PITCH), math.ceil(RATE / MIN_PITCH))
_BLOCK = 2048  # frames analysed at once (bounds memory on long files)


@dataclass(frozen=True)
class Turn:
    """One diarized segment: its span in seconds, its median pitch and the speaker's label."""

    start: float
    end: float
    pitch: float
    speaker: str

    def text(self, index: int, sha256: str) -> str:
        """What the fake model "heard": ``segment 2 3.7-6.2 s voice 220 Hz heard 3fa9c1d2e4b5``."""
        return f"segment {index} {self.start:.1f}-{self.end:.1f} s voice {self.pitch:.0f} Hz heard {sha256[:12]}"


def decode_mono(raw: bytes) -> np.ndarray:
    """Every sample of the first audio stream, resampled to 16 kHz mono float32 (PyAV)."""
    import av

    chunks = []
    with av.open(io.BytesIO(raw), mode="r") as container:
        stream = next(s for s in container.streams if s.type == "audio")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        for frame in container.decode(stream):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def _frames(x: np.ndarray) -> np.ndarray:
    if x.size < _WIN:
        x = np.pad(x, (0, _WIN - x.size))
    return np.lib.stride_tricks.sliding_window_view(x, _WIN)[::_HOP]


def _pitch_of(frames: np.ndarray) -> np.ndarray:
    """Pitch in Hz of each frame (rows), NaN where aperiodic."""
    w = (frames - frames.mean(axis=1, keepdims=True)) * np.hanning(_WIN)
    spec = np.fft.rfft(w, _NFFT)
    r = np.fft.irfft(spec.real**2 + spec.imag**2, _NFFT)[:, : _LAGS[1] + 2]
    r = r / np.maximum(r[:, :1], 1e-12)
    lo, hi = _LAGS
    mid = r[:, lo : hi + 1]
    peak = (mid >= r[:, lo - 1 : hi]) & (mid >= r[:, lo + 1 : hi + 2])
    best = np.where(peak, mid, -1.0).max(axis=1)
    first = np.argmax(peak & (mid >= 0.85 * best[:, None]), axis=1)
    lag = first + lo
    rows = np.arange(len(r))
    a, b, c = r[rows, lag - 1], r[rows, lag], r[rows, lag + 1]
    den = a - 2 * b + c
    shift = np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / np.where(den == 0, 1, den), 0.0)
    return np.where(best >= 0.3, RATE / (lag + np.clip(shift, -0.5, 0.5)), np.nan)


def analyse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: voiced (bool) and pitch in Hz (NaN when unvoiced or aperiodic)."""
    frames = _frames(x)
    rms = np.sqrt(np.concatenate([np.mean(frames[i : i + _BLOCK] ** 2, axis=1) for i in range(0, len(frames), _BLOCK)]))
    loud = float(np.percentile(rms, 95)) if rms.size else 0.0
    voiced = (rms > 1e-4) & (rms > loud * 10 ** (-SILENCE_DB / 20))
    pitch = np.full(len(frames), np.nan)
    idx = np.flatnonzero(voiced)
    for i in range(0, idx.size, _BLOCK):
        part = idx[i : i + _BLOCK]
        pitch[part] = _pitch_of(np.asarray(frames[part], dtype=np.float64))
    return voiced, pitch


def _runs(voiced: np.ndarray) -> list[tuple[int, int]]:
    """[first, last + 1) frame ranges of voiced stretches, gaps shorter than MIN_PAUSE_S bridged."""
    idx = np.flatnonzero(voiced)
    if not idx.size:
        return []
    gap = np.flatnonzero(np.diff(idx) > round(MIN_PAUSE_S / HOP_S))
    starts = [idx[0], *idx[gap + 1]]
    ends = [*(idx[gap] + 1), idx[-1] + 1]
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def _semitones(hz: np.ndarray) -> np.ndarray:
    return 12 * np.log2(hz / 55.0)


def _cuts(pitch: np.ndarray) -> list[int]:
    """Offsets within one run where a new voice starts (see the module docstring)."""
    s = _semitones(pitch)
    known = np.flatnonzero(~np.isnan(s))
    s = np.interp(np.arange(s.size), known, s[known])  # fill aperiodic frames from neighbours
    smooth = np.median(np.lib.stride_tricks.sliding_window_view(np.pad(s, 3, mode="edge"), 7), axis=1)
    persist = round(MIN_TURN_S / HOP_S)
    cuts, ref, i = [0], float(np.median(smooth[:persist])), 1
    while i + persist <= smooth.size:
        if np.all(np.abs(smooth[i : i + persist] - ref) > TOLERANCE_ST):
            cuts.append(i)
            ref = float(np.median(smooth[i : i + persist]))
            i += persist
        else:
            i += 1
    return cuts


def turns(x: np.ndarray) -> list[tuple[float, float, float]]:
    """``(start_s, end_s, pitch_hz)`` of each stretch of one voice, in time order."""
    voiced, pitch = analyse(x)
    out = []
    for a, b in _runs(voiced):
        if np.all(np.isnan(pitch[a:b])):
            continue  # noise, clicks: not a voice
        bounds = [a + c for c in _cuts(pitch[a:b])] + [b]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            hz = pitch[lo:hi][~np.isnan(pitch[lo:hi])]
            if not hz.size:
                continue
            start, end = lo * HOP_S + WIN_S / 2, min((hi - 1) * HOP_S + WIN_S / 2, x.size / RATE)
            n = max(1, math.ceil((end - start) / MAX_SEGMENT_S - 1e-9))
            for k in range(n):
                out.append((start + k * (end - start) / n, start + (k + 1) * (end - start) / n, float(np.median(hz))))
    return out


def same_voice(a: float, b: float) -> bool:
    return abs(12 * math.log2(a / b)) <= TOLERANCE_ST


def diarize(x: np.ndarray) -> list[Turn]:
    """Label each turn of `x` with its speaker, ``speaker_1`` the voice heard first."""
    spans = turns(x)
    centers: list[float] = []
    voice_of: list[int] = []
    for a, b, hz in spans:
        match = [i for i, c in enumerate(centers) if same_voice(hz, c)]
        if not match and b - a < MIN_VOICE_S and voice_of:
            voice_of.append(voice_of[-1])  # too short to tell: the voice heard just before
            continue
        if not match:
            centers.append(hz)
        voice_of.append(min(match, key=lambda i: abs(math.log2(hz / centers[i]))) if match else len(centers) - 1)
    labels = [f"speaker_{v + 1}" for v in voice_of]  # voices are numbered in order of first appearance
    return [Turn(round(a, 1), round(b, 1), hz, who) for (a, b, hz), who in zip(spans, labels, strict=True)]


# -- the form ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    """Mistral's speaker and vocabulary fields of one form."""

    diarize: bool = False
    bias: tuple[str, ...] = ()


def _too_long(name: str, values: list[str], most: int) -> FormError:
    message = f"List should have at most {most} items after validation, not {len(values)}"
    ctx = {"field_type": "List", "max_length": most, "actual_length": len(values)}
    return mistral_422(name, "too_long", message, values, **ctx)


def read_options(fields: Fields) -> Options:
    """The fields as Mistral's form model reads them (its 422s), before the model and file checks."""
    raw = one(fields, "diarize")
    if raw is not None and raw.strip().lower() not in _BOOLS:
        raise mistral_422("diarize", "bool_parsing", "Input should be a valid boolean, unable to interpret input", raw)
    bias = [v for k, v in fields if k == "context_bias"]
    for i, term in enumerate(bias):
        if not re.fullmatch(BIAS_TERM[1:-1], term):
            message = f"String should match pattern '{BIAS_TERM}'"
            raise mistral_422(["context_bias", i], "string_pattern_mismatch", message, term, pattern=BIAS_TERM)
    if len(bias) > MAX_BIAS_TERMS:
        raise _too_long("context_bias", bias, MAX_BIAS_TERMS)
    return Options(bool(raw is not None and _BOOLS[raw.strip().lower()]), tuple(bias))


def check_options(options: Options, fields: Fields, granularities: list[str]) -> None:
    """After the model and file checks: diarize needs segment timestamps."""
    if options.diarize and granularities != ["segment"]:
        raise diarize_refusal(fields, granularities, list(options.bias))


def diarize_refusal(fields: Fields, granularities: list[str], bias: list[str]) -> FormError:
    """Mistral's answer to ``diarize`` without ``timestamp_granularities=["segment"]``, as quoted
    in laravel/ai#671: a 422 whose ``message`` nests the failed assertion and the parsed request."""
    temperature = one(fields, "temperature")
    request: dict[str, Any] = {"model": one(fields, "model"), "audio": "--audio-bytes--"}
    request |= {"language": one(fields, "language") or None}
    request |= {"temperature": float(temperature) if temperature else None, "max_tokens": None, "stream": False}
    request |= {"return_language": False, "streaming": "disabled", "timestamp_granularities": granularities}
    request |= {"diarize": True, "context_bias": bias, "target_streaming_delay_ms": None, "metadata": None}
    message = (
        "Assertion failed, When diarize is set to True and streaming is disabled, the timestamp granularity "
        f"must be set to ['segment'], got {granularities!r}"
    )
    detail = {"type": "assertion_error", "loc": [], "msg": message, "input": request, "ctx": {"error": {}}}
    body = {"object": "error", "message": {"detail": [detail]}, "type": "invalid_request_error", "param": None}
    return FormError(422, body | {"code": None, "raw_status_code": 422})


def label(options: Options, raw: bytes) -> list[Turn] | None:
    """The diarized turns of the (already decoded once) file, or None without diarize."""
    if not options.diarize:
        return None
    return diarize(decode_mono(raw))
