"""`adamesh bench pose`: pose-style retrieval on held-out synthetic speakers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from adamesh.adapt.pose import retrieve_pose_style
from adamesh.api import WEIGHTS
from adamesh.audio import load_audio
from adamesh.data.dataset import ClipDataset
from adamesh.data.synthetic.animation import PoseStyle, style_vector
from adamesh.data.synthetic.corpus import CorpusConfig, generate_corpus
from adamesh.errors import AdameshError
from adamesh.eval.metrics import (
    StyleProbe,
    axis_std,
    beat_alignment,
    frechet_distance,
    motion_statistics,
    pearson,
    pose_diversity,
    pose_features,
    speech_onsets,
)
from adamesh.eval.people import find_speakers, load_clip, tracked_clip
from adamesh.fileio import atomic_output
from adamesh.models.checkpoint import load_model, load_pose_model
from adamesh.models.pose import codebook_usage
from adamesh.motion import ARKIT, Motion
from adamesh.render import render_motion
from adamesh.rigs import load_rig
from adamesh.train.loop import train
from adamesh.train.presets import preset as preset_settings
from adamesh.train.tasks import PoseVQTask, pose_train_config, train_pose

POSE_METHODS = (
    "ground truth",
    "generic",
    "random style",
    "mean style",
    "top-1",
    "blend",
    "blend + posture",
    "blend + posture + amplitude",
)


def _reference_clips(clips, seconds: float, fps: float):
    """Head poses, units and speech features of a speaker's reference clips, cut to the first
    `seconds` in all."""
    poses, units, features, left = [], [], [], int(round(seconds * fps))
    for c in clips:
        if left <= 0:
            break
        n = min(left, c.motion.n_frames)
        poses.append(c.motion.params[:n, c.motion.space.n_expression :])
        units.append(c.features.units[:n])
        features.append(c.features.features[:n])
        left -= n
    return poses, units, features


def bench_pose(
    data: str | None = None,
    model: str | None = None,
    preset: str = "tiny",
    out: str = "out/bench_pose",
    reference_seconds: float = 10.0,
    max_speakers: int | None = None,
    codebook_sizes=(),
    workers: int | None = None,
    seed: int = 0,
    renders: int = 2,
    k: int = 3,
    log=print,
) -> dict:
    """The pose comparison of issue 5 on held-out speakers: PoseGPT driven by each test clip's
    speech in the generic style, a random training style, the mean style, the top-1 retrieved
    style and the blend of the top-k; plus VQ-VAE reconstruction for each of `codebook_sizes`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if data is None:
        data = out / "corpus"
        generate_corpus(data, CorpusConfig(**preset_settings(preset, "corpus")), workers)
    if model is None:
        model = out / "model"
        if not (model / "gallery.safetensors").is_file():
            train_pose(data, model, preset, progress=False, workers=workers, log=log)
    adapter, frontend = load_pose_model(model)
    held = ClipDataset(data, ("reference", "test"), frontend=frontend, workers=workers, progress=False)
    space = held.clips[0].motion.space
    e, fps = space.n_expression, held.clips[0].motion.fps
    rot = slice(space.rotation[0] - e, space.rotation[1] - e)
    training = ClipDataset(data, ("train", "val"), progress=False)
    # the gallery's synthetic speakers, whose true styles the corpus knows (a model may also have
    # trained on tracked real video, which has none)
    known = [s for s in adapter.videos if "pose_style" in training.speaker_style(s)]
    gallery_style = {s: style_vector(PoseStyle(**training.speaker_style(s)["pose_style"])) for s in known}
    by_speaker: dict[str, list[np.ndarray]] = {}
    for c in training.clips:
        by_speaker.setdefault(c.info.speaker, []).append(c.motion.params[:, e:])
    probe = StyleProbe(
        np.stack([motion_statistics(np.concatenate(by_speaker[s])) for s in known]),
        np.stack([gallery_style[s] for s in known]),
    )
    table = np.stack([adapter.gpt.styles.weight.detach()[i] for i in range(len(adapter.videos))])
    rng = np.random.default_rng(seed)
    speakers = held.speakers[:max_speakers] if max_speakers else held.speakers
    true_style = {s: style_vector(PoseStyle(**held.speaker_style(s)["pose_style"])) for s in speakers}
    poses: dict[str, dict[str, list[np.ndarray]]] = {m: {} for m in POSE_METHODS}
    onsets: dict[str, list[np.ndarray]] = {}
    agreement, examples = [], {}
    for si, spk in enumerate(speakers):
        refs = [c for c in held.clips if c.info.speaker == spk and c.info.role == "reference"]
        tests = [c for c in held.clips if c.info.speaker == spk and c.info.role == "test"]
        ref_poses, ref_units, ref_features = _reference_clips(refs, reference_seconds, fps)
        top1 = retrieve_pose_style(adapter, ref_poses, ref_units, fps, "top1")
        blend = retrieve_pose_style(adapter, ref_poses, ref_units, fps, "blend", k=k, features=ref_features)
        nearest = sorted(known, key=lambda v: np.abs(gallery_style[v] - true_style[spk]).mean())[:k]
        agreement.append(
            {
                "speaker": spk,
                "top1": top1.chosen[0],
                "true_nearest": nearest,
                "agrees": top1.chosen[0] in nearest,
                "blend": dict(zip(blend.chosen, blend.weights)),
            }
        )
        styles = {
            "generic": None,
            "random style": torch.from_numpy(table[rng.integers(len(table))]),
            "mean style": torch.from_numpy(table.mean(0)),
            "top-1": top1.style,
            "blend": blend.style,
            "blend + posture": blend.style,
            "blend + posture + amplitude": blend.style,
        }
        for j, c in enumerate(tests):
            audio, sr = load_audio(c.info.audio)
            onsets.setdefault(spk, []).append(speech_onsets(audio, sr, fps))
            poses["ground truth"].setdefault(spk, []).append(c.motion.params[:, e:])
            for name, style in styles.items():
                p = adapter.place(
                    adapter.animate(c.features.features, style, seed=seed + j),
                    blend.posture if "posture" in name else None,
                    blend.amplitude if "amplitude" in name else 1.0,
                )
                poses[name].setdefault(spk, []).append(p)
                if si < renders and j == 0 and name == "blend + posture + amplitude":
                    examples[spk] = (c, p)
        log(
            f"speaker {spk} ({si + 1}/{len(speakers)}): top-1 {top1.chosen[0]} (nearest by true style: "
            f"{', '.join(nearest)}), blend {', '.join(f'{v} {w:.2f}' for v, w in zip(blend.chosen, blend.weights))}"
        )
    truth_feats = np.concatenate(
        [pose_features(p[:, rot], fps) for ps in poses["ground truth"].values() for p in ps]
    )
    rows = []
    for name in POSE_METHODS:
        seqs = [p for spk in speakers for p in poses[name][spk]]
        rotations = [p[:, rot] for p in seqs]
        ba = [
            beat_alignment(p[:, rot], o, fps)
            for spk in speakers
            for p, o in zip(poses[name][spk], onsets[spk])
        ]
        style_err = [
            np.abs(probe(motion_statistics(np.concatenate(poses[name][spk])))[0] - true_style[spk]).mean()
            for spk in speakers
        ]
        std = axis_std(rotations)
        rows.append(
            {
                "method": name,
                "diversity_deg": pose_diversity(rotations),
                "std_pitch": float(std[0]),
                "std_yaw": float(std[1]),
                "std_roll": float(std[2]),
                "beat_alignment": float(np.nanmean(ba)),
                "fd": frechet_distance(
                    np.concatenate([pose_features(r, fps) for r in rotations]), truth_feats
                ),
                "style_err": float(np.mean(style_err)),
            }
        )
    recon = [_vq_reconstruction(adapter.vq, held, rot, "model")]
    for size in codebook_sizes:
        recon.append(
            _vq_reconstruction(
                _train_vq(data, out / f"vq_{size}", preset, size, workers, log), held, rot, f"codebook {size}"
            )
        )
    result = {
        "model": str(model),
        "data": str(data),
        "speakers": speakers,
        "reference_seconds": reference_seconds,
        "rows": rows,
        "retrieval": agreement,
        "retrieval_agreement": float(np.mean([a["agrees"] for a in agreement])),
        "vq": recon,
    }
    (out / "results.json").write_text(json.dumps(result, indent=1))
    md = _pose_markdown(result, k)
    (out / "table.md").write_text(md + "\n")
    log(md)
    for spk, (clip, p) in examples.items():
        _render_pose_example(clip, p, out / f"side_by_side_{spk}.mp4")
    return result


