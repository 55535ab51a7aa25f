"""The training tasks of the method: each supplies a model, its batches and its loss to `train.loop`.

`ExpressionTask`: the expression network on windows of speech features and ARKit (or FLAME)
parameters, with a style reference from another clip of the same speaker. `PoseVQTask` and
`PoseGPTTask`: the pose VQ-VAE, then PoseGPT on its codes (`train_pose` runs both and writes the
style gallery)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch.nn import functional as F

from adamesh.data.dataset import ClipDataset, WindowDataset
from adamesh.fileio import atomic_output
from adamesh.frontends import FrontEnd, make_frontend
from adamesh.models.checkpoint import load_model
from adamesh.models.expression import ExpressionConfig, ExpressionModel, output_loss, seal_loss
from adamesh.models.pose import PoseAdapter, PoseConfig, PoseGPT, PoseVQVAE, gpt_loss, vq_loss
from adamesh.motion import CLOSURE_FRACTION, JAW_OPEN, MOUTH_CLOSE
from adamesh.train.loop import TrainConfig, seeded, train
from adamesh.train.presets import preset as preset_settings


class ExpressionWindows(torch.utils.data.Dataset):
    """Training windows plus a style reference: a crop of the same speaker's other speech."""

    def __init__(
        self,
        clips: ClipDataset,
        space_dims: int,
        window: int,
        hop: int,
        reference_frames: int,
        fixed: bool = False,
    ):
        self.windows = WindowDataset(clips, window, hop)
        self.e, self.reference_frames, self.fixed = space_dims, reference_frames, fixed
        by_speaker: dict[str, list[np.ndarray]] = {}
        for c in clips.clips:
            by_speaker.setdefault(c.info.speaker, []).append(c.motion.params[:, :space_dims])
        self.speaker_motion = [np.concatenate(by_speaker[s]) for s in clips.speakers]

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, i):
        k = self.windows.index[i][0]
        n_variants = 0 if self.fixed else len(self.windows.clips[k].variants)
        item = self.windows.__getitem__(i, int(torch.randint(0, n_variants + 1, ())) if n_variants else 0)
        item["params"] = item["params"][:, : self.e]
        motion = self.speaker_motion[int(item["speaker"])]
        n = min(self.reference_frames, len(motion))
        start = (
            np.random.default_rng(i).integers(0, len(motion) - n + 1)
            if self.fixed
            else int(torch.randint(0, len(motion) - n + 1, ()))
        )
        ref = np.zeros((self.reference_frames, self.e), np.float32)
        ref[:n] = motion[start : start + n]
        item["reference"] = torch.from_numpy(ref)
        item["reference_mask"] = torch.arange(self.reference_frames) < n
        return item


def _lip_gap(params: torch.Tensor) -> torch.Tensor:
    return params[..., JAW_OPEN] - params[..., MOUTH_CLOSE]


class ExpressionTask:
    kind = "expression"

    def __init__(self, data: str | os.PathLike, cfg: TrainConfig, progress: bool = True):
        self.cfg = cfg
        self.frontend = make_frontend(cfg.frontend, **cfg.frontend_options)
        self.train_clips, self.val_clips = _clip_sets(data, cfg, self.frontend, progress)
        space = self.space = self.train_clips.clips[0].motion.space
        model_cfg = ExpressionConfig(
            feature_dim=self.frontend.dim,
            out_dim=space.n_expression,
            **preset_settings(cfg.preset, "expression"),
        )
        with seeded(cfg.seed):  # the initial weights
            self.model = ExpressionModel(model_cfg)
        feats = torch.from_numpy(np.concatenate([c.features.features for c in self.train_clips.clips]))
        params = torch.from_numpy(
            np.concatenate([c.motion.params[:, : space.n_expression] for c in self.train_clips.clips])
        )
        self.model.set_statistics(feats, params)
        self.train_set = ExpressionWindows(
            self.train_clips, space.n_expression, cfg.window, cfg.hop, cfg.reference_frames
        )
        self.val_set = ExpressionWindows(
            self.val_clips, space.n_expression, cfg.window, cfg.window, cfg.reference_frames, fixed=True
        )

    def loss(self, model: ExpressionModel, batch: dict) -> torch.Tensor:
        core = model.module if hasattr(model, "module") else model
        drop = None
        if model.training and core.config.style_dropout > 0:
            drop = (torch.rand(len(batch["params"])) < core.config.style_dropout).to(batch["params"].device)
        params, mask = batch["params"], batch["mask"]
        head, post = model(
            batch["features"],
            None,
            mask=mask,
            reference=batch["reference"],
            reference_mask=batch["reference_mask"],
            drop_style=drop,
        )
        loss = output_loss(head, post, core.normalise(params), mask)
        if self.cfg.seal_weight and self.space.name == "arkit":
            target = _lip_gap(params)
            for out in (head, post):
                loss = loss + self.cfg.seal_weight * seal_loss(
                    _lip_gap(core.denormalise(out)), target, mask, CLOSURE_FRACTION
                )
        return loss

    def describe(self) -> dict:
        return {
            "folders": [str(r) for r in self.train_clips.roots],
            "space": self.space.name,
            "train_clips": len(self.train_clips),
            "val_clips": len(self.val_clips),
            "train_speakers": len(self.train_clips.speakers),
            "train_hours": round(self.train_clips.seconds / 3600, 3),
        }


