"""One training loop for every model of the method, and the model folders it writes.

A model folder holds:
    config.json              kind, model config, training config, space, front-end, data summary
    model.safetensors        the best weights (lowest validation loss)
    last.safetensors         the weights after the last finished epoch
    train_state.pt           both weights, optimiser, schedule, epoch, history, RNG state: what
                             resuming needs, in one file so that a kill at any moment leaves a whole
                             epoch (the two .safetensors are written from it, again on resume)
    frontend.json            the speech front-end (and its fitted units, if any)
    log.txt, loss.png        a text log and the loss curves

Every file is written atomically; an interrupted run resumes from its last finished epoch.
A *task* supplies the model, its batches and its loss (`ExpressionTask` here; the pose models use
the same loop). Under `torchrun` the loop wraps the model in DistributedDataParallel and shards the
batches; rank 0 writes the files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from adamesh.errors import AdameshError
from adamesh.fileio import atomic_output
from adamesh.frontends import save_frontend
from adamesh.models.checkpoint import FORMAT


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
    # the lip-gap term of the expression loss (models.expression.seal_loss); 0: the paper's loss.
    # 1 seals GRID but costs lip sync on other real speakers (docs/journal.md), so it is off.
    seal_weight: float = 0.0
    augment: int = (
        2  # degraded copies of every training clip's audio (data.augment); windows draw one at random
    )

    @classmethod
    def for_preset(cls, preset: str, **overrides) -> "TrainConfig":
        from adamesh.train.presets import preset as settings

        return cls(
            preset=preset,
            **{**settings(preset, "train"), **{k: v for k, v in overrides.items() if v is not None}},
        )


@contextlib.contextmanager
def seeded(seed: int):
    """Torch's global RNG (initial weights, crops, dropout) seeded from `seed` inside the block, and the
    caller's state put back after it: training is reproducible and leaves the caller's RNG alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _loader(dataset, cfg: TrainConfig, shuffle: bool, generator=None):
    sampler = None
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        sampler = torch.utils.data.DistributedSampler(dataset, shuffle=shuffle, seed=cfg.seed)
        shuffle = False
    return torch.utils.data.DataLoader(
        dataset,
        cfg.batch_size,
        shuffle=shuffle,
        sampler=sampler,
        generator=generator,
        drop_last=shuffle and len(dataset) > cfg.batch_size,
    )