def _train_vq(data, folder, preset: str, size: int, workers, log):
    """A VQ-VAE of the preset with a codebook of `size` codes, trained (or resumed) in `folder`."""
    cfg = pose_train_config("pose_vq", preset, workers=workers)
    train(
        PoseVQTask(data, cfg, progress=False, codebook_size=size),
        folder,
        cfg,
        progress=False,
        log=lambda line: None,
    )
    log(f"VQ-VAE with {size} codes trained in {folder}")
    return load_model(folder, kind="pose_vq")[0]


def _vq_reconstruction(vq, held, rot: slice, name: str) -> dict:
    """Mean absolute rotation error (degrees) of the VQ-VAE on the held-out clips, and the usage of
    its first codebook (the coarse motion PoseGPT picks first)."""
    err, codes = [], []
    for c in held.clips:
        pose = c.motion.params[:, c.motion.space.n_expression :]
        err.append(np.degrees(np.abs(vq.reconstruct(pose)[:, rot] - pose[:, rot])).mean())
        with torch.no_grad():
            codes.append(vq(torch.from_numpy(vq.centre(pose))[None])[1][0, :, 0].numpy())
    return {
        "name": name,
        "codebook_size": vq.config.codebook_size,
        "rotation_error_deg": float(np.mean(err)),
        **{
            k: v
            for k, v in codebook_usage(np.concatenate(codes), vq.config.codebook_size).items()
            if k != "codebook_size"
        },
    }


