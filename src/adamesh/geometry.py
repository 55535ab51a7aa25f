"""Rotations and mesh helpers shared by rigs, renderer and exporters (torch and numpy)."""

from __future__ import annotations

import numpy as np
import scipy.sparse
import torch


def euler_to_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(...,) angles in radians -> (..., 3, 3) rotation R = Ry(yaw) @ Rx(pitch) @ Rz(roll)."""
    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cr, sr = torch.cos(roll), torch.sin(roll)
    one, zero = torch.ones_like(pitch), torch.zeros_like(pitch)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).unflatten(-1, (3, 3))
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).unflatten(-1, (3, 3))
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).unflatten(-1, (3, 3))
    return ry @ rx @ rz


def matrix_to_euler(m: np.ndarray) -> np.ndarray:
    """Inverse of `euler_to_matrix` for numpy (..., 3, 3) -> (..., 3) (pitch, yaw, roll)."""
    pitch = np.arcsin(np.clip(-m[..., 1, 2], -1.0, 1.0))
    yaw = np.arctan2(m[..., 0, 2], m[..., 2, 2])
    roll = np.arctan2(m[..., 1, 0], m[..., 1, 1])
    return np.stack([pitch, yaw, roll], -1)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) by Rodrigues' formula, smooth at zero."""
    angle = torch.linalg.norm(aa, dim=-1, keepdim=True).clamp_min(1e-8)
    axis = aa / angle
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).unflatten(-1, (3, 3))
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(k.shape)
    return eye + s * k + (1 - c) * (k @ k)


def quaternion_to_matrix(q) -> np.ndarray:
    """A unit quaternion (x, y, z, w), glTF's order, -> its (3, 3) rotation matrix."""
    x, y, z, w = np.asarray(q, np.float64)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (x, y, z, w), w >= 0."""
    m = np.asarray(m, np.float64)
    w = np.sqrt(np.maximum(0.0, 1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2])) / 2
    x = np.sqrt(np.maximum(0.0, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2])) / 2
    y = np.sqrt(np.maximum(0.0, 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2])) / 2
    z = np.sqrt(np.maximum(0.0, 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2])) / 2
    x = np.copysign(x, m[..., 2, 1] - m[..., 1, 2])
    y = np.copysign(y, m[..., 0, 2] - m[..., 2, 0])
    z = np.copysign(z, m[..., 1, 0] - m[..., 0, 1])
    q = np.stack([x, y, z, w], -1)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def triangulate(polygons: list[list[int]]) -> np.ndarray:
    """Fan-triangulate polygons (lists of vertex indices) -> (F, 3) int32."""
    tris = [(p[0], p[i], p[i + 1]) for p in polygons for i in range(1, len(p) - 1)]
    return np.asarray(tris, np.int32).reshape(-1, 3)


class NormalComputer:
    """Smooth per-vertex normals of a fixed-topology mesh, fast enough for every video frame.

    Area-weighted face normals are summed onto vertices with one sparse matrix product.
    """

    def __init__(self, faces: np.ndarray, n_vertices: int):
        faces = np.asarray(faces, np.int64)
        rows = faces.reshape(-1)
        cols = np.repeat(np.arange(len(faces)), 3)
        self.faces = faces
        self.incidence = scipy.sparse.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)), shape=(n_vertices, len(faces))
        )

    def __call__(self, vertices: np.ndarray) -> np.ndarray:
        v = vertices
        f = self.faces
        fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        vn = self.incidence @ fn
        norm = np.linalg.norm(vn, axis=1, keepdims=True)
        return (vn / np.maximum(norm, 1e-12)).astype(np.float32)
