"""Streaming animation: speech pushed as it arrives, frames back as soon as they are final.

    stream = model.stream(profile, lookahead_ms=160)
    for chunk in microphone():          # 16 kHz mono float32, chunks of any size
        frames = stream.push(chunk)     # (n, 58) rows of ARKIT.channels: the frames now final
    frames = stream.close()             # the rest, up to the end of the speech

A frame is final once `lookahead_ms` of speech after its moment (the frame's centre) has arrived.
The stream computes every `hop_ms` of speech, and the first frame as soon as it is final:

- the front-end encodes the last `window_s` of speech (a rolling window: older speech is never
  encoded again);
- the expression network runs over that window, look-ahead frames included, as `animate` runs
  over a whole file, and keeps the frames now final;
- PoseGPT samples the codes of those frames with its key/value cache kept between steps
  (`CodeSampler`: the same codes as `animate` for the same speech and seed); the VQ decoder
  decodes the last codes, and `PoseAdapter.place` puts them on the posture frame by frame;
- blinks come from the same Poisson process as in `animate`.

With a long look-ahead every frame hears what `animate` hears, so the streamed motion converges to
the offline one; a short look-ahead trades lip sync for latency (`adamesh bench stream`).
"""

from __future__ import annotations

import numpy as np
import torch

from adamesh.audio import SAMPLE_RATE, frame_count
from adamesh.device import single_thread
from adamesh.errors import AdameshError
from adamesh.frames import blink_times, check_settings, finish_frames, speech_samples
from adamesh.models.pose import CodeSampler
from adamesh.motion import ARKIT
from adamesh.profile import Profile

DEFAULT_LOOKAHEAD_MS = 160.0  # speech a frame hears after its moment
DECODE_CONTEXT = 8  # codes before the new frames the VQ decoder sees: its receptive field is ~4
# a step costs ~80 ms on one core, so a step every 80 ms keeps one core busy for the lowest latency
# (p95 under 250 ms at an 80 ms look-ahead); a stream that shares its cores with others steps less
# often (240 ms; `serve` uses it, as the page's browser shares the cores). On 2 cores 4 streams
# keep real time at either hop, 8 do not (docs/streaming.md).
DEFAULT_HOP_MS = 80.0
SHARED_HOP_MS = 240.0
BLINK_REACH = 0.5  # s: a blink's curve is zero this far from its centre


