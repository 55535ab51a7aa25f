"""Ground-truth animation from phoneme timing: visemes, coarticulation, speaker styles, head motion.

Everything here is computed from the phone sequence and the text, never from the audio, so the
animation is in sync with the speech by construction and its style parameters are known exactly.

Lips and jaw: each phone has a viseme target over a few articulatory features (jaw opening, lip
closure, rounding, spreading, ...). Targets are blended with dominance functions after Cohen and
Massaro (1993): D_s(t) = alpha_s exp(-theta |distance from segment s|), value(t) = sum D_s T_s /
sum D_s. A dominant phone (p/b/m closure, f/v, rounding of w/uw) wins over its neighbours; a weak one
(k, g, h) takes its shape from them. Dominance is flat inside a segment, so every frame within a
bilabial is a real closure.

The face leads the sound: the frame at time t shows the articulation of the speech at t + 40 ms
(`ARTICULATORY_LEAD`). Lips and jaw reach a shape before the sound it makes is heard; studies of
audio-visual speech measure the visible lead at 40-200 ms (e.g. Chandrasekaran et al. 2009,
PLoS Comput Biol 5(7)); we take the low end, which holds for most phones.

Breathing: before a phrase the mouth opens to breathe in and closes into the phrase's first sound
(oral inhalation before speech, about half a second). Real talking faces do this (the GRID clips'
mouth tracks open before the first word); a model that sees the coming speech can anticipate it.

Speaker styles (`ExpressionStyle`, `PoseStyle`) are small sets of interpretable numbers that
change how that speaker's face and head move; the corpus stores them, and the benchmarks check how
well adapted models recover them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from adamesh.motion import ARKIT, blink_curve
from adamesh.phones import VOWELS

FEATURES = (
    "jaw",
    "closure",
    "press",
    "roll_lower",
    "roll_upper",
    "upper_up",
    "lower_down",
    "funnel",
    "pucker",
    "stretch",
)
_GROUP = {
    "jaw": "jaw",
    "closure": "closure",
    "press": "lips",
    "roll_lower": "lips",
    "roll_upper": "lips",
    "upper_up": "lips",
    "lower_down": "lips",
    "funnel": "round",
    "pucker": "round",
    "stretch": "spread",
}

# Viseme targets (feature: value in 0..1) and dominance per group (jaw, closure, lips, round, spread).
# Silence dominates strongly, so pauses return to rest instead of holding the neighbours' shapes.
_V = {
    "SIL": ({}, (2.0, 2.0, 2.0, 2.0, 2.0)),
    "P": ({"jaw": 0.05, "closure": 1.0, "press": 0.35, "roll_lower": 0.1}, (0.8, 30, 1.5, 0.5, 0.5)),
    "F": ({"jaw": 0.08, "roll_lower": 0.6, "upper_up": 0.2}, (0.8, 1.0, 5.0, 0.5, 0.5)),
    "TH": ({"jaw": 0.16, "lower_down": 0.15, "stretch": 0.1}, (0.7, 1.0, 1.0, 0.3, 0.5)),
    "S": ({"jaw": 0.06, "stretch": 0.25, "upper_up": 0.1, "lower_down": 0.1}, (1.2, 1.0, 1.0, 0.3, 0.8)),
    "T": ({"jaw": 0.14, "stretch": 0.1, "lower_down": 0.05}, (0.7, 1.0, 0.6, 0.2, 0.4)),
    "SH": (
        {"jaw": 0.1, "funnel": 0.5, "pucker": 0.2, "upper_up": 0.25, "lower_down": 0.2},
        (0.8, 1.0, 1.5, 3.0, 1.0),
    ),
    "K": ({"jaw": 0.2}, (0.3, 1.0, 0.2, 0.2, 0.2)),
    "R": ({"jaw": 0.12, "pucker": 0.3, "funnel": 0.2}, (0.6, 1.0, 0.5, 1.5, 0.5)),
    "W": ({"jaw": 0.08, "pucker": 0.75, "funnel": 0.25}, (0.7, 1.0, 0.8, 4.0, 1.0)),
    "Y": ({"jaw": 0.1, "stretch": 0.3}, (0.6, 1.0, 0.5, 0.5, 1.0)),
    "AA": ({"jaw": 0.6, "lower_down": 0.25}, (1.0, 1.0, 0.6, 0.4, 0.5)),
    "AE": ({"jaw": 0.5, "stretch": 0.3, "lower_down": 0.2, "upper_up": 0.1}, (1.0, 1.0, 0.6, 0.4, 0.6)),
    "AH": ({"jaw": 0.4, "lower_down": 0.15}, (1.0, 1.0, 0.6, 0.4, 0.5)),
    "EH": ({"jaw": 0.35, "stretch": 0.25}, (1.0, 1.0, 0.6, 0.4, 0.6)),
    "ER": ({"jaw": 0.2, "pucker": 0.3, "funnel": 0.25}, (1.0, 1.0, 0.6, 1.0, 0.5)),
    "IY": ({"jaw": 0.12, "stretch": 0.4}, (1.0, 1.0, 0.6, 0.4, 1.0)),
    "IH": ({"jaw": 0.18, "stretch": 0.3}, (1.0, 1.0, 0.6, 0.4, 0.8)),
    "UW": ({"jaw": 0.12, "pucker": 0.8, "funnel": 0.3}, (1.0, 1.0, 0.8, 2.0, 0.6)),
    "UH": ({"jaw": 0.2, "pucker": 0.45, "funnel": 0.35}, (1.0, 1.0, 0.6, 1.5, 0.5)),
    "OW": ({"jaw": 0.35, "funnel": 0.6, "pucker": 0.35}, (1.0, 1.0, 0.6, 1.5, 0.5)),
    "AO": ({"jaw": 0.45, "funnel": 0.5, "pucker": 0.2}, (1.0, 1.0, 0.6, 1.2, 0.5)),
}
_VISEME_OF = {
    "B": "P",
    "M": "P",
    "V": "F",
    "DH": "TH",
    "Z": "S",
    "D": "T",
    "N": "T",
    "L": "T",
    "ZH": "SH",
    "CH": "SH",
    "JH": "SH",
    "G": "K",
    "NG": "K",
    "HH": "K",
}
_DIPHTHONGS = {
    "AY": ("AA", "IY"),
    "AW": ("AA", "UW"),
    "OY": ("AO", "IY"),
    "EY": ("EH", "IY"),
    "OW": ("OW", "UW"),
}
INHALE_SECONDS, MIN_BREATH_PAUSE = 0.5, 0.25  # a breath before a phrase; shorter pauses have none
_THETA_VOWEL, _THETA_CONSONANT, _THETA_CLOSURE, _THETA_ROUND_ANTICIPATION = 14.0, 24.0, 80.0, 10.0  # 1/s


def viseme_of(phone: str) -> str:
    """The viseme class of an ARPAbet phone (a diphthong counts as its first part)."""
    return _VISEME_OF.get(phone, _DIPHTHONGS.get(phone, (phone,))[0])


@dataclass
class Phone:
    phone: str  # ARPAbet, see adamesh.phones
    start: float  # seconds
    end: float
    stress: int = 0  # 1 primary, 2 secondary
    word: int = -1


@dataclass(frozen=True)
class ExpressionStyle:
    """How a speaker's face moves (the corpus draws these per speaker)."""

    articulation: float = 1.0  # 0.6..1.4: scale of all mouth movement
    jaw_lip_balance: float = 0.0  # -1..1: lips do more (<0) or the jaw does more (>0)
    smile: float = 0.0  # -1..1: frown (<0) or smile (>0) held while speaking
    asymmetry: float = 0.0  # -1..1: the character's left (>0) or right side moves more
    brow_raise: float = 0.3  # 0..1: brow raises on stressed syllables
    blink_rate: float = 15.0  # blinks per minute, 6..30
    squint: float = 0.0  # 0..1: eyes narrowed
    inhale: float = 0.15  # 0..0.35: jaw opening when breathing in before a phrase

    RANGES = {
        "articulation": (0.6, 1.4),
        "jaw_lip_balance": (-1, 1),
        "smile": (-1, 1),
        "asymmetry": (-1, 1),
        "brow_raise": (0, 1),
        "blink_rate": (6, 30),
        "squint": (0, 1),
        "inhale": (0.0, 0.35),
    }


