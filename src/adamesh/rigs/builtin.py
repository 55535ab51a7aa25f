"""The built-in head: a stylised face built procedurally, with all 52 ARKit shapes.

No file is downloaded: the head is a warped sphere (denser where the face needs detail) sculpted
by smooth bumps (nose, chin, cheeks, brow ridge, lips, ears), with a mouth slit whose lower edge
separates from the upper one, an inner mouth (cavity, teeth, tongue), eyeballs with irises, and
eyelid shells that rotate over the eyes. Every ARKit shape is a delta written from what its name
says: jawOpen rotates the lower face about the jaw hinge, eyeBlink rotates the upper lid down, and
so on. Units are metres; x is the character's left, y up, z out of the face.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from adamesh.geometry import NormalComputer
from adamesh.motion import ARKIT, ARKIT_BLENDSHAPES
from adamesh.rigs.base import EYE_WHITE, IRIS, PUPIL, SKIN, BlendshapeRig

# Head proportions (metres). The skin is an ellipsoid around the origin with these half-axes.
AX, AY, AZ = 0.076, 0.112, 0.092
PHI_MOUTH = -0.50  # elevation of the mouth slit (radians)
THETA_MOUTH = 0.36  # half-width of the mouth slit (azimuth, radians)
PHI_EYE = 0.02
EYE_X, EYE_R = 0.033, 0.0125
EYE_POKE = 0.006  # how far the eyeball's front stands out of the skin
BROW_THETA, BROW_HALF_WIDTH, BROW_HALF_HEIGHT = 0.40, 0.25, 0.035  # brow centre and extent (radians)
NOSTRIL = (0.085, -0.36)  # azimuth, elevation of the dark nostril spots
JAW_HINGE = np.array([0.0, -0.025, -0.005])
JAW_ANGLE = math.radians(22)
PIVOT = np.array([0.0, -0.085, -0.02])

LIP = (0.74, 0.38, 0.38)
BROW = (0.28, 0.19, 0.14)
HAIR = (0.30, 0.22, 0.17)
TEETH, CAVITY, TONGUE = (0.96, 0.94, 0.86), (0.30, 0.06, 0.08), (0.78, 0.33, 0.36)


def _bump(th, ph, th0, ph0, s_th, s_ph):
    return np.exp(-0.5 * (((th - th0) / s_th) ** 2 + ((ph - ph0) / s_ph) ** 2))


def _brow_arch(th):
    """Elevation of the brow's middle line at azimuth `th`."""
    return 0.20 + 0.04 * np.cos((abs(th) - BROW_THETA) * 4)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


# (theta, phi, sigma_theta, sigma_phi, radial offset in metres); mirrored when theta != 0.
_SCULPT = {
    "muzzle": (0.0, -0.70, 0.45, 0.30, 0.008),
    "chin": (0.0, -1.05, 0.22, 0.12, 0.008),
    "nose bridge": (0.0, -0.05, 0.07, 0.20, 0.010),
    "nose tip": (0.0, -0.27, 0.10, 0.085, 0.030),
    "nostril wing": (0.14, -0.33, 0.06, 0.05, 0.010),
    "eye socket": (0.42, PHI_EYE, 0.16, 0.10, -0.012),
    "brow ridge": (0.40, 0.21, 0.25, 0.06, 0.005),
    "cheek": (0.58, -0.30, 0.22, 0.18, 0.007),
    "upper lip": (0.0, PHI_MOUTH + 0.045, 0.26, 0.045, 0.007),
    "lower lip": (0.0, PHI_MOUTH - 0.055, 0.22, 0.05, 0.008),
    "ear": (1.57, -0.08, 0.10, 0.20, 0.016),
}


