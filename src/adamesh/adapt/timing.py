"""The lip-timing term of adaptation.

Lip timing: a few seconds of reference let an adapter memorise that clip's speech, and on other
speech it then moved the lips at the wrong moments (3 s GRID references, lip sync with other
clips' audio: r 0.54, the base model 0.61; 0.60-0.61 with this term). So every step also feeds a
crop of unrelated speech (a few corpus sentences, `timing_speech`) and penalises
`timing_weight * (1 - r)`, r the correlation of the adapted and the base model's lip gap
(jawOpen - mouthClose) there. r ignores scale and offset: the adapter may change how far and
around which rest the lips move, not when (docs/video.md).
"""

from __future__ import annotations

import numpy as np
import torch

_TIMING_SPEECH: dict = {}


def timing_speech(frontend, clips: int = 8, fps: float = 25.0) -> list[np.ndarray]:
    """Features of `clips` corpus sentences in as many voices (the first sentence of the first
    training speakers): the unrelated speech of the lip-timing term. espeak makes them in a second
    or two; they are kept for the session."""
    key = (frontend.key(), clips, fps)
    if key not in _TIMING_SPEECH:
        from adamesh.data.corpus import CorpusConfig, make_speakers, synthesize_clip

        corpus = CorpusConfig()
        speakers = [(i, s) for i, s in enumerate(make_speakers(corpus)) if s.split == "train"][:clips]
        _TIMING_SPEECH[key] = [frontend(synthesize_clip(s, 0, corpus, i)[0], fps).features for i, s in speakers]
    return _TIMING_SPEECH[key]


def correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = x - x.mean(), y - y.mean()
    return (x * y).sum() / (x.norm() * y.norm() + 1e-6)
