"""Software fallback: a vectorised torch z-buffer rasteriser, used when no GL context can be made.

Each triangle enumerates the pixel centres of its bounding box; the nearest covering triangle wins
each pixel through one ``scatter_reduce(amin)`` on a key that packs depth above triangle id; the
winners' normals and colours are interpolated and shaded like the GL backend.
"""

from __future__ import annotations

import numpy as np
import torch

from adamesh.render.camera import Camera, background, shade


class TorchRasterizer:
    name = "torch-raster"

    def __init__(self, faces: np.ndarray, colors: np.ndarray, camera: Camera, supersample: int = 1):
        self.faces = torch.from_numpy(np.asarray(faces, np.int64))
        self.colors = np.asarray(colors, np.float32)
        self.camera = camera
        self.bg = background(camera.width, camera.height)

    def render(self, verts: np.ndarray, normals: np.ndarray) -> np.ndarray:
        cam = self.camera
        w, h = cam.width, cam.height
        scr = torch.from_numpy(cam.project(np.asarray(verts, np.float32)).astype(np.float32))
        tri = scr[self.faces]  # (F, 3, 3): x, y, depth per corner
        lo = tri[..., :2].amin(1).floor().clamp(min=0)
        hi = tri[..., :2].amax(1).ceil()
        hi[:, 0].clamp_(max=w - 1)
        hi[:, 1].clamp_(max=h - 1)
        size = (hi - lo + 1).clamp(min=0).long()
        keep = (size[:, 0] > 0) & (size[:, 1] > 0) & (tri[..., 2].amin(1) > 0)
        fid = torch.nonzero(keep).squeeze(1)
        counts = size[fid, 0] * size[fid, 1]
        owner = torch.repeat_interleave(fid, counts)
        start = torch.cumsum(counts, 0) - counts
        local = torch.arange(int(counts.sum())) - torch.repeat_interleave(start, counts)
        bw = size[owner, 0]
        px = lo[owner, 0].long() + local % bw
        py = lo[owner, 1].long() + local // bw
        bary, depth = _barycentric(tri[owner], px.float() + 0.5, py.float() + 0.5)
        inside = (bary >= -1e-6).all(1)
        owner, px, py, depth = owner[inside], px[inside], py[inside], depth[inside]
        # pack (depth, face id) into one int64 so the minimum picks the nearest face
        dmin, dmax = depth.min(), depth.max()
        q = ((depth - dmin) / (dmax - dmin + 1e-12) * (2**30 - 1)).long()
        key = (q << 24) | owner
        pix = py * w + px
        best = torch.full((w * h,), torch.iinfo(torch.int64).max, dtype=torch.int64)
        best.scatter_reduce_(0, pix, key, reduce="amin")
        hit = torch.nonzero(best != torch.iinfo(torch.int64).max).squeeze(1)
        face = best[hit] & ((1 << 24) - 1)
        hx, hy = (hit % w).float() + 0.5, (hit // w).float() + 0.5
        bary, _ = _barycentric(tri[face], hx, hy)
        bary = bary.clamp(min=0)
        bary = bary / bary.sum(1, keepdim=True)
        corners = self.faces[face].numpy()
        b = bary.numpy()[..., None]
        nrm = (np.asarray(normals)[corners] * b).sum(1)
        col = (self.colors[corners] * b).sum(1)
        nrm_view = nrm @ cam.view[:3, :3].T
        nrm_view *= np.where(nrm_view[:, 2:3] < 0, -1.0, 1.0)  # light inner surfaces from our side
        img = self.bg.copy().reshape(-1, 3)
        img[hit.numpy()] = shade(nrm_view, col)
        return (img.reshape(h, w, 3) * 255 + 0.5).astype(np.uint8)

    def close(self):
        pass


def _barycentric(tri: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """Barycentric weights (N, 3) of points (x, y) in screen triangles (N, 3, 3), and their
    perspective-linear depth."""
    x0, y0 = tri[:, 0, 0], tri[:, 0, 1]
    x1, y1 = tri[:, 1, 0], tri[:, 1, 1]
    x2, y2 = tri[:, 2, 0], tri[:, 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    area = torch.where(area.abs() < 1e-12, torch.full_like(area, 1e-12), area)
    w1 = ((x - x0) * (y2 - y0) - (x2 - x0) * (y - y0)) / area
    w2 = ((x1 - x0) * (y - y0) - (x - x0) * (y1 - y0)) / area
    w0 = 1 - w1 - w2
    bary = torch.stack([w0, w1, w2], 1)
    depth = (bary * tri[:, :, 2]).sum(1)
    return bary, depth
