"""One training loop for every model of the method, and the model folders it writes.

A model folder holds:
    config.json              kind, model config, training config, space, front-end, data summary
    model.safetensors        the best weights (lowest validation loss)
    last.safetensors         the weights after the last finished epoch
    train_state.pt           optimiser, schedule, epoch, history, RNG states: what resuming needs
    frontend.json            the speech front-end (and its fitted units, if any)
    log.txt, loss.png        a text log and the loss curves

Every file is written atomically; an interrupted run resumes from its last finished epoch.
A *task* supplies the model, its batches and its loss (`ExpressionTask` here; the pose models use
the same loop). Under `torchrun` the loop wraps the model in DistributedDataParallel and shards the
batches; rank 0 writes the files.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from adamesh.data.dataset import ClipDataset, WindowDataset
from adamesh.errors import AdameshError
from adamesh.fileio import atomic_output
from adamesh.frontends import FrontEnd, load_frontend, make_frontend, save_frontend
from adamesh.models.expression import PRESETS, ExpressionConfig, ExpressionModel, expression_loss
from adamesh.models.pose import PRESETS as POSE_PRESETS
from adamesh.models.pose import PoseAdapter, PoseConfig, PoseGPT, PoseVQVAE, gpt_loss, vq_loss

FORMAT = "adamesh.model"


@dataclass
class TrainConfig:
    preset: str = "default"
    epochs: int = 12  # about 11 minutes on 2 cores on the default corpus
    batch_size: int = 16
    window: int = 100  # frames per training window (4 s at 25 fps)
    hop: int = 50
    reference_frames: int = 200  # style reference crop (8 s) from other clips of the same speaker
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    seed: int = 0
    frontend: str = "whisper"  # best lip sync on real video, and robust to noise (docs/speech.md)
    frontend_options: dict = field(default_factory=dict)  # e.g. model_dir of a hubert front-end
    workers: int | None = None  # feature extraction processes (default: all cores)
    augment: int = 2  # degraded copies of every training clip's audio (data.augment); windows draw one at random
    extra: dict = field(default_factory=dict)

    @classmethod
    def for_preset(cls, preset: str, **overrides) -> "TrainConfig":
        base = {"tiny": dict(epochs=3, batch_size=8, window=50, hop=50, reference_frames=100, warmup_steps=10,
                             augment=0)}
        return cls(preset=preset, **{**base.get(preset, {}), **{k: v for k, v in overrides.items() if v is not None}})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- the expression task


class ExpressionWindows(torch.utils.data.Dataset):
    """Training windows plus a style reference: a crop of the same speaker's other speech."""

    def __init__(self, clips: ClipDataset, space_dims: int, window: int, hop: int, reference_frames: int,
                 fixed: bool = False):
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
        start = (np.random.default_rng(i).integers(0, len(motion) - n + 1) if self.fixed
                 else int(torch.randint(0, len(motion) - n + 1, ())))
        ref = np.zeros((self.reference_frames, self.e), np.float32)
        ref[:n] = motion[start:start + n]
        item["reference"] = torch.from_numpy(ref)
        item["reference_mask"] = torch.arange(self.reference_frames) < n
        return item


