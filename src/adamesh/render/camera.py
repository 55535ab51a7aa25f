"""A fixed camera that frames a rig's face whatever its units, and the shading both backends share."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from adamesh.errors import AdameshError

BACKGROUND_TOP = np.array([0.80, 0.83, 0.87], np.float32)
BACKGROUND_BOTTOM = np.array([0.55, 0.58, 0.63], np.float32)
# Directional lights in view space (towards the light), with intensities; plus ambient.
LIGHTS = ((np.array([-0.5, 0.6, 0.8]), 0.75), (np.array([0.7, 0.1, 0.5]), 0.30))
AMBIENT = 0.28


@dataclass(frozen=True)
class Camera:
    """Perspective camera. ``view`` and ``proj`` are 4x4 matrices (column vectors)."""

    view: np.ndarray
    proj: np.ndarray
    width: int
    height: int

    @property
    def view_proj(self) -> np.ndarray:
        return self.proj @ self.view

    def project(self, verts: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 3) pixel x, pixel y (down), view depth (positive)."""
        h = np.concatenate([verts, np.ones((len(verts), 1), verts.dtype)], 1)
        clip = h @ self.view_proj.T
        ndc = clip[:, :3] / clip[:, 3:4]
        px = (ndc[:, 0] + 1) * 0.5 * self.width
        py = (1 - ndc[:, 1]) * 0.5 * self.height
        depth = -(h @ self.view.T)[:, 2]
        return np.stack([px, py, depth], 1)


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    f = target - eye
    f = f / np.linalg.norm(f)
    r = np.cross(f, up)
    r = r / np.linalg.norm(r)
    u = np.cross(r, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = r, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def perspective(fov_y: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1 / math.tan(fov_y / 2)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = f / aspect, f
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    m[3, 2] = -1
    return m


def frame_rig(
    rig, width: int = 512, height: int = 512, yaw_deg: float = 30.0, pitch_deg: float = 8.0, zoom: float = 1.0
) -> Camera:
    """A three-quarter-front camera (``yaw_deg`` towards the character's left) framing the face
    region of the rig's neutral mesh, so the head fills the picture in any units."""
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise AdameshError(f"image size {width}x{height} is out of range; use 16 to 8192 pixels")
    face = rig.neutral[rig.regions["face"]]
    lo, hi = face.min(0), face.max(0)
    center = (lo + hi) / 2
    radius = 0.5 * float(np.linalg.norm(hi - lo)) * 1.05 / zoom
    fov = math.radians(24)
    dist = radius / math.sin(fov / 2)
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    direction = np.array([math.cos(pitch) * math.sin(yaw), math.sin(pitch), math.cos(pitch) * math.cos(yaw)])
    eye = center + dist * direction
    view = look_at(eye, center)
    proj = perspective(fov, width / height, dist * 0.2, dist * 3)
    return Camera(view.astype(np.float32), proj.astype(np.float32), width, height)


def shade(normals_view: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Lambert with two lights and a soft specular, for (N, 3) view-space normals."""
    n = normals_view / np.maximum(np.linalg.norm(normals_view, axis=-1, keepdims=True), 1e-9)
    light = np.full(n.shape[:-1] + (1,), AMBIENT, np.float32)
    spec = np.zeros_like(light)
    for direction, intensity in LIGHTS:
        d = direction / np.linalg.norm(direction)
        ndl = np.clip(n @ d, 0, None)[..., None]
        light = light + intensity * ndl
        h = d + np.array([0, 0, 1.0])
        h = h / np.linalg.norm(h)
        spec = spec + 0.12 * intensity * np.clip(n @ h, 0, None)[..., None] ** 24
    return np.clip(colors * light + spec, 0, 1)


def background(width: int, height: int) -> np.ndarray:
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to(BACKGROUND_TOP * (1 - t) + BACKGROUND_BOTTOM * t, (height, width, 3)).copy()