@dataclass(frozen=True)
class PoseStyle:
    """How a speaker's head moves, tied to what is said (stress, phrase ends, questions)."""

    posture_pitch: float = 0.0  # resting posture, radians (positive: face down)
    posture_yaw: float = 0.0
    posture_roll: float = 0.0
    nod: float = 0.05  # radians, nod on stressed syllables (the phrase's last stress gets it all)
    boundary_tilt: float = 0.03  # radians, a new head tilt (roll) after each phrase boundary
    boundary_shake: float = 0.02  # radians, a small head shake (yaw) at phrase boundaries
    question_raise: float = 0.05  # radians, chin up at the end of questions
    sway_freq: float = 0.3  # Hz, idle sway
    sway_amp: float = 0.02  # radians
    energy: float = 1.0  # 0.5..1.5, scales all head movement
    # what real heads do besides (drawn after the fields above, so the rest of a corpus stays the same)
    drift: float = 0.03  # radians, slow wandering of the posture (a few seconds per excursion)
    shift: float = 0.04  # radians, a new held posture (pitch, yaw) at some phrase boundaries
    shift_chance: float = 0.4  # of a phrase boundary bringing a posture shift
    stress_shake: float = 0.015  # radians, a small turn of the head on the phrase's main stress

    RANGES = {
        "posture_pitch": (-0.12, 0.12),
        "posture_yaw": (-0.15, 0.15),
        "posture_roll": (-0.1, 0.1),
        "nod": (0.0, 0.12),
        "boundary_tilt": (0.0, 0.08),
        "boundary_shake": (0.0, 0.06),
        "question_raise": (0.0, 0.12),
        "sway_freq": (0.15, 0.6),
        "sway_amp": (0.0, 0.03),  # from none: many people hold their head between movements
        "energy": (0.5, 1.5),
        "drift": (0.0, 0.07),
        "shift": (0.0, 0.08),
        "shift_chance": (0.1, 0.8),
        "stress_shake": (0.0, 0.04),
    }


