"""`adamesh bench speed` and `bench long`: animation speed and memory."""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from pathlib import Path

import numpy as np

from adamesh import api
from adamesh.audio import SAMPLE_RATE, load_audio


def bench_speed(models: list[str | None], audio: list[str], repeats: int = 5, log=print) -> list[dict]:
    """Speech to ARKit + head pose (`Animator.animate`: front-ends, expression network, PoseGPT,
    VQ-VAE decoder, blinks), timed for every model on the same audio in one run, best of `repeats`;
    and each model's front-ends alone. Nothing is cached between repeats."""
    speech = [load_audio(a, SAMPLE_RATE)[0] for a in audio]
    seconds = sum(len(x) for x in speech) / SAMPLE_RATE
    rows = []
    for folder in models:
        animator = api.load(folder)
        animator.animate(speech[0][: 2 * SAMPLE_RATE])  # warm-up: weights loaded, threads started

        def best(fn):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for x in speech:
                    fn(x)
                times.append(time.perf_counter() - t0)
            return min(times)

        total = best(lambda x: animator.animate(x))  # noqa: B023 (called in this iteration)
        fronts = {"expression": animator.expression_frontend, "pose": animator.pose_frontend}
        shared = animator.expression_frontend.key() == animator.pose_frontend.key()
        row = {
            "model": "shipped" if folder is None else Path(folder).name,
            "frontends": {k: f.name for k, f in fronts.items()},
            "shared_frontend": shared,
            "animate_realtime": seconds / total,
            "frontend_realtime": {
                k: seconds / best(lambda x, f=f, fps=animator.fps: f(x, fps)) for k, f in fronts.items()
            },
        }
        rows.append(row)
    log(
        f"speech to ARKit + head pose on {len(speech)} files, {seconds:.1f} s of audio, {os.cpu_count()} CPU "
        f"cores, best of {repeats}:"
    )
    log(
        "| model | expression front-end | pose front-end | animate (x real time) | expression front-end alone | "
        "pose front-end alone |"
    )
    log("|---|---|---|---|---|---|")
    for r in rows:
        fr = r["frontend_realtime"]
        log(
            f"| {r['model']} | {r['frontends']['expression']} | {r['frontends']['pose']}"
            f"{' (the same, computed once)' if r['shared_frontend'] else ''} | {r['animate_realtime']:.1f}x | "
            f"{fr['expression']:.0f}x | {fr['pose']:.0f}x |"
        )
    return rows


def _animate_long(model: str | None, audio: list[str], minutes: float) -> dict:
    """In a fresh process: animate `minutes` of speech (the files repeated), wall time and peak memory."""
    speech = np.concatenate([load_audio(a, SAMPLE_RATE)[0] for a in audio])
    samples = np.resize(speech, int(minutes * 60 * SAMPLE_RATE))
    animator = api.load(model)
    t0 = time.perf_counter()
    motion = animator.animate(samples)
    seconds = time.perf_counter() - t0
    return {
        "minutes": minutes,
        "frames": motion.n_frames,
        "seconds": seconds,
        "realtime": minutes * 60 / seconds,
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def bench_long(model: str | None, audio: list[str], minutes=(1, 10, 60), log=print) -> list[dict]:
    """Long speech: wall time and peak memory (the whole process's, model loading included) of one
    `Animator.animate` call for each length, each in a process of its own."""
    rows = []
    for m in minutes:
        with mp.get_context("spawn").Pool(1) as pool:
            rows.append(pool.apply(_animate_long, (model, audio, float(m))))
            pool.close()  # the worker exits by itself: terminating it leaks its semaphores (a warning)
            pool.join()
        r = rows[-1]
        log(
            f"{m:g} min: {r['seconds']:.1f} s ({r['realtime']:.1f}x real time), peak memory {r['peak_gb']:.2f} GB"
        )
    log(f"speech to ARKit + head pose, {os.cpu_count()} CPU cores:")
    log("| speech | frames | wall time | x real time | peak memory |")
    log("|---|---|---|---|---|")
    for r in rows:
        log(
            f"| {r['minutes']:g} min | {r['frames']:,} | {r['seconds']:.1f} s | {r['realtime']:.1f}x | "
            f"{r['peak_gb']:.2f} GB |"
        )
    return rows