# TrainConfig settings of the two pose stages (the preset's own apply on top). The pose adapter
# hears the expression model's front-end, so animation computes it once; phones would make better
# units for its style matrices, but cost half the animation speed (docs/speech.md).
POSE_TRAIN = {
    "pose_vq": dict(
        epochs=30, batch_size=32, window=64, hop=16, lr=2e-3, warmup_steps=50, frontend="whisper", augment=0
    ),
    "pose_gpt": dict(epochs=30, batch_size=32, lr=1e-3, warmup_steps=50, frontend="whisper", augment=0),
}


POSE_UNITS = 32  # k-means units of front-ends without phones: a 10 s reference covers most of them


def _clip_sets(data, cfg: TrainConfig, frontend: FrontEnd, progress: bool) -> tuple[ClipDataset, ClipDataset]:
    """Training and validation clips of one folder or several (every 20th training clip of a folder
    without a val role validates)."""
    sets = [
        ClipDataset(
            data,
            (role,),
            frontend=frontend,
            workers=cfg.workers,
            progress=progress,
            augment=cfg.augment if role == "train" else 0,
            hold_out=20,
        )
        for role in ("train", "val")
    ]
    return sets[0], sets[1]


def _pose_clip_sets(
    data, cfg: TrainConfig, frontend: FrontEnd, progress: bool
) -> tuple[ClipDataset, ClipDataset]:
    """`_clip_sets` with speech units: a front-end without units of its own (mel, hubert, wav2vec2)
    gets k-means units fitted on the training clips here; the pose style matrix needs them, and
    they are saved with the model."""
    train_clips, val_clips = _clip_sets(data, cfg, frontend, progress)
    if frontend.n_units == 0:
        frontend.fit_units([c.features for c in train_clips.clips], POSE_UNITS, cfg.seed)
    for c in train_clips.clips + val_clips.clips:
        c.features = frontend.with_units(c.features)
    return train_clips, val_clips


def _head_pose(params: np.ndarray | torch.Tensor, space):
    return params[..., space.n_expression :]


def _centre_head_poses(clips: ClipDataset) -> None:
    """Each clip's head pose about its own mean: the pose prior models motion, the posture is given."""
    for c in clips.clips:
        e = c.motion.space.n_expression
        c.motion.params[:, e:] -= c.motion.params[:, e:].mean(0)


# Mirroring a head left-right negates yaw and roll (pitch/yaw/roll, or axis-angle x/y/z) and the
# sideways translation. Real heads turn several times more than the synthetic ones, a tracker's
# head translation (its depth above all) varies more still, and a long take wanders off its
# mean: the VQ-VAE learns motion of either side, of every size and about any offset it may meet.
MIRROR = (1.0, -1.0, -1.0, -1.0, 1.0, 1.0)
ROTATION_SCALE = (0.5, 4.0)
TRANSLATION_SCALE = (0.5, 8.0)
OFFSET = 1.0  # standard deviation of a window's random offset, in units of the scaled motion's