class ExpressionTask:
    kind = "expression"

    def __init__(self, data: str | os.PathLike, cfg: TrainConfig, progress: bool = True):
        self.cfg = cfg
        self.frontend = make_frontend(cfg.frontend, **cfg.frontend_options)
        self.train_clips, self.val_clips = _clip_sets(data, cfg, self.frontend, progress)
        space = self.space = self.train_clips.clips[0].motion.space
        seed_everything(cfg.seed)  # the initial weights
        model_cfg = ExpressionConfig(feature_dim=self.frontend.dim, out_dim=space.n_expression,
                                     **PRESETS[cfg.preset])
        self.model = ExpressionModel(model_cfg)
        feats = torch.from_numpy(np.concatenate([c.features.features for c in self.train_clips.clips]))
        params = torch.from_numpy(np.concatenate([c.motion.params[:, : space.n_expression]
                                                  for c in self.train_clips.clips]))
        self.model.set_statistics(feats, params)
        self.train_set = ExpressionWindows(self.train_clips, space.n_expression, cfg.window, cfg.hop,
                                           cfg.reference_frames)
        self.val_set = ExpressionWindows(self.val_clips, space.n_expression, cfg.window, cfg.window,
                                         cfg.reference_frames, fixed=True)

    def loss(self, model: ExpressionModel, batch: dict) -> torch.Tensor:
        core = model.module if hasattr(model, "module") else model
        drop = None
        if model.training and core.config.style_dropout > 0:
            drop = torch.rand(len(batch["params"])) < core.config.style_dropout
        return expression_loss(model, batch["features"], core.normalise(batch["params"]), None, batch["mask"],
                               reference=batch["reference"], reference_mask=batch["reference_mask"],
                               drop_style=drop)

    def describe(self) -> dict:
        return {"folders": [str(r) for r in self.train_clips.roots], "space": self.space.name,
                "train_clips": len(self.train_clips),
                "val_clips": len(self.val_clips), "train_speakers": len(self.train_clips.speakers),
                "train_hours": round(self.train_clips.seconds / 3600, 3)}


# ---------------------------------------------------------------- the pose tasks

# TrainConfig settings of the two pose stages (the preset's own apply on top). The pose adapter
# hears the expression model's front-end, so animation computes it once; phones would make better
# units for its style matrices, but cost half the animation speed (docs/speech.md).
POSE_TRAIN = {
    "pose_vq": dict(epochs=30, batch_size=32, window=64, hop=16, lr=2e-3, warmup_steps=50, frontend="whisper",
                    augment=0),
    "pose_gpt": dict(epochs=30, batch_size=32, lr=1e-3, warmup_steps=50, frontend="whisper", augment=0),
}


POSE_UNITS = 32  # k-means units of front-ends without phones: a 10 s reference covers most of them


def _clip_sets(data, cfg: TrainConfig, frontend: FrontEnd, progress: bool) -> tuple[ClipDataset, ClipDataset]:
    """Training and validation clips of one folder or several (every 20th training clip of a folder
    without a val role validates)."""
    sets = [ClipDataset(data, (role,), frontend=frontend, workers=cfg.workers, progress=progress,
                        augment=cfg.augment if role == "train" else 0, hold_out=20) for role in ("train", "val")]
    return sets[0], sets[1]


def _pose_clip_sets(data, cfg: TrainConfig, frontend: FrontEnd, progress: bool) -> tuple[ClipDataset, ClipDataset]:
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
    return params[..., space.n_expression:]


class PoseVQTask:
    """Stage 1 of the pose adapter: the VQ-VAE over windows of head pose."""

    kind = "pose_vq"

    def __init__(self, data, cfg: TrainConfig, progress: bool = True, **model_overrides):
        self.cfg = cfg
        self.frontend = make_frontend(cfg.frontend, **cfg.frontend_options)
        self.train_clips, self.val_clips = _pose_clip_sets(data, cfg, self.frontend, progress)
        self.space = self.train_clips.clips[0].motion.space
        seed_everything(cfg.seed)
        self.model = PoseVQVAE(pose_config(self.space, self.frontend, self.train_clips, cfg.preset,
                                           **model_overrides))
        self.model.set_statistics(torch.from_numpy(np.concatenate(
            [_head_pose(c.motion.params, self.space) for c in self.train_clips.clips])))
        self.train_set = WindowDataset(self.train_clips, cfg.window, cfg.hop)
        self.val_set = WindowDataset(self.val_clips, cfg.window, cfg.window)

    def loss(self, model, batch: dict) -> torch.Tensor:
        return vq_loss(model, _head_pose(batch["params"], self.space), batch["mask"])

    def describe(self) -> dict:
        return {"folders": [str(r) for r in self.train_clips.roots], "space": self.space.name,
                "train_clips": len(self.train_clips), "val_clips": len(self.val_clips),
                "train_speakers": self.train_clips.speakers}


