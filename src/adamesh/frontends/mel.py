"""Log-mel spectrogram front-end: the models learn everything from it end to end.

80 mel bands from a 25 ms window every 10 ms; the mean over the utterance is subtracted per band
(cepstral mean normalisation) so a different microphone or level shifts nothing. Each motion frame
gets the spectrum at two points, a quarter frame before and after its centre, so the 40 ms of a
25 fps frame are covered without averaging away fast consonants. Units: k-means clusters (fitted
on training audio with `fit_units`).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from adamesh.audio import SAMPLE_RATE
from adamesh.frontends.base import Features, FrontEnd, frame_times, sample_rows

HOP = 160  # 10 ms: the analysis rate of every spectral feature here (100 Hz)
WINDOW = 400
N_FFT = 512
ANALYSIS_RATE = SAMPLE_RATE / HOP


@functools.lru_cache(maxsize=4)
def mel_filterbank(
    n_mels: int, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE, fmin: float = 20.0, fmax: float = 7600.0
) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale."""

    def to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def to_hz(m):
        return 700.0 * (10 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0, np.minimum((bins - lower) / (centre - lower), (upper - bins) / (upper - centre)))
    return torch.from_numpy(fb.astype(np.float32))


def log_mel(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """(n_analysis_frames, n_mels) log-mel at 100 Hz, frame k centred at k * 10 ms; mean removed."""
    x = torch.from_numpy(np.asarray(audio, np.float32))
    if len(x) < WINDOW:
        x = torch.nn.functional.pad(x, (0, WINDOW - len(x)))
    spec = torch.stft(x, N_FFT, HOP, WINDOW, torch.hann_window(WINDOW), center=True, return_complex=True)
    power = spec.abs() ** 2  # (freq, frames)
    mel = torch.log(mel_filterbank(n_mels) @ power + 1e-8).T.numpy()
    return mel - mel.mean(0, keepdims=True)


class MelFrontEnd(FrontEnd):
    name = "mel"

    def __init__(self, n_mels: int = 80):
        self.n_mels = int(n_mels)
        self.dim = 2 * self.n_mels

    def options(self) -> dict:
        return {"n_mels": self.n_mels}

    def compute(self, audio: np.ndarray, n_frames: int, fps: float) -> Features:
        mel = log_mel(audio, self.n_mels)
        t = frame_times(n_frames, fps)
        quarter = 0.25 / fps
        feats = np.concatenate(
            [sample_rows(mel, ANALYSIS_RATE, t - quarter), sample_rows(mel, ANALYSIS_RATE, t + quarter)],
            axis=1,
        )
        return Features(feats, np.zeros(n_frames, np.int64), fps)