def _skin_surface(th: np.ndarray, ph: np.ndarray) -> np.ndarray:
    """Azimuth/elevation grid -> (..., 3) points of the sculpted head."""
    d = np.stack([np.cos(ph) * np.sin(th), np.sin(ph), np.cos(ph) * np.cos(th)], -1)
    p = d * np.array([AX, AY, AZ])
    # a face is flat in profile from the nose down to the chin where an ellipsoid recedes:
    # push the lower front forward (cos(phi)**0.35 instead of cos(phi)), fading towards the sides
    lower = np.clip(-np.sin(ph) / 0.35, 0, 1)
    profile = np.cos(ph) ** (1 - 0.62 * lower)
    front = np.clip(np.cos(th), 0, None) ** 3
    p[..., 2] = AZ * np.cos(th) * (np.cos(ph) + (profile - np.cos(ph)) * front)
    p[..., 0] *= 1 - 0.14 * _smoothstep((-np.sin(ph) - 0.4) * 2.0)  # narrower jaw
    offset = np.zeros_like(th)
    for t0, p0, st, sp, amp in _SCULPT.values():
        offset += amp * _bump(th, ph, t0, p0, st, sp)
        if t0 != 0.0:
            offset += amp * _bump(th, ph, -t0, p0, st, sp)
    return p + d * offset[..., None]


def _outline(xy: np.ndarray, candidates: np.ndarray, center: np.ndarray, below: float, n: int) -> list[int]:
    """`n` vertices evenly spaced along the outline that the `candidates` draw around `center` in
    the (x, y) plane, below height `below`: from the -x side, through the bottom, to the +x side."""
    rel = xy[candidates] - center
    angle = np.round(np.degrees(np.arctan2(rel[:, 0], -rel[:, 1])))  # 0 straight down, -90 towards -x
    radius = np.linalg.norm(rel, axis=1)
    outline = np.array([candidates[angle == a][np.argmax(radius[angle == a])] for a in np.unique(angle)])
    outline = outline[xy[outline, 1] < below]
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy[outline], axis=0), axis=1))])
    return [int(outline[round(k)]) for k in np.interp(np.linspace(0, arc[-1], n), arc, np.arange(len(arc)))]


def _rows(n: int) -> np.ndarray:
    """Elevations from chin pole to crown, denser around mouth and eyes; one row exactly at the
    mouth slit."""
    grid = np.linspace(-math.pi / 2 + 0.04, math.pi / 2 - 0.04, 4000)
    density = 1 + 4.0 * np.exp(-0.5 * ((grid - PHI_MOUTH) / 0.16) ** 2)
    density += 2.5 * np.exp(-0.5 * ((grid - PHI_EYE - 0.08) / 0.2) ** 2)
    cdf = np.concatenate([[0], np.cumsum((density[1:] + density[:-1]) / 2)])
    rows = np.interp(np.linspace(0, cdf[-1], n), cdf, grid)
    rows[np.argmin(abs(rows - PHI_MOUTH))] = PHI_MOUTH
    return rows


def _columns(n: int) -> np.ndarray:
    """Azimuths around the head, about six times denser at the front than at the back."""
    u = np.linspace(-1, 1, n, endpoint=False)
    return math.pi * (0.32 * u + 0.68 * u**3)


class _Mesh:
    """Accumulates parts into one vertex/face/colour list, remembering each part's indices."""

    def __init__(self):
        self.verts, self.faces, self.colors, self.parts = [], [], [], {}
        self.n = 0

    def add(self, name, verts, faces, colors):
        verts = np.asarray(verts, np.float64).reshape(-1, 3)
        colors = np.broadcast_to(np.asarray(colors, np.float64), verts.shape)
        self.parts[name] = np.arange(self.n, self.n + len(verts))
        self.verts.append(verts)
        self.faces.append(np.asarray(faces, np.int64) + self.n)
        self.colors.append(colors)
        self.n += len(verts)


