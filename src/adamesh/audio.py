"""Audio loading: any format libsndfile reads (wav, flac, ogg, mp3), mono, resampled on request."""

from __future__ import annotations

import math
import os
from fractions import Fraction
from numbers import Real

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from adamesh.errors import AdameshError

SAMPLE_RATE = 16000  # the rate speech front-ends work at


def load_audio(path: str | os.PathLike, sample_rate: int | None = SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """Read `path` as float32 mono in [-1, 1]; resample to `sample_rate` (None keeps the file's).

    Returns (samples, rate). Unreadable files raise AdameshError naming the file.
    """
    if not os.path.isfile(path):
        raise AdameshError(f"audio file {path} does not exist")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise AdameshError(f"cannot read audio {path}: {e}") from None
    mono = data.mean(axis=1)
    if sample_rate and rate != sample_rate:
        mono = resample(mono, rate, sample_rate)
        rate = sample_rate
    return np.ascontiguousarray(mono, np.float32), int(rate)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased) between integer rates."""
    if rate_in == rate_out:
        return x
    ratio = Fraction(rate_out, rate_in)
    y = resample_poly(x.astype(np.float64), ratio.numerator, ratio.denominator)
    n = int(math.floor(len(x) * rate_out / rate_in + 0.5))
    return y[:n].astype(np.float32)


def frame_count(n_samples: int, sample_rate: int, fps: Real) -> int:
    """Motion frames covering `n_samples` of audio: round(duration * fps), halves rounded up, at least 1.

    Exact rational arithmetic, so audio features and motion always agree on the length.
    """
    n = Fraction(n_samples) * Fraction(fps).limit_denominator(1001) / sample_rate
    return max(1, math.floor(n + Fraction(1, 2)))