def pose_config(space, frontend: FrontEnd, clips: ClipDataset, preset: str, **overrides) -> PoseConfig:
    return PoseConfig(pose_dim=space.dim - space.n_expression, feature_dim=frontend.dim,
                      n_styles=len(clips.speakers), **{**POSE_PRESETS[preset], **overrides})


class CodeWindows(torch.utils.data.Dataset):
    """Windows of `length` code steps (hop half of it) over whole clips: codes, speech, speaker."""

    def __init__(self, codes: list[torch.Tensor], speech: list[torch.Tensor], speakers: list[int], length: int):
        self.items = []
        for c, s, spk in zip(codes, speech, speakers):
            n = len(c)
            starts = list(range(0, max(n - length, 0) + 1, max(1, length // 2)))
            if n > length and starts[-1] != n - length:
                starts.append(n - length)
            for a in starts:
                e = min(a + length, n)
                pad = length - (e - a)
                self.items.append({"codes": F.pad(c[a:e], (0, pad)), "speech": F.pad(s[a:e], (0, 0, 0, pad)),
                                   "mask": torch.arange(length) < e - a, "speaker": torch.tensor(spk)})

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
        self.vq = vq.eval()
        seed_everything(cfg.seed)
        self.model = PoseGPT(vq.config)
        self.model.set_statistics(torch.from_numpy(np.concatenate([c.features.features for c in self.train_clips.clips])))
        index = {s: k for k, s in enumerate(self.train_clips.speakers)}
        self.train_set, self.val_set = (self._windows(clips, index) for clips in (self.train_clips, self.val_clips))

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
            drop = torch.rand(len(batch["codes"])) < core.config.style_dropout
        style = core.style_vectors(batch["speaker"], drop)
        return gpt_loss(model, batch["codes"], batch["speech"], style, batch["mask"])

    describe = PoseVQTask.describe


def pose_train_config(kind: str, preset: str = "default", **overrides) -> TrainConfig:
    """The TrainConfig of one pose stage: the stage's settings, the preset's, then `overrides`."""
    tiny = dict(epochs=20, batch_size=16, warmup_steps=10) if preset == "tiny" else {}
    return TrainConfig(preset=preset, **{**POSE_TRAIN[kind], **tiny,
                                         **{k: v for k, v in overrides.items() if v is not None}})


def train_pose(data, out: str | os.PathLike, preset: str = "default", fresh: bool = False, progress: bool = True,
               log=print, **overrides) -> dict:
    """Both pose stages into `out`/vqvae and `out`/gpt (each a model folder of the loop above), then
    the gallery of the training speakers' style matrices into `out`/gallery.safetensors."""
    out = Path(out)
    stages = {}
    for kind in ("pose_vq", "pose_gpt"):
        stage_cfg = pose_train_config(kind, preset, **overrides)
        folder = out / ("vqvae" if kind == "pose_vq" else "gpt")
        task = (PoseVQTask(data, stage_cfg, progress) if kind == "pose_vq"
                else PoseGPTTask(data, stage_cfg, *load_model(out / "vqvae")[:2], progress))
        log(f"pose stage {kind}: {folder}")
        stages[kind] = train(task, folder, stage_cfg, fresh=fresh, progress=progress, log=log)
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
    matrices, counts = zip(*(adapter.style_matrix(
        [_head_pose(c.motion.params, space) for c in clips if c.info.speaker == s],
        [c.features.units for c in clips if c.info.speaker == s]) for s in speakers))
    with atomic_output(out / "gallery.safetensors") as tmp:
        save_file({"matrices": torch.tensor(np.stack(matrices), dtype=torch.float32),
                   "counts": torch.tensor(np.stack(counts), dtype=torch.float32)}, str(tmp),
                  metadata={"videos": json.dumps(list(speakers)), "n_units": str(adapter.n_units)})
    return stages


# ---------------------------------------------------------------- the loop


def _loader(dataset, cfg: TrainConfig, shuffle: bool, generator=None):
    sampler = None
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        sampler = torch.utils.data.DistributedSampler(dataset, shuffle=shuffle, seed=cfg.seed)
        shuffle = False
    return torch.utils.data.DataLoader(dataset, cfg.batch_size, shuffle=shuffle, sampler=sampler,
                                       generator=generator, drop_last=shuffle and len(dataset) > cfg.batch_size)


def _schedule(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def _save_weights(model: nn.Module, path: Path) -> None:
    with atomic_output(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp),
                  metadata={"format": FORMAT})


def _write_json(path: Path, obj) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1))


def plot_history(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    best = min(history, key=lambda h: h["val_loss"])
    ax.axvline(best["epoch"], color="grey", ls=":", label=f"best (epoch {best['epoch']})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def train(task, out: str | os.PathLike, cfg: TrainConfig, fresh: bool = False, progress: bool = True,
          log=print) -> dict:
    """Train `task.model` into the folder `out`; returns the history. Resumes unless `fresh`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if distributed else 0
    model = task.model
    config = {"format": FORMAT, "kind": task.kind, "model": model.config.to_dict(), "train": asdict(cfg),
              "frontend": task.frontend.config(), "data": task.describe()}
    state_path = out / "train_state.pt"
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, len(task.train_set) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: _schedule(s, total, cfg.warmup_steps))
    history, start_epoch = [], 0
    if state_path.is_file() and not fresh:
        saved = json.loads((out / "config.json").read_text())
        def settings(c):  # more epochs extend a finished run; anything else is another run
            return c.get("model"), {k: v for k, v in c.get("train", {}).items() if k not in ("epochs", "workers")}

        if settings(saved) != settings(config):
            raise AdameshError(f"{out} holds a run with a different configuration; use --fresh to "
                               "overwrite it or choose another --out")
        def folders(c):
            return [Path(f).resolve() for f in c.get("data", {}).get("folders", [])]

        if folders(saved) != folders(config):
            raise AdameshError(f"{out} holds a run on other data ({', '.join(saved.get('data', {}).get('folders', []))}); "
                               "its validation losses would not compare: use --fresh or choose another --out")
        try:  # tensors and plain types only: a crafted state file cannot run code
            state = torch.load(state_path, weights_only=True)
            model.load_state_dict(load_file(str(out / "last.safetensors")))
            optimiser.load_state_dict(state["optimiser"])
            scheduler.load_state_dict(state["scheduler"])
            history, start_epoch = state["history"], int(state["epoch"])
            torch.set_rng_state(state["torch_rng"])
        except pickle.UnpicklingError:
            raise AdameshError(f"cannot resume from {out}: train_state.pt holds objects other than tensors and "
                               "plain values, which are refused (loading them could run code); use --fresh "
                               "to start over") from None
        except (RuntimeError, EOFError, OSError, KeyError, TypeError, ValueError, SafetensorError) as e:
            raise AdameshError(f"cannot resume from {out} ({type(e).__name__}: {(str(e).splitlines() or [''])[0]}); "
                               "use --fresh to start over") from None
        log(f"resuming {out} after epoch {start_epoch}")
    else:
        seed_everything(cfg.seed)
        if rank == 0:
            (out / "log.txt").unlink(missing_ok=True)
    if rank == 0:
        _write_json(out / "config.json", config)
        save_frontend(task.frontend, out)
    if start_epoch >= cfg.epochs:
        log(f"{out} has already finished {cfg.epochs} epochs")
        return {"history": history}
    runner = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if distributed else model
    generator = torch.Generator()  # the data order: a function of the seed and the epoch alone (see below)
    train_loader = _loader(task.train_set, cfg, True, generator)
    val_loader = _loader(task.val_set, cfg, False)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{task.kind} model: {n_params / 1e6:.2f} M parameters; {len(task.train_set)} training windows, "
        f"{len(task.val_set)} validation windows; {cfg.epochs} epochs of {steps_per_epoch} steps")
    best = min((h["val_loss"] for h in history), default=float("inf"))
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        # Re-seeded every epoch, so a run resumed at any epoch sees the data in the order an
        # uninterrupted one does (the global RNG, for crops and dropout, is restored from the state).
        generator.manual_seed(cfg.seed * 1_000_003 + epoch)
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        runner.train()
        losses = []
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not progress or rank != 0, leave=False)
        for batch in bar:
            loss = task.loss(runner, batch)
            if not torch.isfinite(loss):
                raise AdameshError(f"the training loss became {loss.item()} at epoch {epoch + 1}; "
                                   "lower --lr or check the data")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimiser.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        val_loss = evaluate_loss(task, model, val_loader)
        entry = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                 "lr": scheduler.get_last_lr()[0], "seconds": round(time.time() - t0, 1)}
        history.append(entry)
        if rank == 0:
            improved = val_loss < best
            best = min(best, val_loss)
            _save_weights(model, out / "last.safetensors")
            if improved:
                _save_weights(model, out / "model.safetensors")
            with atomic_output(state_path) as tmp:
                torch.save({"optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
                            "history": history, "epoch": epoch + 1, "torch_rng": torch.get_rng_state()}, tmp)
            line = (f"epoch {epoch + 1:3d}  train {entry['train_loss']:.4f}  val {val_loss:.4f}"
                    f"{'  best' if improved else ''}  lr {entry['lr']:.2e}  {entry['seconds']:.0f} s")
            with open(out / "log.txt", "a") as f:
                f.write(line + "\n")
            log(line)
            plot_history(history, out / "loss.png", f"{task.kind} model")
    return {"history": history}


@torch.no_grad()
def evaluate_loss(task, model: nn.Module, loader) -> float:
    model.eval()
    total, n = 0.0, 0
    for batch in loader:
        total += task.loss(model, batch).item() * len(batch["mask"])
        n += len(batch["mask"])
    return total / max(n, 1)


# ---------------------------------------------------------------- loading


MODELS = {"expression": (ExpressionModel, ExpressionConfig), "pose_vq": (PoseVQVAE, PoseConfig),
          "pose_gpt": (PoseGPT, PoseConfig)}


def load_model(folder: str | os.PathLike, which: str = "model", kind: str | None = None
               ) -> tuple[nn.Module, FrontEnd, dict]:
    """A trained model folder -> (model in eval mode, its front-end, its config.json)."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise AdameshError(f"{folder} is not a model folder (config.json: {e}); train one with "
                           "`adamesh train expression` or `adamesh train pose`") from None
    if config.get("format") != FORMAT or config.get("kind") not in MODELS or kind and config["kind"] != kind:
        raise AdameshError(f"{folder} does not hold {'an ' + kind if kind else 'a'} model of adamesh")
    cls, config_cls = MODELS[config["kind"]]
    model = cls(config_cls(**config["model"]))
    weights = folder / f"{which}.safetensors"
    try:
        model.load_state_dict(load_file(str(weights)))
    except (OSError, RuntimeError, SafetensorError) as e:
        raise AdameshError(f"cannot load {weights}: {e}") from None
    model.eval()
    return model, load_frontend(folder), config


def load_pose_model(folder: str | os.PathLike) -> tuple[PoseAdapter, FrontEnd]:
    """A folder written by `train_pose` -> (pose adapter, its front-end)."""
    folder = Path(folder)
    vq, frontend, _ = load_model(folder / "vqvae", kind="pose_vq")
    gpt = load_model(folder / "gpt", kind="pose_gpt")[0]
    try:
        from safetensors import safe_open

        with safe_open(str(folder / "gallery.safetensors"), "pt") as f:
            meta = f.metadata()
        gallery = load_file(str(folder / "gallery.safetensors"))
    except (OSError, SafetensorError) as e:
        raise AdameshError(f"{folder} has no readable gallery.safetensors ({e}); train it with "
                           "`adamesh train pose`") from None
    return PoseAdapter(vq, gpt, gallery["matrices"].numpy(), gallery["counts"].numpy(), json.loads(meta["videos"]),
                       int(meta["n_units"])), frontend