def _pose_markdown(result: dict, k: int) -> str:
    lines = [
        f"Held-out speakers: {len(result['speakers'])}; references of {result['reference_seconds']:g} s; "
        "rotation in degrees",
        "",
        "| method | diversity | std pitch | std yaw | std roll | beat alignment | FD to truth | style error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['method']} | {r['diversity_deg']:.2f} | {r['std_pitch']:.2f} | {r['std_yaw']:.2f} | "
            f"{r['std_roll']:.2f} | {r['beat_alignment']:.3f} | {r['fd']:.2f} | {r['style_err']:.3f} |"
        )
    lines += [
        "",
        f"Retrieval agreement (top-1 among the {k} training speakers nearest by true pose style): "
        f"{result['retrieval_agreement']:.0%}",
        "",
        "| VQ-VAE | codes | rotation error (deg) | perplexity | dead codes |",
        "|---|---|---|---|---|",
    ]
    for v in result["vq"]:
        lines.append(
            f"| {v['name']} | {v['codebook_size']} | {v['rotation_error_deg']:.3f} | {v['perplexity']:.1f} | "
            f"{v['dead_codes']} |"
        )
    return "\n".join(lines)


def _render_pose_example(clip, pose: np.ndarray, path) -> None:
    """Ground truth | generated head motion on the built-in head, with the true face motion."""
    e = clip.motion.space.n_expression
    generated = clip.motion.params.copy()
    generated[:, e:] = pose
    motions = [
        Motion(p, space=clip.motion.space, fps=clip.motion.fps, audio=str(clip.info.audio))
        for p in (clip.motion.params, generated)
    ]
    render_motion(
        motions,
        load_rig("builtin"),
        path,
        audio=str(clip.info.audio),
        captions=["ground truth", "PoseGPT (blend + posture + amplitude)"],
        size=384,
        progress=False,
    )


# ---------------------------------------------------------------- the prior on real heads


def prior_vq(model: str | None):
    """The pose VQ-VAE of a model folder (with pose/), a pose folder (with vqvae/) or a VQ-VAE
    folder; None: the shipped model's."""
    folder = Path(model) if model else WEIGHTS
    for sub in ("pose/vqvae", "vqvae", "."):
        if (folder / sub / "config.json").is_file():
            return load_model(folder / sub, kind="pose_vq")[0]
    raise AdameshError(f"{folder} holds no pose VQ-VAE (looked for pose/vqvae, vqvae and the folder itself)")


