"""The lip-timing term of adaptation.

Lip timing: a few seconds of reference let an adapter memorise that clip's speech, and on other
speech it then moved the lips at the wrong moments (3 s GRID references, lip sync with other
clips' audio: r 0.54, the base model 0.61; 0.60-0.61 with this term). So every step also feeds a
crop of unrelated speech (a few corpus sentences, `timing_speech`) and penalises
`timing_weight * (1 - r)`, r the correlation of the adapted and the base model's lip gap
(jawOpen - mouthClose) there. r ignores scale and offset: the adapter may change how far and
around which rest the lips move, not when (docs/journal.md, Real video).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# Made by `adamesh.data.synthetic.corpus.write_timing_speech`: the first sentence of eight training
# voices of the corpus, shipped so that adaptation needs neither espeak nor the corpus generator.
TIMING_SPEECH = Path(__file__).with_name("timing_speech.npz")
_TIMING_FEATURES: dict = {}


def timing_speech(frontend, clips: int = 8, fps: float = 25.0) -> list[np.ndarray]:
    """Features of `clips` (at most 8) corpus sentences in as many voices: the unrelated speech of
    the lip-timing term, computed once per front-end for the session."""
    key = (frontend.key(), clips, fps)
    if key not in _TIMING_FEATURES:
        with np.load(TIMING_SPEECH, allow_pickle=False) as f:
            speech = [f[f"arr_{i}"] for i in range(min(clips, len(f.files)))]
        _TIMING_FEATURES[key] = [frontend(x, fps).features for x in speech]
    return _TIMING_FEATURES[key]


def correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = x - x.mean(), y - y.mean()
    return (x * y).sum() / (x.norm() * y.norm() + 1e-6)