def draw_style(cls, rng: np.random.Generator):
    """A style with every parameter drawn uniformly from its range."""
    return cls(**{f.name: float(rng.uniform(*cls.RANGES[f.name])) for f in fields(cls)})


def style_vector(style) -> np.ndarray:
    """The style's parameters scaled to 0..1 by their ranges (for style-recovery errors)."""
    return np.array([(getattr(style, k) - lo) / (hi - lo) for k, (lo, hi) in style.RANGES.items()])


def style_dict(style) -> dict:
    return {k: round(v, 5) for k, v in asdict(style).items()}


def _segments(phones: list[Phone]) -> list[tuple[str, float, float, int]]:
    """(viseme, start, end, stress): diphthongs split into their two targets (60 / 40)."""
    out = []
    for p in phones:
        if p.phone in _DIPHTHONGS:
            a, b = _DIPHTHONGS[p.phone]
            mid = p.start + 0.6 * (p.end - p.start)
            out += [(a, p.start, mid, p.stress), (b, mid, p.end, p.stress)]
        else:
            out.append((_VISEME_OF.get(p.phone, p.phone), p.start, p.end, p.stress))
    return out


def articulation(phones: list[Phone], times: np.ndarray, min_hold: float = 0.0) -> dict[str, np.ndarray]:
    """Coarticulated articulatory features (each (T,) in 0..1) at `times` (seconds).

    Lip closures (p/b/m) and lip-to-teeth contacts (f/v) shorter than `min_hold` seconds are held
    that long about their centre, so that at least one frame shows them (a 30 ms /p/ falls between
    the centres of 40 ms frames otherwise).
    """
    segs = _segments(phones)
    for k, (vis, a, b, st) in enumerate(segs):
        if vis in ("P", "F") and b - a < min_hold:
            mid = 0.5 * (a + b)
            segs[k] = (vis, mid - 0.5 * min_hold, mid + 0.5 * min_hold, st)
    n_s, n_f = len(segs), len(FEATURES)
    target = np.zeros((n_s, n_f))
    alpha = np.zeros((n_s, n_f))
    theta = np.zeros((n_s, n_f, 2))  # anticipatory, carry-over
    start = np.array([s[1] for s in segs])[:, None]
    end = np.array([s[2] for s in segs])[:, None]
    groups = ("jaw", "closure", "lips", "round", "spread")
    for i, (vis, _, _, stress) in enumerate(segs):
        tgt, dom = _V[vis]
        vowel = vis in VOWELS
        for j, f in enumerate(FEATURES):
            target[i, j] = tgt.get(f, 0.0)
            alpha[i, j] = dom[groups.index(_GROUP[f])]
            th = _THETA_VOWEL if vowel else _THETA_CONSONANT
            if _GROUP[f] == "closure":  # a closure is sharp: strong inside, gone ~40 ms outside
                th = _THETA_CLOSURE
            theta[i, j] = (_THETA_ROUND_ANTICIPATION if _GROUP[f] == "round" else th, th)
        if vowel:  # stressed vowels open wider, unstressed ones are reduced
            target[i, 0] *= 1.15 if stress == 1 else 1.0 if stress == 2 else 0.8
    before = np.maximum(start - times[None], 0)  # (S, T): time until the segment starts
    after = np.maximum(times[None] - end, 0)  # time since it ended
    out = {}
    for j, f in enumerate(FEATURES):
        d = alpha[:, j, None] * np.exp(-theta[:, j, 0, None] * before - theta[:, j, 1, None] * after)
        d += 1e-12
        out[f] = (d * target[:, j, None]).sum(0) / d.sum(0)
    return out


