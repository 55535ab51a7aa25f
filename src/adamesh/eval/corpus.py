"""`adamesh bench corpus`: statistics of a synthetic corpus."""

from __future__ import annotations

import numpy as np

from adamesh.data.dataset import ClipDataset
from adamesh.data.synthetic.animation import ExpressionStyle, Phone, PoseStyle, animate
from adamesh.motion import ARKIT


def bench_corpus(corpus: str) -> dict:
    """How much the speaker styles matter in a corpus: mouth and brow error of a speaker-agnostic
    oracle (the true phones, animated with the mean style) against each held-out speaker's truth.

    The oracle knows everything but the speaker, so its error is what ignoring the speaker costs at
    best; the model of issue 4 has to recover it from a 10 s reference.
    """
    test = ClipDataset(corpus, roles=("test",), progress=False)
    mean_expr = ExpressionStyle(**{k: (lo + hi) / 2 for k, (lo, hi) in ExpressionStyle.RANGES.items()})
    mean_pose = PoseStyle(**{k: (lo + hi) / 2 for k, (lo, hi) in PoseStyle.RANGES.items()})
    mouth = [i for i, c in enumerate(ARKIT.channels) if c.startswith(("jaw", "mouth", "brow", "cheek"))]
    err, spread = [], []
    for clip in test.clips:
        phones = [Phone(*p) for p in clip.motion.meta["phones"]]
        oracle = animate(
            phones,
            clip.motion.n_frames,
            clip.motion.fps,
            mean_expr,
            mean_pose,
            clip.motion.meta["kind"],
            np.random.default_rng(0),
        )
        truth = clip.motion.params
        err.append(np.sqrt(((oracle[:, mouth] - truth[:, mouth]) ** 2).mean()))
        spread.append(truth[:, mouth].std(0).mean())
    print(f"corpus {corpus}: {len(test.speakers)} held-out speakers, {len(test)} test clips")
    print(
        f"  mouth, jaw, brow and cheek weights: RMSE of the speaker-agnostic oracle {np.mean(err):.4f} "
        f"(per clip {np.min(err):.4f}-{np.max(err):.4f}); the speaker-aware oracle scores 0; "
        f"mean per-channel std over time {np.mean(spread):.4f}"
    )
    return {"oracle_rmse": float(np.mean(err)), "channel_std": float(np.mean(spread))}


# ---------------------------------------------------------------- expression adapter
