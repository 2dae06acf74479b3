"""Samples a user hands over as numbers — a NumPy array (or anything with ``dtype`` and
``shape``: torch, pandas) and its rate — checked on arrival, so a mistake is one line naming the
source and what to pass instead, never a bare OverflowError deep inside decoding."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from . import limits
from .errors import AudioError

# Hz an array may claim (voxmagic.limits): 16, kHz meant as Hz, would make the audio 1000× too long
ARRAY_RATES = (int(limits.BOUNDS["sample_rate"].lo or 0), int(limits.BOUNDS["sample_rate"].hi or 0))
MAX_CHANNELS = 8


def is_array_pair(value: Any) -> bool:
    """True for ``(samples, rate)``: a 2-tuple whose first item is an array (NumPy, or anything with
    a ``shape`` and ``dtype``) and whose second is not. The one rule every caller uses, so a tuple
    never counts as one source here and two there; a bad rate in it is then reported as such by
    :func:`as_source` instead of being read as a second source (``(a, b)`` of two arrays is two)."""
    return isinstance(value, tuple) and len(value) == 2 and is_array(value[0]) and not is_array(value[1])


def sample_rate(rate: Any, name: str) -> int:
    """An array's rate as an int, or an AudioError saying what to pass instead."""
    if rate is None:
        raise AudioError(name, "a numpy array needs its sample rate: pass (array, rate), e.g. (samples, 16000)")
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real):
        raise AudioError(
            name, f"sample rate {rate!r} is a {type(rate).__name__}, not a number of Hz; pass an int such as 16000"
        )
    if not isinstance(rate, numbers.Integral) and not _is_whole(rate):
        raise AudioError(name, f"sample rate {rate} is not a whole number of Hz; pass an int such as 16000")
    hz = int(float(rate))
    low, high = ARRAY_RATES
    if not low <= hz <= high:
        raise AudioError(
            name, f"sample rate {hz:,} Hz is outside {low:,}–{high:,} Hz; pass samples per second (16 kHz is 16000)"
        )
    return hz


def _is_whole(x: numbers.Real) -> bool:
    try:
        return float(x).is_integer()  # False for NaN and ±inf
    except OverflowError:
        return False


def samples(obj: Any, name: str) -> np.ndarray:
    """Samples as a real-valued (samples,) or (channels, samples) array of finite numbers, or an
    AudioError. (samples, channels), as soundfile and scipy return them, is transposed."""
    try:
        a = np.asarray(obj)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise AudioError(
            name,
            f"cannot read a {type(obj).__name__} as a NumPy array ({exc}); "
            "pass a NumPy array (e.g. tensor.cpu().numpy())",
        ) from exc
    if a.dtype.kind == "b":
        raise AudioError(name, "array is boolean (a mask?), not samples; pass int or float samples")
    if a.dtype.kind == "c":
        raise AudioError(name, "array holds complex numbers; pass real samples (e.g. array.real)")
    if a.dtype.kind not in "iuf":
        raise AudioError(
            name,
            f"array of dtype {a.dtype.name} is not audio samples; pass int or float samples "
            "(e.g. array.astype(np.float32))",
        )
    if a.ndim == 2 and a.shape[0] > MAX_CHANNELS >= a.shape[1]:
        a = a.T
    if a.ndim not in (1, 2) or a.ndim == 2 and a.shape[0] > MAX_CHANNELS:
        raise AudioError(
            name, f"array shape {a.shape} is not (samples,) or (channels, samples) with at most {MAX_CHANNELS} channels"
        )
    if a.size == 0:
        raise AudioError(name, f"array is empty (shape {a.shape}); pass at least one sample")
    step = 1 << 20  # checked in slices: no whole-array temporary
    if a.dtype.kind == "f" and not all(np.isfinite(a[..., i : i + step]).all() for i in range(0, a.shape[-1], step)):
        raise AudioError(name, "array contains NaN or infinite values; replace them (e.g. np.nan_to_num(array))")
    return a


def is_array(x: Any) -> bool:
    return hasattr(x, "dtype") and isinstance(getattr(x, "shape", None), tuple) and len(x.shape) >= 1


def is_pandas(x: Any) -> bool:
    return any(c.__name__ in ("Series", "Index") and c.__module__.startswith("pandas") for c in type(x).__mro__)