def _schedule(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def _save_weights(weights: dict[str, torch.Tensor], path: Path) -> None:
    with atomic_output(path) as tmp:
        save_file(weights, str(tmp), metadata={"format": FORMAT})


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


def train(
    task,
    out: str | os.PathLike,
    cfg: TrainConfig,
    fresh: bool = False,
    progress: bool = True,
    log=print,
    device: str | torch.device = "cpu",
) -> dict:
    """Train `task.model` into the folder `out` on `device`; returns the history. Resumes unless `fresh`."""
    with seeded(cfg.seed):  # a resumed run sets the state it saved
        return _train(task, out, cfg, fresh, progress, log, torch.device(device))


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _train(task, out: Path, cfg: TrainConfig, fresh: bool, progress: bool, log, device: torch.device) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if distributed else 0
    world = torch.distributed.get_world_size() if distributed else 1
    model = task.model.to(device)
    config = {
        "format": FORMAT,
        "kind": task.kind,
        "model": model.config.to_dict(),
        "train": asdict(cfg),
        "frontend": task.frontend.config(),
        "data": task.describe(),
    }
    state_path = out / "train_state.pt"
    optimiser = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    steps_per_epoch = max(1, len(task.train_set) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: _schedule(s, total, cfg.warmup_steps))
    history, start_epoch, best_weights = [], 0, None
    if state_path.is_file() and not fresh:
        saved = json.loads((out / "config.json").read_text())

        def settings(c):  # more epochs extend a finished run; anything else is another run
            return c.get("model"), {
                k: v for k, v in c.get("train", {}).items() if k not in ("epochs", "workers")
            }

        if settings(saved) != settings(config):
            raise AdameshError(
                f"{out} holds a run with a different configuration; use --fresh to "
                "overwrite it or choose another --out"
            )

        def folders(c):
            return [Path(f).resolve() for f in c.get("data", {}).get("folders", [])]

        if folders(saved) != folders(config):
            raise AdameshError(
                f"{out} holds a run on other data ({', '.join(saved.get('data', {}).get('folders', []))}); "
                "its validation losses would not compare: use --fresh or choose another --out"
            )
        try:  # tensors and plain types only: a crafted state file cannot run code
            state = torch.load(state_path, weights_only=True, map_location=device)
            model.load_state_dict(state["model"])
            best_weights = state["best_model"]
            optimiser.load_state_dict(state["optimiser"])
            scheduler.load_state_dict(state["scheduler"])
            history, start_epoch = state["history"], int(state["epoch"])
            torch.set_rng_state(state["torch_rng"].cpu())
        except pickle.UnpicklingError:
            raise AdameshError(
                f"cannot resume from {out}: train_state.pt holds objects other than tensors and "
                "plain values, which are refused (loading them could run code); use --fresh "
                "to start over"
            ) from None
        except (RuntimeError, EOFError, OSError, KeyError, TypeError, ValueError) as e:
            raise AdameshError(
                f"cannot resume from {out} ({type(e).__name__}: {(str(e).splitlines() or [''])[0]}); "
                "use --fresh to start over"
            ) from None
        if rank == 0:  # a kill after the state was saved may have left them an epoch behind
            _save_weights(_weights(model), out / "last.safetensors")
            _save_weights(best_weights, out / "model.safetensors")
        log(f"resuming {out} after epoch {start_epoch}")
    else:
        if rank == 0:
            (out / "log.txt").unlink(missing_ok=True)
    if rank == 0:
        _write_json(out / "config.json", config)
        save_frontend(task.frontend, out)
    if start_epoch >= cfg.epochs:
        log(f"{out} has already finished {cfg.epochs} epochs")
        return {"history": history}
    runner = (
        nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
        if distributed
        else model
    )
    generator = torch.Generator()  # the data order: a function of the seed and the epoch alone (see below)
    train_loader = _loader(task.train_set, cfg, True, generator)
    val_loader = _loader(task.val_set, cfg, False)
    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"{task.kind} model: {n_params / 1e6:.2f} M parameters; {len(task.train_set)} training windows, "
        f"{len(task.val_set)} validation windows; {cfg.epochs} epochs of {steps_per_epoch} steps on {device}"
    )
    if distributed:  # every process says it runs; only rank 0 writes files
        print(f"rank {rank} of {world}: {len(train_loader)} batches an epoch on {device}", flush=True)
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
        bar = tqdm(
            train_loader,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            unit="batch",
            disable=not progress or rank != 0,
            leave=False,
        )
        for batch in bar:
            loss = task.loss(runner, _to(batch, device))
            if not torch.isfinite(loss):
                raise AdameshError(
                    f"the training loss became {loss.item()} at epoch {epoch + 1}; "
                    "lower --lr or check the data"
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimiser.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        val_loss = evaluate_loss(task, model, val_loader, device)
        entry = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)),
            "val_loss": val_loss,
            "lr": scheduler.get_last_lr()[0],
            "seconds": round(time.time() - t0, 1),
        }
        history.append(entry)
        if rank == 0:
            improved = val_loss < best
            best = min(best, val_loss)
            weights = _weights(model)
            if improved:
                best_weights = weights
            with atomic_output(state_path) as tmp:
                torch.save(
                    {
                        "model": weights,
                        "best_model": best_weights,
                        "optimiser": optimiser.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "history": history,
                        "epoch": epoch + 1,
                        "torch_rng": torch.get_rng_state(),
                    },
                    tmp,
                )
            _save_weights(weights, out / "last.safetensors")
            if improved:
                _save_weights(weights, out / "model.safetensors")
            line = (
                f"epoch {epoch + 1:3d}  train {entry['train_loss']:.4f}  val {val_loss:.4f}"
                f"{'  best' if improved else ''}  lr {entry['lr']:.2e}  {entry['seconds']:.0f} s"
            )
            with open(out / "log.txt", "a") as f:
                f.write(line + "\n")
            log(line)
            plot_history(history, out / "loss.png", f"{task.kind} model")
    return {"history": history}


@torch.no_grad()
def evaluate_loss(task, model: nn.Module, loader, device: str | torch.device = "cpu") -> float:
    model.eval()
    total, n = 0.0, 0
    for batch in loader:
        total += task.loss(model, _to(batch, device)).item() * len(batch["mask"])
        n += len(batch["mask"])
    return total / max(n, 1)