def augment_head_motion(pose: torch.Tensor, mask: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(B, T, P) windows of head motion about the resting pose (zero) scaled by random factors
    (log-uniform, one for the rotation and one for the translation), mirrored half the time, and
    moved by a random offset of about OFFSET of their own scale (`std`, the training motion's)."""
    b, _, p = pose.shape

    def log_uniform(lo, hi):
        return torch.exp(np.log(lo) + (np.log(hi) - np.log(lo)) * torch.rand(b, 1, 1))

    scale = torch.cat(
        [
            log_uniform(*ROTATION_SCALE).expand(-1, -1, min(p, 3)),
            log_uniform(*TRANSLATION_SCALE).expand(-1, -1, p - min(p, 3)),
        ],
        -1,
    )
    mirror = torch.tensor(MIRROR[:p], dtype=pose.dtype)
    sign = torch.where(torch.rand(b, 1, 1) < 0.5, mirror, torch.ones(p))
    offset = OFFSET * torch.randn(b, 1, p) * scale * std
    return torch.where(mask[..., None], pose * scale * sign + offset, pose)


class PoseVQTask:
    """Stage 1 of the pose adapter: the VQ-VAE over windows of head pose."""

    kind = "pose_vq"

    def __init__(self, data, cfg: TrainConfig, progress: bool = True, **model_overrides):
        self.cfg = cfg
        self.frontend = make_frontend(cfg.frontend, **cfg.frontend_options)
        self.train_clips, self.val_clips = _pose_clip_sets(data, cfg, self.frontend, progress)
        self.space = self.train_clips.clips[0].motion.space
        for clips in (self.train_clips, self.val_clips):
            _centre_head_poses(clips)
        with seeded(cfg.seed):
            self.model = PoseVQVAE(
                pose_config(self.space, self.frontend, self.train_clips, cfg.preset, **model_overrides)
            )
        self.model.set_statistics(
            torch.from_numpy(
                np.concatenate([_head_pose(c.motion.params, self.space) for c in self.train_clips.clips])
            )
        )
        self.train_set = WindowDataset(self.train_clips, cfg.window, cfg.hop)
        self.val_set = WindowDataset(self.val_clips, cfg.window, cfg.window)

    def loss(self, model, batch: dict) -> torch.Tensor:
        pose = _head_pose(batch["params"], self.space)
        if model.training:
            core = model.module if hasattr(model, "module") else model
            pose = augment_head_motion(pose, batch["mask"], core.pose_std)
        return vq_loss(model, pose, batch["mask"])

    def describe(self) -> dict:
        return {
            "folders": [str(r) for r in self.train_clips.roots],
            "space": self.space.name,
            "train_clips": len(self.train_clips),
            "val_clips": len(self.val_clips),
            "train_speakers": self.train_clips.speakers,
        }


def pose_config(space, frontend: FrontEnd, clips: ClipDataset, preset: str, **overrides) -> PoseConfig:
    return PoseConfig(
        pose_dim=space.dim - space.n_expression,
        feature_dim=frontend.dim,
        n_styles=len(clips.speakers),
        **{**preset_settings(preset, "pose"), **overrides},
    )


class CodeWindows(torch.utils.data.Dataset):
    """Windows of `length` code steps (hop half of it) over whole clips: codes (length, Q), speech,
    speaker."""

    def __init__(
        self, codes: list[torch.Tensor], speech: list[torch.Tensor], speakers: list[int], length: int
    ):
        self.items = []
        for c, s, spk in zip(codes, speech, speakers):
            n = len(c)
            starts = list(range(0, max(n - length, 0) + 1, max(1, length // 2)))
            if n > length and starts[-1] != n - length:
                starts.append(n - length)
            for a in starts:
                e = min(a + length, n)
                pad = length - (e - a)
                self.items.append(
                    {
                        "codes": F.pad(c[a:e], (0, 0, 0, pad)),
                        "speech": F.pad(s[a:e], (0, 0, 0, pad)),
                        "mask": torch.arange(length) < e - a,
                        "speaker": torch.tensor(spk),
                    }
                )

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class PoseGPTTask:
    """Stage 2: PoseGPT on the codes of the trained VQ-VAE (frozen), one style per training speaker."""

    kind = "pose_gpt"

    def __init__(self, data, cfg: TrainConfig, vq: PoseVQVAE, frontend: FrontEnd, progress: bool = True):
        self.cfg = cfg
        self.frontend = frontend  # the VQ stage's, with its units
        self.train_clips, self.val_clips = _pose_clip_sets(data, cfg, self.frontend, progress)
        self.space = self.train_clips.clips[0].motion.space
        for clips in (self.train_clips, self.val_clips):
            _centre_head_poses(clips)
        self.vq = vq.eval()
        with seeded(cfg.seed):
            self.model = PoseGPT(vq.config)
        self.model.set_statistics(
            torch.from_numpy(np.concatenate([c.features.features for c in self.train_clips.clips]))
        )
        index = {s: k for k, s in enumerate(self.train_clips.speakers)}
        self.train_set, self.val_set = (
            self._windows(clips, index) for clips in (self.train_clips, self.val_clips)
        )

    @torch.no_grad()
    def _windows(self, clips: ClipDataset, index: dict) -> CodeWindows:
        codes, speech, speakers = [], [], []
        for c in clips.clips:
            pose = torch.from_numpy(_head_pose(c.motion.params, self.space))[None]
            codes.append(self.vq.quantize(self.vq.encode(pose))[1][0])
            speech.append(self.model.speech(torch.from_numpy(c.features.features)[None])[0])
            speakers.append(index[c.info.speaker])
        return CodeWindows(codes, speech, speakers, self.model.config.context)

    def loss(self, model, batch: dict) -> torch.Tensor:
        core = model.module if hasattr(model, "module") else model
        drop = None
        if model.training and core.config.style_dropout > 0:
            drop = (torch.rand(len(batch["codes"])) < core.config.style_dropout).to(batch["codes"].device)
        style = core.style_vectors(batch["speaker"], drop)
        return gpt_loss(model, batch["codes"], batch["speech"], style, batch["mask"])

    describe = PoseVQTask.describe


def pose_train_config(kind: str, preset: str = "default", **overrides) -> TrainConfig:
    """The TrainConfig of one pose stage: the stage's settings, the preset's, then `overrides`."""
    return TrainConfig(
        preset=preset,
        **{
            **POSE_TRAIN[kind],
            **preset_settings(preset, "pose_train"),
            **{k: v for k, v in overrides.items() if v is not None},
        },
    )


def train_pose(
    data,
    out: str | os.PathLike,
    preset: str = "default",
    fresh: bool = False,
    progress: bool = True,
    log=print,
    device: str | torch.device = "cpu",
    **overrides,
) -> dict:
    """Both pose stages into `out`/vqvae and `out`/gpt (each a model folder of the loop above), then
    the gallery of the training speakers' style matrices into `out`/gallery.safetensors."""
    out = Path(out)
    stages = {}
    for kind in ("pose_vq", "pose_gpt"):
        stage_cfg = pose_train_config(kind, preset, **overrides)
        folder = out / ("vqvae" if kind == "pose_vq" else "gpt")
        task = (
            PoseVQTask(data, stage_cfg, progress)
            if kind == "pose_vq"
            else PoseGPTTask(data, stage_cfg, *load_model(out / "vqvae")[:2], progress)
        )
        log(f"pose stage {kind}: {folder}")
        stages[kind] = train(task, folder, stage_cfg, fresh=fresh, progress=progress, log=log, device=device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # rank 0 has written the stage's weights
            if torch.distributed.get_rank() != 0 and kind == "pose_gpt":
                return stages
    vq, frontend = task.vq, task.frontend  # the GPT stage's: the VQ-VAE's best weights and units
    gpt = load_model(out / "gpt")[0]  # its best epoch
    clips = task.train_clips.clips + task.val_clips.clips
    space = task.space
    adapter = PoseAdapter(vq, gpt, np.zeros(0), np.zeros(0), [], frontend.n_units)
    speakers = task.train_clips.speakers  # the order of PoseGPT's style table
    matrices, counts = zip(
        *(
            adapter.style_matrix(
                [_head_pose(c.motion.params, space) for c in clips if c.info.speaker == s],
                [c.features.units for c in clips if c.info.speaker == s],
            )
            for s in speakers
        )
    )
    with atomic_output(out / "gallery.safetensors") as tmp:
        save_file(
            {
                "matrices": torch.tensor(np.stack(matrices), dtype=torch.float32),
                "counts": torch.tensor(np.stack(counts), dtype=torch.float32),
            },
            str(tmp),
            metadata={"videos": json.dumps(list(speakers)), "n_units": str(adapter.n_units)},
        )
    return stages
