"""Driving a stream from outside: speech from a file (paced as a live source delivers it) or raw
PCM on stdin, each frame written as soon as it is final, as a JSON line or a Live Link CSV row,
and sent to Live Link or VMC receivers (`senders`). `adamesh stream` and `bench stream` run on
this; the stream itself is `stream.Stream`."""

from __future__ import annotations

import json
import sys
import time
from collections import deque

import numpy as np

from adamesh.audio import SAMPLE_RATE, load_audio
from adamesh.errors import AdameshError
from adamesh.export import LIVE_LINK_HEADER, live_link_rows
from adamesh.fileio import atomic_output, check_input_file
from adamesh.motion import ARKIT, Motion
from adamesh.profile import Profile
from adamesh.senders import Pacer


def stream_to(
    animator,  # adamesh.api.Animator
    audio: str,
    out,
    profile: Profile | None = None,
    fmt: str = "jsonl",
    fast: bool = False,
    chunk_ms: float = 20.0,
    senders: list | None = None,
    **options,
) -> dict:
    """Stream speech from a file (paced in real time, unless `fast`) or, for "-", raw
    16 kHz mono 16-bit PCM from stdin as it comes; write each frame as soon as it is final to `out`
    (an open text file, a path written as PATH.part and renamed at the end, or None) as a JSON line
    or a Live Link CSV row, and hand it to `senders` (see `senders.make_senders`), which send it at
    its moment. Returns what it measured: frames, first-frame time, latency (to the frame, and to its
    packet leaving when there are senders), compute."""
    stream = animator.stream(profile, **options)
    size = int(round(chunk_ms / 1000 * SAMPLE_RATE))
    if audio == "-":
        source = sys.stdin.buffer

        def chunks():
            while block := source.read(2 * size):
                yield np.frombuffer(block[: len(block) // 2 * 2], "<i2").astype(np.float32) / 32768.0
    else:
        check_input_file(audio, "speech", "an audio file", "give a recording, or - for PCM on stdin")
        speech = load_audio(audio, SAMPLE_RATE)[0]

        def chunks():
            for i in range(0, len(speech), size):
                yield speech[i : i + size]

    names = ARKIT.channels
    rot, trans = ARKIT.rotation, ARKIT.translation

    def lines(frames: np.ndarray, first: int, latency: np.ndarray) -> list[str]:
        if fmt == "csv":
            rows = live_link_rows(Motion(frames, ARKIT, stream.fps), first)
            return [",".join(str(v) for v in row) + "\n" for row in rows]
        return [
            json.dumps({
                "frame": first + j,
                "time": round((first + j) / stream.fps, 4),
                "latency_ms": round(float(latency[j]), 1),
                "blendshapes": {n: round(float(v), 4) for n, v in zip(names[: ARKIT.n_expression], f)},
                "head_rotation": [round(float(v), 5) for v in f[rot[0] : rot[1]]],
                "head_translation": [round(float(v), 5) for v in f[trans[0] : trans[1]]],
            }) + "\n"
            for j, f in enumerate(frames)
        ]  # fmt: skip

    def run(sink) -> dict:
        if fmt == "csv" and sink:
            sink.write(",".join(LIVE_LINK_HEADER) + "\n")
        start = time.perf_counter()
        # (samples received, when) of the chunks whose speech no frame has been given for yet
        arrivals, received, emitted, compute, latency, first = deque(), 0, 0, 0.0, [], None
        heard_at = []  # when the chunk holding each frame's moment arrived
        for chunk in [*chunks(), None]:
            if chunk is not None:
                received += len(chunk)
                if not fast and audio != "-":  # a live source has delivered this chunk by now
                    time.sleep(max(0.0, start + received / SAMPLE_RATE - time.perf_counter()))
                arrivals.append((received, time.perf_counter()))
            if chunk is None and received < SAMPLE_RATE / stream.fps:
                raise AdameshError(
                    f"{received} samples of speech arrived, less than one frame's; give a recording "
                    "with speech in it (on stdin: 16 kHz mono 16-bit PCM)"
                )
            t0 = time.perf_counter()
            frames = stream.close() if chunk is None else stream.push(chunk)
            now = time.perf_counter()
            compute += now - t0
            if not len(frames):
                continue
            first = now - start if first is None else first
            lat = []
            for i in range(emitted, emitted + len(frames)):  # from the chunk that held frame i's moment
                moment = int((i + 0.5) / stream.fps * SAMPLE_RATE)
                while len(arrivals) > 1 and arrivals[0][0] < moment:
                    arrivals.popleft()
                lat.append(1000 * (now - arrivals[0][1]))
                heard_at.append(arrivals[0][1])
            latency.extend(lat)
            if pacer:
                pacer.put(emitted, frames)
            if sink:
                sink.writelines(lines(frames, emitted, lat))
                sink.flush()
            emitted += len(frames)
        seconds = received / SAMPLE_RATE
        if not emitted:
            raise AdameshError("no speech arrived; give a recording with speech in it")
        sent = {}
        if pacer:
            pacer.close()
            packet = [1000 * (pacer.sent_at[i] - heard_at[i]) for i in range(emitted)]
            sent = {
                "packet_latency_ms": np.asarray(packet),
                "packet_latency_ms_median": float(np.median(packet)),
                "packet_latency_ms_p95": float(np.percentile(packet, 95)),
            }
        return {
            **sent,
            "frames": emitted,
            "seconds": seconds,
            "first_frame_ms": 1000 * first,
            "latency_ms": np.asarray(latency),
            "latency_ms_median": float(np.median(latency)),
            "latency_ms_p95": float(np.percentile(latency, 95)),
            "compute_per_second": compute / max(seconds, 1e-9),
        }

    pacer = Pacer(senders, stream.fps, paced=not fast) if senders else None
    try:
        if out is None or hasattr(out, "write"):
            return run(out)
        with atomic_output(out) as tmp:
            with open(tmp, "w", newline="") as f:
                return run(f)
    finally:
        if pacer:
            pacer.close(drain=False)
