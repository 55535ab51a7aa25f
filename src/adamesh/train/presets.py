"""Every preset in one table. `default` is what the shipped model uses; `tiny` trains in minutes,
for tests and smoke runs of the benchmarks. Each part overrides its config's own defaults:
`expression` the ExpressionConfig, `pose` the PoseConfig (both networks), `train` the TrainConfig
of the expression model, `pose_train` that of both pose stages (on top of `tasks.POSE_TRAIN`),
`corpus` the CorpusConfig of the corpus a benchmark generates when it is given none."""

from __future__ import annotations

from adamesh.errors import AdameshError

PRESETS = {
    "default": dict(expression={}, pose={}, train={}, pose_train={}, corpus={}),
    "tiny": dict(
        expression=dict(
            d_model=32,
            heads=2,
            ff=64,
            kernel=7,
            audio_layers=1,
            style_layers=1,
            decoder_layers=1,
            postnet_channels=32,
        ),
        pose=dict(
            hidden=32,
            code_dim=16,
            codebook_size=32,
            quantizers=2,
            d_model=48,
            heads=2,
            layers=2,
            ff=96,
            style_dim=16,
        ),
        train=dict(
            epochs=3, batch_size=8, window=50, hop=50, reference_frames=100, warmup_steps=10, augment=0
        ),
        pose_train=dict(epochs=20, batch_size=16, warmup_steps=10),
        corpus=dict(speakers=8, sentences=14, heldout=2),
    ),
}


def preset(name: str, part: str) -> dict:
    """The settings of one part ('expression', 'pose', 'train', 'pose_train', 'corpus') of a preset."""
    if name not in PRESETS:
        raise AdameshError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[name][part])