def reconstruction_scores(truth: np.ndarray, recon: np.ndarray) -> dict:
    """Per-axis Pearson r of reconstructed against true (T, 3) rotations, and the mean absolute
    error over the motion's mean absolute deviation (1: no better than holding the mean)."""
    r = [pearson(recon[:, i], truth[:, i]) for i in range(truth.shape[1])]
    spread = np.abs(truth - truth.mean(0)).mean()
    return {
        "r": r,
        "mean_r": float(np.mean(r)),
        "error_over_spread": float(np.abs(recon - truth).mean() / spread),
    }


def bench_prior(
    videos: list[str],
    model: str | None = None,
    out: str = "out/bench_prior",
    min_seconds: float = 15.0,
    log=print,
) -> dict:
    """How well the pose prior represents real heads: every clip of each speaker with at least
    `min_seconds` of tracked video, its head pose moved to the resting posture and passed through
    the VQ-VAE (encode, quantise, decode); per speaker, per-axis r and error / spread of the head
    angles, and a plot of tracked against reconstructed angles."""
    speakers = find_speakers(videos)
    vq = prior_vq(model).eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rot = slice(0, 3)
    rows, curves = [], {}
    for speaker, items in speakers.items():
        clips = [tracked_clip(p) if kind == "video" else load_clip(p) for kind, p in items]
        seconds = sum(c.motion.duration for c in clips)
        if seconds < min_seconds:
            log(f"{speaker}: {seconds:.1f} s, under {min_seconds:g} s: left out")
            continue
        truth, recon = [], []
        for c in clips:
            head = c.motion.params[:, ARKIT.n_expression :].astype(np.float32)
            truth.append(head[:, rot])
            recon.append(vq.reconstruct(head)[:, rot])
        truth, recon = np.concatenate(truth), np.concatenate(recon)
        row = {"speaker": speaker, "seconds": round(seconds, 1), **reconstruction_scores(truth, recon)}
        rows.append(row)
        curves[speaker] = (truth, recon, clips[0].motion.fps)
        log(
            f"{speaker}: {seconds:.1f} s, r {' / '.join(f'{x:.2f}' for x in row['r'])}, "
            f"error / spread {row['error_over_spread']:.2f}"
        )
    if not rows:
        raise AdameshError(f"no speaker in {', '.join(videos)} has {min_seconds:g} s of video")
    result = {"model": str(model or "shipped"), "min_seconds": min_seconds, "rows": rows}
    result["mean"] = {
        "mean_r": float(np.mean([r["mean_r"] for r in rows])),
        "error_over_spread": float(np.mean([r["error_over_spread"] for r in rows])),
    }
    lines = [
        "| speaker | seconds | r pitch / yaw / roll | mean r | error / spread |",
        "|---|---|---|---|---|",
        *(
            f"| {r['speaker']} | {r['seconds']:g} | {' / '.join(f'{x:.2f}' for x in r['r'])} | "
            f"{r['mean_r']:.3f} | {r['error_over_spread']:.2f} |"
            for r in rows
        ),
        f"| mean | | | {result['mean']['mean_r']:.3f} | {result['mean']['error_over_spread']:.2f} |",
    ]
    table = "\n".join(lines)
    with atomic_output(out / "results.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    with atomic_output(out / "table.md") as tmp:
        tmp.write_text(table + "\n")
    _plot_reconstruction(out / "reconstruction.png", curves)
    log(table)
    return result


def _plot_reconstruction(path, curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(curves), 3, figsize=(15, 2.2 * len(curves)), squeeze=False)
    for row, (speaker, (truth, recon, fps)) in zip(axes, curves.items()):
        t = np.arange(len(truth)) / fps
        for k, (ax, name) in enumerate(zip(row, ("pitch", "yaw", "roll"))):
            ax.plot(t, np.degrees(truth[:, k]), lw=1, label="tracked")
            ax.plot(t, np.degrees(recon[:, k]), lw=1, label="through the prior")
            ax.set_title(f"{speaker}: {name} (°)", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=70, format="png")
    plt.close(fig)


# ---------------------------------------------------------------- lip sync on real video
