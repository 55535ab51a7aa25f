"""The overlay video of `adamesh track`: the fitted face drawn over the video, to check the fit by eye."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image, ImageDraw

from adamesh.rigs import BlendshapeRig
from adamesh.tracking.fit import FaceFit, fitted_vertices
from adamesh.tracking.video import frames_at

OVERLAY_ALPHA = 0.45  # opacity of the fitted mesh over the video


def write_overlay(path: Path, name: str, rig: BlendshapeRig, fit: FaceFit, observed: np.ndarray,
                   grid: np.ndarray, fps: float, audio: Path | None, progress: bool) -> None:  # fmt: skip
    """The video frame shown at each motion frame, with the fitted face drawn over it."""
    from adamesh.geometry import NormalComputer
    from adamesh.render import make_renderer
    from adamesh.render.video import write_video

    frames = frames_at(name, grid)
    first = next(frames)
    height, width = first.shape[0] // 2 * 2, first.shape[1] // 2 * 2  # H.264 wants even sizes
    # Only the face, eyes and mouth: what lies within the face region's box on the neutral mesh
    # (a bust or the back of the head would hide the video).
    face = rig.neutral[rig.regions["face"]]
    inside = np.all((rig.neutral >= face.min(0)) & (rig.neutral <= face.max(0)), axis=1)
    triangles = rig.faces[inside[rig.faces].all(1)]
    mesh_part = SimpleNamespace(faces=triangles, colors=rig.colors)  # all make_renderer reads of a rig
    renderer = make_renderer(mesh_part, _pixel_camera(width, height))
    normals = NormalComputer(triangles, rig.n_vertices)
    to_world = np.array([1.0, -1.0, -1.0], np.float32)  # image pixels -> the camera's y-up, z-out frame
    empty = renderer.render(np.full_like(rig.neutral, -1e6), np.zeros_like(rig.neutral))  # background only

    def drawn():
        for start in range(0, len(grid), 32):
            frames_here = slice(start, min(start + 32, len(grid)))
            own = fitted_vertices(rig, fit, frames_here)
            verts = fit.to_image(own, frames_here).astype(np.float32)
            # the fitted landmarks: the rig's own plus the static correction (what the fit explains)
            marks = fit.to_image(
                own[:, rig.landmarks] + fit.correction_mm * rig.units_per_meter / 1000.0, frames_here
            )
            for k, v in enumerate(verts):
                image = (first if start + k == 0 else next(frames))[:height, :width]
                world = v * to_world
                mesh = renderer.render(world, normals(world))
                cover = np.any(mesh != empty, axis=2, keepdims=True) * OVERLAY_ALPHA
                pil = Image.fromarray((image * (1 - cover) + mesh * cover).astype(np.uint8))
                draw = ImageDraw.Draw(pil)
                seen = observed[start + k] if fit.valid[start + k] else []  # none where interpolated
                for (x, y, _), colour in [*((p, (60, 255, 60)) for p in seen),
                                          *((p, (255, 40, 40)) for p in marks[k])]:  # fmt: skip
                    draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=colour)
                yield np.asarray(pil)

    try:
        write_video(path, drawn(), len(grid), fps, audio=str(audio) if audio else None, progress=progress)
    finally:
        renderer.close()


def _pixel_camera(width: int, height: int):
    """An orthographic camera whose picture is the image: world x = pixel column, y = -pixel row,
    z towards the viewer, in pixels."""
    from adamesh.render.camera import Camera

    far = 40.0 * max(width, height)
    view = np.eye(4)
    view[2, 3] = -far / 2  # the camera sits in front of everything drawn, at z = far / 2
    proj = np.array([[2 / width, 0, 0, -1], [0, 2 / height, 0, 1], [0, 0, -2 / far, -1], [0, 0, 0, 1]])
    return Camera(view.astype(np.float32), proj.astype(np.float32), width, height)
