"""Offscreen rendering of rigs: single frames, contact sheets and videos with speech.

`make_renderer` picks moderngl on EGL and falls back to the torch rasteriser when no GL context can
be made (or when ``ADAMESH_RENDERER=torch``). Nothing here needs a display.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from adamesh.errors import AdameshError, AdameshWarning
from adamesh.geometry import NormalComputer
from adamesh.motion import Motion
from adamesh.render.camera import Camera, frame_rig
from adamesh.rigs.base import Rig

BACKENDS = ("auto", "gl", "torch")


def make_renderer(rig: Rig, camera: Camera, backend: str | None = None, antialias: int = 0):
    """A renderer for `rig`'s mesh seen by `camera`: ``.render(verts, normals) -> (H, W, 3) uint8``.

    ``antialias`` is the GL multisample count (0 = off): 4 looks smoother but on a CPU (llvmpipe)
    renders about five times slower, so videos default to 0 and contact sheets use 4."""
    backend = backend or os.environ.get("ADAMESH_RENDERER", "auto")
    if backend not in BACKENDS:
        raise AdameshError(f"unknown renderer {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend in ("auto", "gl"):
        try:
            from adamesh.render.gl import GLRenderer

            return GLRenderer(rig.faces, rig.colors, camera, samples=antialias)
        except Exception as e:  # no EGL/GL driver: any failure here means "use the fallback"
            if backend == "gl":
                raise AdameshError(f"cannot create an OpenGL (EGL) context: {e}") from None
            warnings.warn(
                f"no OpenGL context ({str(e).splitlines()[0][:120]}); using the slower torch "
                "rasteriser. Install libegl1 libgl1-mesa-dri for the fast path.",
                AdameshWarning,
                stacklevel=2,
            )
    from adamesh.render.raster import TorchRasterizer

    return TorchRasterizer(rig.faces, rig.colors, camera)


class RigView:
    """A rig, a camera and a renderer together: parameters in, images out."""

    def __init__(
        self, rig: Rig, size: int = 512, backend: str | None = None, antialias: int = 0, **camera_kw
    ):
        self.rig = rig
        self.camera = frame_rig(rig, size, size, **camera_kw)
        self.renderer = make_renderer(rig, self.camera, backend, antialias)
        self.normals = NormalComputer(rig.faces, rig.n_vertices)

    def image(self, verts: np.ndarray) -> np.ndarray:
        return self.renderer.render(verts, self.normals(verts))

    def frames(self, params: np.ndarray, chunk: int = 64) -> Iterator[np.ndarray]:
        """Yield one (H, W, 3) uint8 image per row of (T, C) parameters."""
        for i in range(0, len(params), chunk):
            for verts in self.rig.vertices(params[i : i + chunk]):
                yield self.image(verts)

    def close(self):
        self.renderer.close()


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType
        return ImageFont.load_default()


def caption(img: np.ndarray, text: str, size: int | None = None) -> np.ndarray:
    """Draw a caption centred at the top of an image, on a plate of its own: a head that reaches
    the top of the frame must not hide it."""
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    font = _font(size or max(12, img.shape[0] // 24))
    box = draw.textbbox((0, 0), text, font=font)
    x = (img.shape[1] - (box[2] - box[0])) // 2
    pad = 3
    plate = (x + box[0] - pad, 6 + box[1] - pad, x + box[2] + pad, 6 + box[3] + pad)
    draw.rectangle(plate, fill=(232, 234, 240))
    draw.text((x, 6), text, fill=(20, 20, 25), font=font)
    return np.asarray(pil)


def side_by_side(images: Sequence[np.ndarray], captions: Sequence[str] | None = None) -> np.ndarray:
    if captions:
        images = [caption(im, c) for im, c in zip(images, captions)]
    return np.concatenate(images, axis=1)


def contact_sheet(rig: Rig, tile: int = 256, columns: int = 8, backend: str | None = None) -> np.ndarray:
    """The neutral face and every channel of the rig's expression space at a telling value,
    each labelled. Shapes that only make sense on an open mouth are shown with jawOpen."""
    space = rig.space
    view = RigView(rig, tile, backend, antialias=4, yaw_deg=20.0, zoom=1.12)
    names = ["neutral"] + list(space.expression_channels)
    params = np.zeros((len(names), space.dim), np.float32)
    labels = ["neutral"]
    for k, name in enumerate(names[1:], start=1):
        i = space.index(name)
        params[k, i] = _show_value(space.name, name)
        label = name
        if name in ("mouthClose", "tongueOut"):
            params[k, space.index("jawOpen")] = 1.0 if name == "mouthClose" else 0.6
            label = f"{name} +jawOpen"
        labels.append(label)
    tiles = [caption(img, lab, size=max(11, tile // 17)) for img, lab in zip(view.frames(params), labels)]
    view.close()
    rows = -(-len(tiles) // columns)
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (rows * columns - len(tiles))
    return np.concatenate([np.concatenate(tiles[r * columns : (r + 1) * columns], 1) for r in range(rows)], 0)


def _show_value(space: str, name: str) -> float:
    if space == "arkit":
        return 1.0
    if name.startswith("exp"):
        return 3.0
    return {"jawRotX": 0.3, "jawRotY": 0.2, "jawRotZ": 0.2}.get(name, 0.3)


def render_motion(
    motions: Motion | Sequence[Motion],
    rigs: Rig | Sequence[Rig],
    out: str | os.PathLike,
    audio: str | None = None,
    captions: Sequence[str] | None = None,
    size: int = 512,
    backend: str | None = None,
    antialias: int = 0,
    progress: bool = True,
) -> dict:
    """Render one or more motions side by side to an H.264 mp4 with the speech as AAC.

    All motions must share a frame rate; the video has as many frames as the longest motion
    (shorter ones hold their last frame). Returns stats (frames, seconds, fps of rendering).
    """
    from adamesh.render.video import write_video

    if size % 2:
        raise AdameshError(f"--size {size} must be even (H.264 needs even frame sizes)")
    motions = [motions] if isinstance(motions, Motion) else list(motions)
    rigs = [rigs] * len(motions) if isinstance(rigs, Rig) else list(rigs)
    if len(rigs) != len(motions):
        raise AdameshError(f"{len(motions)} motions but {len(rigs)} rigs")
    if len({m.fps for m in motions}) != 1:
        raise AdameshError("motions shown side by side must have the same fps")
    for m, r in zip(motions, rigs):
        r.check(m)
    audio = audio or motions[0].audio
    n = max(m.n_frames for m in motions)
    views = {}
    for r in rigs:
        if id(r) not in views:
            views[id(r)] = RigView(r, size, backend, antialias)

    def frames():
        for t in range(0, n, 32):
            columns = []
            for m, r in zip(motions, rigs):
                idx = np.minimum(np.arange(t, min(t + 32, n)), m.n_frames - 1)
                columns.append(list(views[id(r)].frames(m.params[idx])))
            for k in range(len(columns[0])):
                yield side_by_side([c[k] for c in columns], captions)

    try:
        stats = write_video(out, frames(), n, motions[0].fps, audio=audio, progress=progress)
    finally:
        for v in views.values():
            v.close()
    stats["renderer"] = next(iter(views.values())).renderer.name
    return stats
