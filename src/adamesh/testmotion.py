"""The test motion: a scripted performance for checking a rig, a renderer or an exporter.

Jaw opening and closing in syllable rhythm, lip rounding (funnel, pucker), a smile, blinks, a glance
and a head nod, with a synthetic voiced sound whose loudness follows the jaw, so that a viewer can
see and hear whether picture and sound are in sync.
"""

from __future__ import annotations

import math

import numpy as np

from adamesh.audio import SAMPLE_RATE
from adamesh.motion import ARKIT, Motion


def _pulse(t: np.ndarray, center: float, width: float) -> np.ndarray:
    """A smooth 0..1..0 bump of total duration `width` seconds."""
    x = np.clip((t - center) / width + 0.5, 0, 1)
    return np.sin(math.pi * x) ** 2


def demo_motion(seconds: float = 6.0, fps: float = 25.0) -> tuple[Motion, np.ndarray]:
    """Return the test motion and its audio (float32 mono at 16 kHz)."""
    n = max(1, int(round(seconds * fps)))
    t = np.arange(n) / fps
    p = ARKIT.neutral(n)

    def set_(name, values):
        p[:, ARKIT.index(name)] = np.clip(
            values, ARKIT.lower[ARKIT.index(name)], ARKIT.upper[ARKIT.index(name)]
        )

    # syllables: jaw opens and closes at 3.2 Hz in phrases, silent gaps between phrases
    phrase = np.clip(np.sin(2 * math.pi * t / 3.0 - 0.4) * 3, 0, 1)
    jaw = phrase * (0.5 - 0.5 * np.cos(2 * math.pi * 3.2 * t)) * 0.75
    set_("jawOpen", jaw)
    # lip rounding in the middle of each 3 s cycle, a pucker after it
    cycle = t % 3.0
    set_("mouthFunnel", 0.8 * _pulse(cycle, 1.2, 0.7))
    set_("mouthPucker", 0.9 * _pulse(cycle, 2.1, 0.6))
    smile = 0.5 * _pulse(t % 6.0, 4.6, 1.4)
    set_("mouthSmileLeft", smile)
    set_("mouthSmileRight", smile)
    # blinks every ~2.3 s, 0.2 s each
    blink = sum(_pulse(t, c, 0.22) for c in np.arange(0.8, seconds, 2.3))
    set_("eyeBlinkLeft", blink)
    set_("eyeBlinkRight", blink)
    glance = 0.6 * _pulse(t % 6.0, 3.3, 1.0)
    set_("eyeLookOutLeft", glance)
    set_("eyeLookInRight", glance)
    set_("browInnerUp", 0.6 * _pulse(cycle, 1.2, 0.9))
    # a nod (pitch down then back) once per 3 s, and a slow sway
    set_("headPitch", 0.22 * _pulse(cycle, 2.4, 0.8) - 0.03 * np.sin(2 * math.pi * t / 5.0))
    set_("headYaw", 0.12 * np.sin(2 * math.pi * t / 6.0))
    set_("headRoll", 0.04 * np.sin(2 * math.pi * t / 4.0))
    motion = Motion(p, ARKIT, fps, meta={"producer": "adamesh motion demo", "seconds": seconds})
    return motion, _voice(t, jaw, p[:, ARKIT.index("mouthFunnel")], seconds)


def _voice(t: np.ndarray, jaw: np.ndarray, rounding: np.ndarray, seconds: float) -> np.ndarray:
    """A buzz at a gliding pitch, loud when the jaw is open, darker when the lips round."""
    n = int(round(seconds * SAMPLE_RATE))
    ts = np.arange(n) / SAMPLE_RATE
    loud = np.interp(ts, t, jaw / max(jaw.max(), 1e-6))
    dark = np.interp(ts, t, rounding)
    f0 = 120 + 25 * np.sin(2 * math.pi * ts / 1.7)
    phase = 2 * math.pi * np.cumsum(f0) / SAMPLE_RATE
    harmonics = sum(np.sin(k * phase) / k ** (1.0 + 1.5 * dark) for k in range(1, 12))
    rng = np.random.default_rng(0)
    sig = loud * harmonics + 0.002 * rng.standard_normal(n)
    return (0.3 * sig / max(np.abs(sig).max(), 1e-6)).astype(np.float32)