def inhalation(phones: list[Phone], t: np.ndarray) -> np.ndarray:
    """0..1 at `t`: the mouth opening to breathe in before each phrase, closed again at its first sound.

    The clip's lead silence always has one (cut by the clip's start when the lead is short: the
    breath began before); a pause inside the utterance has one when it lasts MIN_BREATH_PAUSE.
    """
    out = np.zeros_like(t)
    for k in range(len(phones) - 1):
        pause, nxt = phones[k], phones[k + 1]
        if (
            pause.phone != "SIL"
            or nxt.phone == "SIL"
            or (k > 0 and pause.end - pause.start < MIN_BREATH_PAUSE)
        ):
            continue
        width = INHALE_SECONDS if k == 0 else min(INHALE_SECONDS, pause.end - pause.start)
        out = np.maximum(out, _bump(t, nxt.start - 0.5 * width, width) * (t < nxt.start))
    return out


def _bump(t: np.ndarray, center: float, width: float) -> np.ndarray:
    """A smooth 0..1..0 pulse of total duration `width` seconds."""
    x = np.clip((t - center) / width + 0.5, 0, 1)
    return np.sin(math.pi * x) ** 2


def _smoothstep(t: np.ndarray, start: float, duration: float) -> np.ndarray:
    x = np.clip((t - start) / duration, 0, 1)
    return x * x * (3 - 2 * x)


def speech_events(phones: list[Phone]) -> tuple[list[tuple[float, float]], list[float]]:
    """Stressed syllables as (onset time, emphasis), and phrase boundaries (pause midpoints).

    A phrase is speech between pauses; its last primary stress (the nuclear accent) gets emphasis
    1, earlier ones 0.5. These are what the head and brows react to.
    """
    stresses, boundaries, phrase = [], [], []
    for k, p in enumerate(phones):
        if p.phone == "SIL":
            inner = 0 < k < len(phones) - 1
            if phrase:
                stresses += [(t, 0.5) for t in phrase[:-1]] + [(phrase[-1], 1.0)]
                phrase = []
            if inner and p.end - p.start > 0.08:
                boundaries.append(0.5 * (p.start + p.end))
        elif p.phone in VOWELS and p.stress == 1:
            phrase.append(p.start)
    if phrase:
        stresses += [(t, 0.5) for t in phrase[:-1]] + [(phrase[-1], 1.0)]
    return stresses, boundaries


ARTICULATORY_LEAD = 0.04  # seconds by which the mouth's shapes come before their sounds


