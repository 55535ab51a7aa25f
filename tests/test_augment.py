"""Speech degradations for the lip-sync benchmark and training: length kept, what each claims to do."""

from __future__ import annotations

import numpy as np
import pytest

from adamesh.audio import SAMPLE_RATE
from adamesh.data.augment import add_noise, degrade, random_degradation, reverb, telephone
from adamesh.errors import AdameshError

SR = SAMPLE_RATE


def tones(seconds=2.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.2 * np.sin(2 * np.pi * 1000 * t) + 0.2 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)


def band_power(x, lo, hi):
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return spec[(f >= lo) & (f < hi)].sum()


def test_telephone_keeps_the_band_and_the_length():
    x = tones()
    y = telephone(x)
    assert y.shape == x.shape and y.dtype == np.float32
    assert band_power(y, 900, 1100) > 0.5 * band_power(x, 900, 1100)  # 1 kHz passes
    assert band_power(y, 5900, 6100) < 1e-4 * band_power(x, 5900, 6100)  # 6 kHz is above 8 kHz's Nyquist


def test_noise_at_the_asked_snr():
    x = tones()
    y = add_noise(x, 10.0, np.random.default_rng(0))
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x).astype(np.float64) ** 2))
    assert snr == pytest.approx(10.0, abs=0.3)
    pink = add_noise(
        np.zeros(SR, np.float32) + 0.1 * tones(1.0), 0.0, np.random.default_rng(0), colour=1.0
    ) - 0.1 * tones(1.0)
    assert band_power(pink, 100, 500) > 5 * band_power(pink, 4000, 4400)  # power falls with frequency


def test_reverb_spreads_a_click_and_keeps_the_level():
    x = np.zeros(SR, np.float32)
    x[1000] = 0.5
    y = reverb(x, np.random.default_rng(0), rt60=0.3)
    assert y.shape == x.shape
    assert np.abs(y[1100 : 1000 + int(0.2 * SR)]).max() > 0.01  # the tail rings on after the click
    assert np.abs(y[:1000]).max() < 1e-6  # and nothing comes before it (FFT rounding only)
    assert np.mean(y**2) == pytest.approx(np.mean(x**2), rel=0.05)


def test_conditions_and_random_mix():
    x = tones()
    assert degrade(x, "clean") is not None and np.array_equal(degrade(x, "clean"), x)
    np.testing.assert_array_equal(degrade(x, "noise10", seed=3), degrade(x, "noise10", seed=3))
    with pytest.raises(AdameshError, match="unknown audio condition 'radio'"):
        degrade(x, "radio")
    outs = [random_degradation(x, np.random.default_rng(s)) for s in range(8)]
    assert all(o.shape == x.shape and np.isfinite(o).all() and np.abs(o).max() <= 1 for o in outs)
    np.testing.assert_array_equal(outs[2], random_degradation(x, np.random.default_rng(2)))
    assert len({round(float(np.std(o)), 4) for o in outs}) == 8  # every draw differs
