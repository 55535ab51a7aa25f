"""From network outputs to animation frames: the one path `Animator.animate` and `Stream` share.

Both check the same settings, take speech samples the same way, draw blinks from the same Poisson
process and finish frames with `finish_frames`, so a stream and a whole file give the same frames
by construction. Pose placement (centring on the person's posture, amplitude) is
`PoseAdapter.place`, frame by frame, for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from adamesh.audio import SAMPLE_RATE, check_finite
from adamesh.errors import AdameshError
from adamesh.motion import ARKIT, blink_curve, finish_expression

BLINK_CHANNELS = (ARKIT.index("eyeBlinkLeft"), ARKIT.index("eyeBlinkRight"))


def check_settings(
    style_strength: float, pose_amplitude: float, blink_rate: float | None, temperature: float
) -> None:
    for name, value, lo, hi in (
        ("style strength", style_strength, 0, 3),
        ("pose amplitude", pose_amplitude, 0, 3),
        ("blink rate", 0 if blink_rate is None else blink_rate, 0, 60),
        ("temperature", temperature, 0.05, 3),
    ):
        if not (np.isfinite(value) and lo <= value <= hi):
            raise AdameshError(f"{name} must be between {lo} and {hi}, not {value}")


def speech_samples(audio: np.ndarray, whole: bool = True) -> np.ndarray:
    """16 kHz mono float samples as float32, non-finite values silenced; refuses anything else, and
    a `whole` recording made mostly of non-finite values (a stream's chunk is not refused for a
    glitch)."""
    if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        raise AdameshError(
            f"speech samples must be mono float (n,) at {SAMPLE_RATE} Hz in [-1, 1], not "
            f"{audio.dtype} {audio.shape}; or pass a file"
        )
    if whole:
        check_finite(audio, "the speech samples")
    return np.nan_to_num(audio.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def blink_times(rate: float, seed: int) -> Iterator[float]:
    """Blink times in seconds, a Poisson process of `rate` a minute drawn one gap at a time, so a
    stream that draws them as it goes gets the times a whole file gets. Speech does not say when a
    person blinks, so a model trained on it predicts only a blur: blinks are drawn instead."""
    rng = np.random.default_rng(seed)
    t = 0.0
    while rate > 0:
        t += rng.exponential(60.0 / rate)
        yield t


def finish_frames(expr: np.ndarray, pose: np.ndarray, t: np.ndarray, blinks: list[float]) -> np.ndarray:
    """(T, 58) ARKit frames at times `t` (s) from the expression network's output (T, 52) and head
    poses already placed (T, 6): eyelids from the blinks centred at `blinks` (s), expression as an
    animation delivers it (`finish_expression`), head poses within the space's bounds."""
    expr = np.array(expr, np.float32)
    expr[:, BLINK_CHANNELS] = blink_curve(t, blinks)[:, None]
    lower, upper = ARKIT.lower[ARKIT.n_expression :], ARKIT.upper[ARKIT.n_expression :]
    return np.concatenate([finish_expression(expr, ARKIT), np.clip(pose, lower, upper)], 1).astype(np.float32)