def _grid_faces(n_rows: int, n_cols: int, wrap: bool) -> np.ndarray:
    """Triangles of a (rows x cols) vertex grid, optionally wrapping around the columns."""
    faces = []
    last = n_cols if wrap else n_cols - 1
    for j in range(n_rows - 1):
        for i in range(last):
            a, b = j * n_cols + i, j * n_cols + (i + 1) % n_cols
            c, d = a + n_cols, b + n_cols
            faces += [(a, b, d), (a, d, c)]
    return np.array(faces)


def _sphere_patch(center, radius, az, el):
    """Vertices and faces of a sphere patch over azimuth (about y, 0 = +z) and elevation lists."""
    A, E = np.meshgrid(az, el)
    d = np.stack([np.cos(E) * np.sin(A), np.sin(E), np.cos(E) * np.cos(A)], -1)
    return center + radius * d.reshape(-1, 3), _grid_faces(len(el), len(az), wrap=False), d.reshape(-1, 3)


def _rotation_delta(points, center, axis, angle):
    """Displacement taking `points` to their rotation by `angle` about `axis` through `center`."""
    axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)
    rel = points - center
    return rel @ rot.T - rel


@functools.lru_cache(maxsize=1)
def builtin_rig() -> BlendshapeRig:
    """Build the built-in head (cached: about half a second)."""
    return _build()


