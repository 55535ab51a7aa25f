"""`adamesh bench render`: frames per second of the renderer."""

from __future__ import annotations

import os
import tempfile
import time

import soundfile as sf

from adamesh.render import RigView, render_motion
from adamesh.rigs import load_rig
from adamesh.testmotion import demo_motion


def bench_render(
    rig_spec: str = "builtin", size: int = 512, frames: int = 200, backend=None, antialias: int = 0
):
    """Frames per second of each rendering stage, and of a whole mp4 with audio."""
    rig = load_rig(rig_spec)
    motion, audio = demo_motion(frames / 25.0)
    view = RigView(rig, size, backend, antialias)
    view.image(rig.neutral)  # warm-up: shader compilation, first upload
    t0 = time.perf_counter()
    verts = rig.vertices(motion)
    t1 = time.perf_counter()
    normals = [view.normals(v) for v in verts]
    t2 = time.perf_counter()
    for v, n in zip(verts, normals):
        view.renderer.render(v, n)
    t3 = time.perf_counter()
    view.close()
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "a.wav")
        sf.write(wav, audio, 16000)
        stats = render_motion(motion, rig, os.path.join(tmp, "bench.mp4"), audio=wav, size=size,
                              backend=backend, antialias=antialias, progress=False)  # fmt: skip
    n = len(verts)
    rows = [
        ("rig deform", n / (t1 - t0)),
        ("normals", n / (t2 - t1)),
        (f"rasterise ({view.renderer.name}, msaa {antialias})", n / (t3 - t2)),
        ("deform + normals + rasterise", n / (t3 - t0)),
        ("whole mp4 (+ H.264/AAC encode)", stats["render_fps"]),
    ]
    print(f"render benchmark: rig {rig.name} ({rig.n_vertices} vertices, {len(rig.faces)} triangles), "
          f"{size}x{size}, {n} frames, {os.cpu_count()} CPU cores")  # fmt: skip
    for name, fps in rows:
        print(f"  {name:<40s} {fps:8.1f} frames/s")
    return dict(rows)