def animate(
    phones: list[Phone],
    n_frames: int,
    fps: float,
    expression: ExpressionStyle,
    pose: PoseStyle,
    kind: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """(n_frames, 58) ARKit parameters for an utterance; `rng` draws blinks, gaze and sway phases."""
    t = (np.arange(n_frames) + 0.5) / fps
    p = ARKIT.neutral(n_frames)
    ch = ARKIT.index
    ahead = t + ARTICULATORY_LEAD
    a = articulation(phones, ahead, min_hold=1.0 / fps)
    e = expression
    jaw = a["jaw"] * e.articulation * (1 + 0.35 * e.jaw_lip_balance) + e.inhale * inhalation(phones, ahead)
    lip = e.articulation * (1 - 0.35 * e.jaw_lip_balance)
    left, right = 1 + 0.25 * e.asymmetry, 1 - 0.25 * e.asymmetry
    p[:, ch("jawOpen")] = jaw
    p[:, ch("mouthClose")] = a["closure"] * jaw  # lips meet over the open jaw
    p[:, ch("mouthFunnel")] = a["funnel"] * lip
    p[:, ch("mouthPucker")] = a["pucker"] * lip
    p[:, ch("mouthRollLower")] = a["roll_lower"] * lip
    p[:, ch("mouthRollUpper")] = a["roll_upper"] * lip
    for side, k in (("Left", left), ("Right", right)):
        p[:, ch(f"mouthPress{side}")] = a["press"] * lip * k
        p[:, ch(f"mouthUpperUp{side}")] = a["upper_up"] * lip * k
        p[:, ch(f"mouthLowerDown{side}")] = a["lower_down"] * lip * k
        p[:, ch(f"mouthStretch{side}")] = a["stretch"] * lip * k
        # a held smile or frown, relaxed while the lips round
        hold = (1 - 0.7 * np.clip(a["pucker"] + a["funnel"], 0, 1)) * k
        p[:, ch(f"mouthSmile{side}")] = 0.45 * max(e.smile, 0) * hold
        p[:, ch(f"mouthDimple{side}")] = 0.15 * max(e.smile, 0) * hold
        p[:, ch(f"mouthFrown{side}")] = 0.45 * max(-e.smile, 0) * hold
        p[:, ch(f"eyeSquint{side}")] = 0.4 * e.squint
        p[:, ch(f"cheekSquint{side}")] = 0.2 * e.squint + 0.25 * max(e.smile, 0)

    stresses, boundaries = speech_events(phones)
    end = phones[-1].end if phones else t[-1]
    speech_end = max((ph.end for ph in phones if ph.phone != "SIL"), default=end)
    brow = sum((w * _bump(t, s + 0.05, 0.45) for s, w in stresses), np.zeros_like(t))
    if kind == "question":  # yes/no questions: brows up towards the end
        brow = brow + 0.8 * _smoothstep(t, speech_end - 0.6, 0.4)
    p[:, ch("browInnerUp")] = 0.7 * e.brow_raise * brow
    p[:, ch("browOuterUpLeft")] = 0.5 * e.brow_raise * brow * left
    p[:, ch("browOuterUpRight")] = 0.5 * e.brow_raise * brow * right
    _eyes(p, t, fps, e.blink_rate, boundaries, rng)
    _head(p, t, pose, stresses, boundaries, speech_end, kind, rng)
    lo, hi = ARKIT.lower, ARKIT.upper
    return np.clip(p, lo, hi).astype(np.float32)


def _eyes(p: np.ndarray, t: np.ndarray, fps: float, blink_rate: float, boundaries: list[float], rng) -> None:
    ch = ARKIT.index
    duration = len(t) / fps
    blinks = list(rng.uniform(0, duration, rng.poisson(blink_rate / 60 * duration)))
    blinks += [b for b in boundaries if rng.random() < 0.5]  # people blink at phrase breaks
    blink = blink_curve(t, blinks)
    # gaze: fixations of 0.4-2 s, small saccades between them, both eyes together
    gaze = np.zeros((len(t), 2))
    start = 0.0
    while start < duration:
        target = rng.normal(0, 0.12, 2)
        gaze[t >= start] = target
        start += rng.uniform(0.4, 2.0)
    gaze = np.stack([np.convolve(np.pad(g, 1, mode="edge"), np.ones(3) / 3, "valid") for g in gaze.T], 1)
    horiz, vert = gaze[:, 0], gaze[:, 1]
    for side, sign in (("Left", 1), ("Right", -1)):
        p[:, ch(f"eyeBlink{side}")] = blink
        # looking to the character's left: the left eye looks out, the right eye in
        p[:, ch(f"eyeLookOut{side}")] = np.maximum(sign * horiz, 0)
        p[:, ch(f"eyeLookIn{side}")] = np.maximum(-sign * horiz, 0)
        p[:, ch(f"eyeLookUp{side}")] = np.maximum(vert, 0)
        p[:, ch(f"eyeLookDown{side}")] = np.maximum(-vert, 0) + 0.2 * blink


def _slow_noise(t: np.ndarray, seconds: float, rng) -> np.ndarray:
    """(T, 3) smooth random motion of unit standard deviation (low-passed noise, started before
    the clip so that it is already wandering at its first frame), correlated over ~`seconds`."""
    dt = t[1] - t[0] if len(t) > 1 else 0.04
    k = np.exp(-np.arange(int(2 * seconds / dt) + 1) * dt / (0.5 * seconds))
    k /= np.sqrt((k * k).sum())
    x = rng.normal(0, 1, (len(t) + len(k) - 1, 3))
    return np.stack([np.convolve(x[:, i], k, "valid") for i in range(3)], 1)


def _head(
    p: np.ndarray, t: np.ndarray, s: PoseStyle, stresses, boundaries, speech_end: float, kind: str, rng
) -> None:
    ch = ARKIT.index
    nod = sum((w * _bump(t, st + 0.08, 0.5) for st, w in stresses), np.zeros_like(t))
    pitch = s.nod * nod
    if kind in ("question", "wh_question"):
        pitch = pitch - s.question_raise * _smoothstep(t, speech_end - 0.7, 0.6)
    tilt = np.zeros_like(t)  # each phrase gets a new tilt, eased in around the boundary
    level = 0.0
    for b in boundaries:
        new = rng.choice((-1.0, 1.0)) * s.boundary_tilt * rng.uniform(0.5, 1.0)
        tilt += (new - level) * _smoothstep(t, b - 0.2, 0.5)
        level = new
    shake = sum(
        (_bump(t, b, 0.8) * np.sin(2 * math.pi * 2.5 * (t - b)) for b in boundaries), np.zeros_like(t)
    )
    yaw = s.boundary_shake * shake
    phases = rng.uniform(0, 2 * math.pi, 3)
    sway = [
        s.sway_amp * k * np.sin(2 * math.pi * s.sway_freq * f * t + ph)
        for k, f, ph in zip((1.0, 1.3, 0.6), (1.0, 0.77, 1.31), phases)
    ]
    # drawn last, so that the older rules above see the same random numbers as before
    drift = _slow_noise(t, 3.0, rng) * s.drift * np.array([1.0, 1.0, 0.5])
    shift = np.zeros((len(t), 2))
    level = np.zeros(2)
    for b in boundaries:
        if rng.random() < s.shift_chance:
            new = rng.normal(0, s.shift, 2)
            shift += (new - level) * _smoothstep(t, b - 0.15, 0.4)[:, None]
            level = new
    nuclear = [st for st, w in stresses if w == 1.0]
    turn = sum((_bump(t, st + 0.05, 0.6) * rng.choice((-1.0, 1.0)) for st in nuclear), np.zeros_like(t))
    pitch = pitch + drift[:, 0] + shift[:, 0]
    yaw = yaw + drift[:, 1] + shift[:, 1] + s.stress_shake * turn
    tilt = tilt + drift[:, 2]
    pitch, yaw, roll = (s.energy * (x + w) for x, w in zip((pitch, yaw, tilt), sway))
    p[:, ch("headPitch")] = s.posture_pitch + pitch
    p[:, ch("headYaw")] = s.posture_yaw + yaw
    p[:, ch("headRoll")] = s.posture_roll + roll
    # the head moves on the neck: nodding lowers it, tilting shifts it sideways, a lean with the sway
    p[:, ch("headY")] = -0.03 * pitch
    p[:, ch("headX")] = -0.04 * roll
    p[:, ch("headZ")] = 0.2 * sway[0]