def _build() -> BlendshapeRig:  # noqa: C901 - one recipe, read top to bottom
    mesh = _Mesh()

    # --- skin: a (rows x cols) grid with the mouth slit's lower edge duplicated ----------------
    rows, cols = _rows(104), _columns(144)
    nr, nc = len(rows), len(cols)
    TH, PH = np.meshgrid(cols, rows)
    th, ph = TH.reshape(-1), PH.reshape(-1)
    jm = int(np.argmin(abs(rows - PHI_MOUTH)))
    slit_cols = np.nonzero(abs(cols) < THETA_MOUTH - 1e-6)[0]
    lower_copy = {i: nr * nc + k for k, i in enumerate(slit_cols)}
    th = np.concatenate([th, cols[slit_cols]])
    ph = np.concatenate([ph, np.full(len(slit_cols), PHI_MOUTH)])
    lower = np.zeros(len(th), bool)
    lower[nr * nc :] = True
    lower |= ph < PHI_MOUTH - 1e-9
    faces = []
    for j in range(nr - 1):
        for i in range(nc):
            i2 = (i + 1) % nc
            a, b, c, d = j * nc + i, j * nc + i2, (j + 1) * nc + i, (j + 1) * nc + i2
            if j + 1 == jm:  # quad under the slit: use the lower copies of the slit row
                c, d = lower_copy.get(i, c), lower_copy.get(i2, d)
            faces += [(a, b, d), (a, d, c)]
    n_grid = len(th)
    th = np.concatenate([th, [0.0, 0.0]])  # two pole vertices close the grid
    ph = np.concatenate([ph, [-math.pi / 2, math.pi / 2]])
    lower = np.concatenate([lower, [True, False]])
    for i in range(nc):
        i2 = (i + 1) % nc
        faces += [(n_grid, i2, i), (n_grid + 1, (nr - 1) * nc + i, (nr - 1) * nc + i2)]
    skin = _skin_surface(th, ph)

    # colours: skin, lips, brows, nostrils, hair cap
    color = np.tile(SKIN, (len(th), 1)).astype(np.float64)
    lip_shape = np.exp(-((th / (THETA_MOUTH * 1.05)) ** 4))
    lip_band = np.where(
        lower, _bump(0, ph, 0, PHI_MOUTH - 0.02, 1, 0.06), _bump(0, ph, 0, PHI_MOUTH + 0.01, 1, 0.045)
    )
    lip_color = _smoothstep((lip_shape * lip_band - 0.3) / 0.2)
    across = _smoothstep((1 - abs(abs(th) - BROW_THETA) / BROW_HALF_WIDTH) * 4)
    brow = _smoothstep((1 - abs(ph - _brow_arch(th)) / BROW_HALF_HEIGHT) * 3) * across
    nostril = _bump(abs(th), ph, *NOSTRIL, 0.03, 0.025)
    hair = _smoothstep((ph - 0.62 + 0.35 * _smoothstep((abs(th) - 1.2) / 0.6)) / 0.06)
    for mask, col in ((lip_color, LIP), (brow, BROW), (nostril, (0.35, 0.22, 0.2)), (hair, HAIR)):
        color += mask[:, None] * (np.array(col) - color)
    mesh.add("skin", skin, faces, color)

    # --- eyes: eyeballs with iris and pupil, and upper/lower lid shells ---------------------
    eye_centers = {}
    for side, s in (("Left", 1), ("Right", -1)):
        # sit the eyeball so its front pokes 6 mm out of the (sculpted) skin
        th_e = math.asin(EYE_X / AX)
        front = _skin_surface(np.array(s * th_e), np.array(PHI_EYE))
        center = np.array([s * EYE_X, front[1], front[2] + EYE_POKE - EYE_R])
        eye_centers[side] = center
        verts, f, d = _sphere_patch(
            center, EYE_R, np.linspace(-math.pi, math.pi, 33)[:-1], np.linspace(-1.5, 1.5, 24)
        )
        f = _grid_faces(24, 32, wrap=True)  # the patch's own faces and the seam that closes it
        cos_front = d[:, 2]
        col = np.tile(EYE_WHITE, (len(verts), 1))
        col[cos_front > math.cos(0.42)] = IRIS
        col[cos_front > math.cos(0.17)] = PUPIL
        mesh.add(f"eye{side}", verts, f, col)
        az = np.linspace(-1.45, 1.45, 30)
        lid_r = EYE_R * 1.16
        v, f, _ = _sphere_patch(center, lid_r, az, np.linspace(math.radians(12), math.radians(115), 12))
        mesh.add(f"lidUpper{side}", v, f, SKIN)
        v, f, _ = _sphere_patch(center, lid_r, az, np.linspace(math.radians(-115), math.radians(-30), 10))
        mesh.add(f"lidLower{side}", v, f, SKIN)

    # --- inner mouth: cavity, teeth, tongue ----------------------------------------------
    m_front = _skin_surface(np.array(0.0), np.array(PHI_MOUTH))
    ym, zm = m_front[1], m_front[2]
    v, f, _ = _sphere_patch(
        np.zeros(3), 1.0, np.linspace(-math.pi, math.pi, 25)[:-1], np.linspace(-1.45, 1.45, 12)
    )
    f = _grid_faces(12, 24, wrap=True)  # closed around
    mesh.add("cavity", v * [0.022, 0.020, 0.022] + [0, ym - 0.003, zm - 0.034], f, CAVITY)
    r_t = 0.022
    psi = np.linspace(-0.95, 0.95, 24)
    for name, y0, y1 in (("teethUpper", ym + 0.0005, ym + 0.009), ("teethLower", ym - 0.008, ym - 0.0005)):
        ring = np.stack([r_t * np.sin(psi), np.zeros_like(psi), zm - 0.0075 - r_t + r_t * np.cos(psi)], -1)
        v = np.concatenate([ring + [0, y0, 0], ring + [0, y1, 0]])
        mesh.add(name, v, _grid_faces(2, len(psi), wrap=False), TEETH)
    v, f, _ = _sphere_patch(
        np.zeros(3), 1.0, np.linspace(-math.pi, math.pi, 17)[:-1], np.linspace(-1.4, 1.4, 8)
    )
    f = _grid_faces(8, 16, wrap=True)  # closed around
    tongue_rest = v * [0.015, 0.005, 0.019] + [0, ym - 0.011, zm - 0.030]
    mesh.add("tongue", tongue_rest, f, TONGUE)

    # --- neck: an open cylinder whose top hides inside the head ---------------------------
    a = np.linspace(-math.pi, math.pi, 33)[:-1]
    ys = np.linspace(-0.20, -0.06, 6)
    ring = np.stack([0.048 * np.sin(a), np.zeros_like(a), 0.052 * np.cos(a) - 0.018], -1)
    mesh.add("neck", np.concatenate([ring + [0, y, 0] for y in ys]), _grid_faces(6, 32, wrap=True), SKIN)

    verts = np.concatenate(mesh.verts)
    P = mesh.parts
    V = len(verts)

    def on_skin(values):
        out = np.zeros(V)
        out[P["skin"]] = values
        return out

    # skin coordinates padded to all vertices, so masks can be built with numpy expressions
    TH_ = on_skin(th)
    PH_ = on_skin(ph)
    LOWER = on_skin(lower.astype(float)) > 0.5
    SKIN_ = on_skin(np.ones(len(th))) > 0

    def bump(th0, ph0, s_th, s_ph):
        return np.where(SKIN_, _bump(TH_, PH_, th0, ph0, s_th, s_ph), 0.0)

    def part(*names):
        m = np.zeros(V)
        for n in names:
            m[P[n]] = 1.0
        return m

    # jaw weight: lower side of the slit across the mouth, a diagonal boundary from the mouth
    # corners up to the hinge in front of the ears, fading out behind the ears.
    a_th = abs(TH_)
    boundary = PHI_MOUTH + 0.40 * _smoothstep((a_th - THETA_MOUTH) / 0.9)
    width = 0.02 + 0.45 * np.clip(a_th - THETA_MOUTH, 0, None)
    jaw_skin = np.where(a_th <= THETA_MOUTH, LOWER.astype(float), _smoothstep(0.5 + (boundary - PH_) / width))
    jaw_skin *= 1 - _smoothstep((a_th - 1.25) / 0.45)
    jaw_w = np.where(SKIN_, jaw_skin, 0.0) + part("teethLower", "tongue")
    cav = P["cavity"]
    jaw_w[cav] = _smoothstep((verts[cav, 1] - (ym + 0.004)) / -0.014)

    # lip masks: upper and lower lip (which edge of the slit), corners, mouth area
    lip_w = np.exp(-((TH_ / (THETA_MOUTH * 1.1)) ** 4))
    up = np.where(
        SKIN_ & ~LOWER & (PH_ >= PHI_MOUTH), lip_w * np.exp(-(((PH_ - PHI_MOUTH) / 0.075) ** 2)), 0.0
    )
    lo = np.where(SKIN_ & LOWER, lip_w * np.exp(-(((PH_ - PHI_MOUTH) / 0.085) ** 2)), 0.0)
    lips = up + lo
    mouth_area = bump(0, PHI_MOUTH, 0.5, 0.22)
    x, y = verts[:, 0], verts[:, 1]

    shapes = {}

    def put(name, delta):
        shapes[name] = np.asarray(delta, np.float64)

    def vec(dx=0.0, dy=0.0, dz=0.0):
        return np.array([dx, dy, dz])

    jaw_rot = _rotation_delta(verts, JAW_HINGE, [1, 0, 0], JAW_ANGLE)
    put("jawOpen", jaw_w[:, None] * jaw_rot)
    put("jawForward", jaw_w[:, None] * vec(dz=0.008))
    put("jawLeft", jaw_w[:, None] * vec(dx=0.008))
    put("jawRight", jaw_w[:, None] * vec(dx=-0.008))
    # mouthClose closes the lips over an open jaw: each lip travels half of the jaw's gap
    lip_gap = jaw_rot[lower_copy[slit_cols[len(slit_cols) // 2]]]  # jaw motion at the lip middle
    put("mouthClose", -0.5 * lo[:, None] * jaw_rot + 0.5 * up[:, None] * lip_gap)
    toward_mid = -np.sign(x) * np.clip(abs(x), 0, 0.03) / 0.03  # unit-ish pull to the midline
    corners = lambda s: bump(s * THETA_MOUTH, PHI_MOUTH, 0.14, 0.10)  # noqa: E731
    open_dir = np.where(LOWER, -1.0, 1.0)
    put(
        "mouthFunnel",
        lips[:, None] * vec(dz=0.008)
        + (lips * open_dir * np.exp(-((TH_ / 0.22) ** 2)))[:, None] * vec(dy=0.0045)
        + (mouth_area * toward_mid * 0.006)[:, None] * vec(1, 0, 0),
    )
    put(
        "mouthPucker",
        (lips + 0.5 * mouth_area)[:, None] * vec(dz=0.007)
        + (mouth_area * toward_mid * 0.011)[:, None] * vec(1, 0, 0)
        + (lips * -open_dir * np.exp(-((TH_ / 0.2) ** 2)) * 0.001)[:, None] * vec(dy=1),
    )
    put("mouthLeft", mouth_area[:, None] * vec(dx=0.009))
    put("mouthRight", mouth_area[:, None] * vec(dx=-0.009))
    put("mouthRollLower", lo[:, None] * vec(dy=0.004, dz=-0.008))
    put("mouthRollUpper", up[:, None] * vec(dy=-0.004, dz=-0.008))
    chin = bump(0, -1.0, 0.35, 0.25)
    put("mouthShrugLower", (lo + 0.6 * chin)[:, None] * vec(dy=0.004, dz=0.003))
    put("mouthShrugUpper", up[:, None] * vec(dy=0.004, dz=0.0015))
    for side, s in (("Left", 1), ("Right", -1)):
        c = corners(s)
        half = _smoothstep(0.5 + s * TH_ / 0.12)  # this side of the mouth
        cheek = bump(s * 0.55, -0.28, 0.22, 0.16)
        put(
            f"mouthSmile{side}",
            c[:, None] * vec(s * 0.006, 0.008, -0.003) + cheek[:, None] * vec(dy=0.003, dz=0.002),
        )
        put(f"mouthFrown{side}", c[:, None] * vec(s * 0.002, -0.010, -0.002))
        put(f"mouthDimple{side}", c[:, None] * vec(s * 0.004, 0.001, -0.008))
        put(
            f"mouthStretch{side}",
            c[:, None] * vec(s * 0.007, -0.003, -0.002) + (lo * half)[:, None] * vec(dy=-0.002),
        )
        # press: squeeze the lip on this side towards the slit, thinning it
        squeeze = (lips * half)[:, None] * vec(dy=1) * (PHI_MOUTH - PH_)[:, None] * 0.08
        put(f"mouthPress{side}", squeeze + (lips * half)[:, None] * vec(dz=-0.003))
        put(f"mouthLowerDown{side}", (lo * half)[:, None] * vec(dy=-0.0065, dz=0.001))
        put(f"mouthUpperUp{side}", (up * half)[:, None] * vec(dy=0.0065, dz=0.001))

    # --- eyes and lids -------------------------------------------------------------------
    for side, s in (("Left", 1), ("Right", -1)):
        e = eye_centers[side]
        eye, lid_u, lid_l = part(f"eye{side}"), part(f"lidUpper{side}"), part(f"lidLower{side}")

        def rot(mask, axis, deg, e=e):
            return mask[:, None] * _rotation_delta(verts, e, axis, math.radians(deg))

        # positive rotation about +x turns the front of the eye (and a lid) downwards
        put(f"eyeBlink{side}", rot(lid_u, [1, 0, 0], 40) + rot(lid_l, [1, 0, 0], -7))
        put(f"eyeLookDown{side}", rot(eye, [1, 0, 0], 25) + rot(lid_u, [1, 0, 0], 12))
        put(f"eyeLookUp{side}", rot(eye, [1, 0, 0], -25) + rot(lid_u, [1, 0, 0], -8))
        put(f"eyeLookIn{side}", rot(eye, [0, 1, 0], -s * 30))  # towards the nose
        put(f"eyeLookOut{side}", rot(eye, [0, 1, 0], s * 30))
        under_eye = bump(s * 0.42, -0.10, 0.18, 0.07)
        put(
            f"eyeSquint{side}",
            rot(lid_l, [1, 0, 0], -16) + rot(lid_u, [1, 0, 0], 6) + under_eye[:, None] * vec(dy=0.003),
        )
        put(f"eyeWide{side}", rot(lid_u, [1, 0, 0], -16) + rot(lid_l, [1, 0, 0], 6))

        brow_all = bump(s * 0.40, 0.22, 0.28, 0.09)
        inner = bump(s * 0.20, 0.22, 0.12, 0.09)
        outer = bump(s * 0.58, 0.20, 0.16, 0.09)
        put(
            f"browDown{side}",
            brow_all[:, None] * vec(dy=-0.006, dz=0.001) + inner[:, None] * vec(dx=-s * 0.003),
        )
        put(f"browOuterUp{side}", outer[:, None] * vec(dy=0.008))
        put(f"cheekSquint{side}", bump(s * 0.50, -0.18, 0.2, 0.1)[:, None] * vec(dy=0.006, dz=0.002))
        put(f"noseSneer{side}", bump(s * 0.12, -0.22, 0.08, 0.09)[:, None] * vec(s * 0.002, 0.006, 0.002))

    put(
        "browInnerUp", (bump(0.18, 0.24, 0.12, 0.09) + bump(-0.18, 0.24, 0.12, 0.09))[:, None] * vec(dy=0.008)
    )
    radial = np.where(SKIN_[:, None], verts - [0, y.mean(), 0], 0)
    radial /= np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-9)
    puff = bump(0.62, -0.45, 0.22, 0.2) + bump(-0.62, -0.45, 0.22, 0.2)
    put("cheekPuff", puff[:, None] * radial * 0.012)
    tongue = part("tongue")
    put("tongueOut", tongue[:, None] * vec(dy=-0.003, dz=0.026))

    assert set(shapes) == set(ARKIT_BLENDSHAPES), set(ARKIT_BLENDSHAPES) ^ set(shapes)
    deltas = np.stack([shapes[n] for n in ARKIT_BLENDSHAPES]).astype(np.float32)

    skin_idx = P["skin"]
    front = SKIN_ & (abs(TH_) < 1.3) & (PH_ > -1.35) & (PH_ < 0.75)
    eyes = np.concatenate(
        [P[f"{k}{sd}"] for k in ("eye", "lidUpper", "lidLower") for sd in ("Left", "Right")]
    )
    regions = {
        "face": np.nonzero(front)[0],
        "lips": np.nonzero(lips > 0.3)[0],
        "upper_face": np.nonzero(front & (y > eye_centers["Left"][1] - 0.012))[0],
        "eyes": eyes,
        "jaw": np.nonzero(jaw_w > 0.5)[0],
        "skin": skin_idx,
    }

    # --- landmarks: the 68 Multi-PIE points, found on the features built above -------------
    grid = nr * nc  # the skin grid's vertices come first (skin is the first part)

    def at(t, p):  # the skin grid vertex nearest an azimuth and elevation
        return int(np.argmin((th[:grid] - t) ** 2 + (ph[:grid] - p) ** 2))

    def col(t):
        return int(np.argmin(abs(cols - t)))

    # jaw: the face's outline seen from the front, below the eyes; ears, back-facing skin and the
    # underside of the jaw that the neck hides are left out
    normals = NormalComputer(np.asarray(faces), len(skin))(skin.astype(np.float32))
    ear_th, _, ear_sigma = _SCULPT["ear"][:3]
    neck = verts[P["neck"]]
    behind_neck = (skin[:, 1] < neck[:, 1].max()) & (skin[:, 2] < neck[:, 2].max())
    seen = np.nonzero((normals[:, 2] > 0) & (abs(th) < ear_th - 2 * ear_sigma) & ~behind_neck)[0]
    nose_tip = int(np.argmax(skin[:, 2]))
    jaw = _outline(skin[:, :2], seen, skin[nose_tip, :2], below=eye_centers["Left"][1], n=17)
    # brows: five points along the upper edge of each brow, right brow outer to inner, left inner to outer
    brow_th = BROW_THETA + 0.85 * BROW_HALF_WIDTH * np.linspace(1, -1, 5)
    brows = [at(s * t, _brow_arch(t) + 0.8 * BROW_HALF_HEIGHT)
             for s, ts in ((-1, brow_th), (1, brow_th[::-1])) for t in ts]  # fmt: skip
    # nose: the bridge from eye level down to the tip, then the base from the right wing to the left
    bridge = [at(0.0, PHI_EYE + (ph[nose_tip] - PHI_EYE) * k / 3) for k in range(3)] + [nose_tip]
    wing = _SCULPT["nostril wing"][0]
    nose_base = [at(t, NOSTRIL[1]) for t in (-wing, -NOSTRIL[0], 0.0, NOSTRIL[0], wing)]
    # eyes: corners on the skin where the eyeball comes out of it, two points on each lid's free edge
    r_open = math.sqrt(EYE_R**2 - (EYE_R - EYE_POKE) ** 2)
    eye_points = []
    for side in ("Right", "Left"):
        c = eye_centers[side]
        upper, lower = P[f"lidUpper{side}"][: len(az)], P[f"lidLower{side}"][-len(az) :]  # first/last row
        front_skin = np.nonzero(skin[:, 2] > c[2])[0]
        # corner, upper lid twice, corner, lower lid twice (x ascending, then back)
        xs = c[0] + r_open * np.array([-1, -1 / 3, 1 / 3, 1, 1 / 3, -1 / 3])
        for k, x in enumerate(xs):
            if k in (0, 3):
                gap = np.hypot(skin[front_skin, 0] - x, skin[front_skin, 1] - c[1])
                eye_points.append(int(front_skin[np.argmin(gap)]))
            else:
                edge = upper if k < 3 else lower
                eye_points.append(int(edge[np.argmin(abs(verts[edge, 0] - x))]))
    # lips: the slit's ends are the corners; outer points lie on the red lip's border, inner ones on the slit
    slit = jm * nc
    right, left = slit + slit_cols[0] - 1, slit + slit_cols[-1] + 1

    def lip_border(t, up):
        rows_out = np.arange(jm, nr) if up else np.arange(jm - 1, -1, -1)
        red = lip_color[rows_out * nc + col(t)] > 0.5
        return int(rows_out[np.argmin(red) - 1] * nc + col(t))  # the last red row before the skin

    thirds, halves = THETA_MOUTH * np.array([-2, -1, 0, 1, 2]) / 3, THETA_MOUTH * np.array([-1, 0, 1]) / 2
    outer = [right, *(lip_border(t, True) for t in thirds), left, *(lip_border(t, False) for t in -thirds)]
    inner = [right, *(slit + col(t) for t in halves), left, *(lower_copy[col(t)] for t in -halves)]
    landmarks = np.array(jaw + brows + bridge + nose_base + eye_points + outer + inner)

    return BlendshapeRig(
        name="builtin",
        space=ARKIT,
        neutral=verts.astype(np.float32),
        faces=np.concatenate(mesh.faces).astype(np.int32),
        colors=np.concatenate(mesh.colors).astype(np.float32),
        regions=regions,
        pivot=PIVOT,
        units_per_meter=1.0,
        shapes=deltas,
        landmarks=landmarks,
        info={"source": "procedural (adamesh.rigs.builtin)", "licence": "MIT, part of adamesh"},
    )
