"""Speech degradations: the ways real recordings differ from clean synthetic voices.

Each takes 16 kHz mono float32 samples and a numpy Generator and returns samples of the same
length, so motion frames stay aligned. `degrade` names the benchmark's fixed conditions;
`random_degradation` draws a mix of them for training.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

from adamesh.audio import SAMPLE_RATE
from adamesh.errors import AdameshError

CONDITIONS = ("clean", "telephone", "noise10")
VERSION = (
    2  # of random_degradation: bump when it changes, so cached features of degraded copies are not reused
)


def _speech_power(x: np.ndarray) -> float:
    """Mean power of the louder half of 20 ms frames: the speech, not the pauses between words."""
    frames = x[: len(x) // 320 * 320].reshape(-1, 320) if len(x) >= 320 else x[None]
    power = np.sort((frames.astype(np.float64) ** 2).mean(1))
    return float(power[len(power) // 2 :].mean()) + 1e-12


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator, colour: float = 0.0) -> np.ndarray:
    """Noise at `snr_db` below the speech; colour 0 is white, 1 pink (power falling as 1/f), 2 brown."""
    noise = rng.standard_normal(len(x))
    if colour:
        spec = np.fft.rfft(noise)
        f = np.maximum(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE), 20.0)
        noise = np.fft.irfft(spec / f ** (colour / 2), len(x))
    noise *= np.sqrt(_speech_power(x) / 10 ** (snr_db / 10) / (np.mean(noise**2) + 1e-12))
    return _limit(x + noise)


def telephone(x: np.ndarray, rate: int = 8000, low: float = 300.0, high: float = 3400.0) -> np.ndarray:
    """Narrow-band speech: 300-3400 Hz at 8 kHz, brought back to 16 kHz."""
    sos = butter(4, [low, high], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    narrow = resample_poly(sosfilt(sos, x), rate, SAMPLE_RATE)
    return _limit(_fit(resample_poly(narrow, SAMPLE_RATE, rate), len(x)))


def reverb(x: np.ndarray, rng: np.random.Generator, rt60: float = 0.4, wet: float = 0.5) -> np.ndarray:
    """A room: exponentially decaying noise as impulse response, reverberation time `rt60` seconds."""
    n = max(1, int(rt60 * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 0.0
    ir *= wet / (np.sqrt(np.sum(ir**2)) + 1e-12)
    ir[0] = 1.0
    y = fftconvolve(x, ir)[: len(x)]
    return _limit(y * np.sqrt(np.mean(x**2) / (np.mean(y**2) + 1e-12)))


def degrade(x: np.ndarray, condition: str, seed: int = 0) -> np.ndarray:
    """One of CONDITIONS: clean, telephone (8 kHz band), noise10 (white noise at 10 dB SNR)."""
    x = np.asarray(x, np.float32)
    if condition == "clean":
        return x
    if condition == "telephone":
        return telephone(x)
    if condition == "noise10":
        return add_noise(x, 10.0, np.random.default_rng(seed))
    raise AdameshError(f"unknown audio condition {condition!r}; choose from {', '.join(CONDITIONS)}")


def random_degradation(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random mix for training: gain, then with some probability reverberation, band limits,
    and noise at 5-50 dB SNR, white to brown. Most real recordings have a noise floor, 20-50 dB
    under the speech in the real clips here; where the pauses are silent, they must stay so."""
    y = np.asarray(x, np.float64) * 10 ** (rng.uniform(-12, 6) / 20)
    if rng.random() < 0.3:
        y = reverb(y, rng, rt60=rng.uniform(0.15, 0.8), wet=rng.uniform(0.2, 0.8))
    if rng.random() < 0.25:
        y = telephone(
            y, rate=int(rng.choice([8000, 11025])), low=rng.uniform(80, 400), high=rng.uniform(3000, 3800)
        )
    elif rng.random() < 0.2:
        sos = butter(4, rng.uniform(3500, 7000), btype="lowpass", fs=SAMPLE_RATE, output="sos")
        y = sosfilt(sos, y)
    if rng.random() < 0.8:
        y = add_noise(y, rng.uniform(5, 50), rng, colour=rng.uniform(0, 2))
    return _limit(y).astype(np.float32)


def training_variant(audio: np.ndarray, audio_hash: str, variant: int) -> np.ndarray:
    """Degraded copy number `variant` of a training clip: the same for the same clip and number."""
    return random_degradation(audio, np.random.default_rng([variant, int(audio_hash[:12], 16)]))


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))


def _limit(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -1.0, 1.0).astype(np.float32)