class Stream:
    """See the module docstring; made by `Animator.stream`."""

    def __init__(
        self,
        animator,  # adamesh.api.Animator
        profile: Profile | None = None,
        lookahead_ms: float = DEFAULT_LOOKAHEAD_MS,
        hop_ms: float = DEFAULT_HOP_MS,
        window_s: float = 4.0,
        seed: int = 0,
        style_strength: float = 1.0,
        pose_amplitude: float = 1.0,
        blink_rate: float | None = None,
        temperature: float = 0.8,
    ):
        check_settings(style_strength, pose_amplitude, blink_rate, temperature)
        fps = self.fps = animator.fps
        self.samples_per_frame = int(round(SAMPLE_RATE / fps))
        if self.samples_per_frame * fps != SAMPLE_RATE:
            raise AdameshError(f"streaming needs a whole number of samples a frame, not at {fps:g} fps")
        self.down = animator.pose.downsample
        self.lookahead = float(lookahead_ms) / 1000
        self.hop = max(1, int(round(hop_ms / 1000 * fps)))
        self.window = int(round(window_s * fps)) // self.down * self.down
        if not (0 <= self.lookahead <= 5 and 0 < hop_ms <= 2000):
            raise AdameshError(
                f"the look-ahead must be between 0 and 5000 ms and the hop between 1 and 2000 ms, "
                f"not {lookahead_ms:g} and {hop_ms:g}"
            )
        if self.window < (self.lookahead * fps + self.hop) + 2 * self.down:
            raise AdameshError(
                f"a {window_s:g} s window is too short for a {lookahead_ms:g} ms look-ahead and a "
                f"{hop_ms:g} ms hop; make it at least a second longer than both"
            )
        if profile is not None:
            animator.check(profile)
        self.animator = animator
        self.style_strength = style_strength
        self.net, self.style = animator.styled_expression(profile, style_strength)
        pose_style, self.posture, gain = animator.pose_style(profile, style_strength)
        self.pose_scale = pose_amplitude * gain
        gpt = animator.pose.gpt
        self.codes = CodeSampler(
            gpt, gpt.null_style if pose_style is None else pose_style, temperature, 0, seed
        )
        self.blink_rate = animator.blinks_per_minute(profile, blink_rate)
        self._blink_source = blink_times(self.blink_rate, seed)
        self.blinks: list[float] = []

        self.audio = np.zeros(0, np.float32)
        self.audio_start = 0  # sample index of audio[0]
        self.received = 0  # samples pushed so far
        self.emitted = 0  # frames returned so far
        self.closed = False
        with single_thread():  # loads the front-end now, not in the first push
            animator.speech_features(np.zeros(SAMPLE_RATE // 10, np.float32))

    @property
    def channels(self) -> tuple[str, ...]:
        return ARKIT.channels

    def final_frames(self) -> int:
        """Frames final with the speech received so far."""
        heard = self.received / SAMPLE_RATE - self.lookahead
        return max(0, min(int(np.floor(heard * self.fps + 0.5)), self.received // self.samples_per_frame))

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add 16 kHz mono float speech; returns the frames that became final ((0, 58) if none)."""
        if self.closed:
            raise AdameshError("this stream is closed; start a new one with model.stream()")
        samples = speech_samples(np.asarray(samples), whole=False)
        self.audio = np.concatenate([self.audio, samples])
        self.received += len(samples)
        n = self.final_frames()
        if n > self.emitted and (self.emitted == 0 or n - self.emitted >= self.hop):
            return self._step(n, end=False)
        return self._none()

    def close(self) -> np.ndarray:
        """The speech has ended: returns the remaining frames, as many as `animate` would give."""
        if self.closed:
            raise AdameshError("this stream is already closed")
        total = frame_count(self.received, SAMPLE_RATE, self.fps) if self.received else 0
        out = self._step(total, end=True) if total > self.emitted else self._none()
        self.closed = True
        return out

    def _none(self) -> np.ndarray:
        return np.zeros((0, ARKIT.dim), np.float32)

    @torch.no_grad()
    def _step(self, n_final: int, end: bool) -> np.ndarray:
        with single_thread():
            return self._compute(n_final, end)

    def _compute(self, n_final: int, end: bool) -> np.ndarray:
        spf, down, a = self.samples_per_frame, self.down, self.emitted
        known = frame_count(self.received, SAMPLE_RATE, self.fps) if end else self.received // spf
        start = max(0, known - self.window)
        start = min(start - start % down, a - a % down)  # whole code steps, the new frames inside
        speech = self.audio[start * spf - self.audio_start :]
        e_feats, p_feats = self.animator.speech_features(speech, known - start)

        expr = self.net.predict(
            torch.from_numpy(e_feats.features), style=self.style, style_strength=self.style_strength
        )
        expr = expr.numpy()[a - start : n_final - start]

        gpt = self.animator.pose.gpt
        self.codes.hear(gpt.speech(torch.from_numpy(p_feats.features)[None])[0], start // down)
        while len(self.codes.codes) * down < n_final:
            self.codes.next()
        first = max(0, a // down - DECODE_CONTEXT)
        decoded = self.animator.pose.vq.decode(torch.tensor([self.codes.codes[first:]]))[0].numpy()
        decoded = decoded[a - first * down :]  # frame a on
        pose = self.animator.pose.place(decoded[: n_final - a], self.posture, self.pose_scale)

        t = (np.arange(a, n_final) + 0.5) / self.fps
        until = t[-1] + BLINK_REACH
        while not self.blinks or self.blinks[-1] < until:
            nxt = next(self._blink_source, None)
            if nxt is None:
                break
            self.blinks.append(nxt)
        last = n_final / self.fps if end else np.inf  # animate draws none after the speech
        window = [b for b in self.blinks if t[0] - BLINK_REACH < b < min(until, last)]
        frames = finish_frames(expr, pose, t, window)

        self.emitted = n_final
        drop = start * spf - self.audio_start
        if drop > 0:  # the speech no later window will need: later windows start here or after
            self.audio, self.audio_start = self.audio[drop:], self.audio_start + drop
        return frames
