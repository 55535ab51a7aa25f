"""Mouth sounds in the corpus's silences: lip smacks and breaths, heard and animated.

Real recordings are not speech and digital silence: lips part with a smack, people breathe
audibly between phrases and at rest. A model that never heard these either moves the mouth with
every noise in a pause or misses an opening that made a sound. Two kinds, each with its audio
and its effect on the mouth:

- smack: the click of moist lips parting (a few ms of broadband noise, decaying); the lips part at
  the click, stay apart for 0.1-0.35 s and close again, sometimes with a softer second click.
- breath: breathing through the nose at rest, 0.3-0.9 s of band-limited noise; the mouth stays
  closed. The oral breath before a phrase (`animation.inhalation`) is made audible too, where
  the mouth opens for it.

Levels are relative to the clip's own speech; the training augmentation adds noise on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt

from adamesh.audio import SAMPLE_RATE

SMACK_OPEN = (0.1, 0.35)  # seconds the lips stay apart after a smack
SMACK_JAW = (0.08, 0.3)  # jaw opening of a smack (before the speaker's articulation scale)


@dataclass
class MouthSound:
    kind: str  # "smack", "breath" (nose, mouth closed) or "inhale" (mouth, before a phrase)
    start: float  # seconds
    end: float
    level: float  # peak (smack) or RMS (breath) over the speech's
    opening: float = 0.0  # jaw opening it comes with (smack)

    def row(self) -> list:
        return [self.kind, round(self.start, 4), round(self.end, 4), round(self.opening, 4)]


def draw_sounds(
    rng: np.random.Generator, pauses: list[tuple[float, float]], next_speech: list[float | None]
) -> list[MouthSound]:
    """Mouth sounds for silences `pauses` ((start, end), seconds); `next_speech[k]` is when speech
    follows pause k (None: it ends the clip). Sounds keep clear of speech: 0.25 s after it, and the
    0.6 s before it that belong to the breath before a phrase, which is made audible in half of
    the pauses that have one."""
    sounds = []
    for (start, end), speech in zip(pauses, next_speech):
        if speech is not None and end - start >= 0.5 and rng.random() < 0.5:
            a = max(start, speech - 0.45)
            sounds.append(MouthSound("inhale", a, speech - 0.05, float(rng.uniform(0.03, 0.12))))
        lo, hi = start + (0.25 if start > 0 else 0.1), (end - 0.6 if speech is not None else end - 0.1)
        t = lo + rng.uniform(0, 0.4)
        while t < hi - 0.5:
            if rng.random() < 0.5:
                held = float(rng.uniform(*SMACK_OPEN))
                sounds.append(
                    MouthSound(
                        "smack", t, t + held, float(rng.uniform(0.04, 0.5)), float(rng.uniform(*SMACK_JAW))
                    )
                )
            else:
                length = float(rng.uniform(0.3, 0.9))
                if t + length > hi:
                    break
                sounds.append(MouthSound("breath", t, t + length, float(rng.uniform(0.02, 0.12))))
            t = sounds[-1].end + rng.uniform(0.3, 1.5)
    return sounds


def sound_audio(
    sounds: list[MouthSound], n_samples: int, speech: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The sounds' audio at 16 kHz, to add to the clip; levels relative to `speech` (the clip's
    speech samples)."""
    out = np.zeros(n_samples, np.float32)
    peak, rms = float(np.abs(speech).max()), float(np.sqrt(np.mean(speech.astype(np.float64) ** 2)))
    for s in sounds:
        if s.kind == "smack":
            clicks = [(s.start, s.level)]
            if rng.random() < 0.5:  # the lips meet again with a softer click
                clicks.append((s.end, s.level * rng.uniform(0.2, 0.7)))
            for at, level in clicks:
                n = int(0.03 * SAMPLE_RATE)
                x = rng.standard_normal(n) * np.exp(
                    -np.arange(n) / (rng.uniform(0.0015, 0.006) * SAMPLE_RATE)
                )
                x = sosfilt(butter(2, rng.uniform(300, 1500), "highpass", fs=SAMPLE_RATE, output="sos"), x)
                _add(out, at, x * level * peak / max(np.abs(x).max(), 1e-9))
        else:
            n = int((s.end - s.start) * SAMPLE_RATE)
            if n < 16:
                continue
            low = rng.uniform(150, 600) if s.kind == "breath" else rng.uniform(400, 1200)
            high = rng.uniform(2500, 6000)
            x = sosfilt(
                butter(2, (low, high), "bandpass", fs=SAMPLE_RATE, output="sos"), rng.standard_normal(n)
            )
            x *= np.sin(math.pi * np.arange(n) / n) ** 2
            _add(out, s.start, x * s.level * rms / max(np.sqrt(np.mean(x**2)), 1e-9))
    return out


def _add(out: np.ndarray, at: float, x: np.ndarray) -> None:
    i = int(at * SAMPLE_RATE)
    x = x[: max(0, len(out) - i)]
    out[i : i + len(x)] += x.astype(np.float32)


def smack_opening(sounds: list[MouthSound], t: np.ndarray) -> np.ndarray:
    """The jaw opening of the smacks at `t`: the lips part at the click (within 30 ms), stay apart
    and close over 0.1 s."""
    out = np.zeros_like(t)
    for s in sounds:
        if s.kind == "smack":
            rise = np.clip((t - s.start + 0.005) / 0.03, 0, 1)
            fall = np.clip((s.end + 0.1 - t) / 0.1, 0, 1)
            x = np.minimum(rise, fall)
            out = np.maximum(out, s.opening * x * x * (3 - 2 * x))
    return out
