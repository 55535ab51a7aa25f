"""`adamesh bench expression`: adaptation methods on held-out synthetic speakers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from adamesh.adapt.expression import AdaptConfig, Reference, adapt
from adamesh.adapt.timing import timing_speech
from adamesh.data.dataset import ClipDataset
from adamesh.data.synthetic.animation import ExpressionStyle, style_vector
from adamesh.data.synthetic.corpus import CorpusConfig, generate_corpus
from adamesh.eval.metrics import StyleProbe, bilabial_frames, closure_hits, motion_statistics, vertex_metrics
from adamesh.models.checkpoint import load_model
from adamesh.motion import Motion
from adamesh.render import render_motion
from adamesh.rigs import default_rig
from adamesh.train.loop import TrainConfig, train
from adamesh.train.presets import preset as preset_settings
from adamesh.train.tasks import ExpressionTask


def _reference(clips, seconds: float):
    """The first `seconds` of a speaker's reference clips, joined, as an adaptation Reference."""
    feats = np.concatenate([c.features.features for c in clips])
    params = np.concatenate([c.motion.params for c in clips])
    fps = clips[0].motion.fps
    n = min(len(params), int(round(seconds * fps)))
    return Reference(feats[:n], params[:n, : clips[0].motion.space.n_expression], fps)


def bench_expression(
    data: str | None = None,
    model: str | None = None,
    preset: str = "tiny",
    out: str = "out/bench_expression",
    rig: str | None = None,
    lengths=(2.5, 5.0, 10.0, 20.0),
    main_length: float = 10.0,
    renders: int = 2,
    max_speakers: int | None = None,
    workers: int | None = None,
    adapt_steps: int = 300,
    log=print,
) -> dict:
    """The expression comparison of issue 4 on held-out speakers: no adaptation, style encoder
    only, full fine-tuning, LoRA (matched size) and MoLoRA, at several reference lengths.

    Without `data` a corpus of the preset's size is generated in `out`; without `model` one is
    trained there with the preset. Vertex metrics use `rig` (ICT if installed, else builtin).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if data is None:
        data = out / "corpus"
        generate_corpus(data, CorpusConfig(**preset_settings(preset, "corpus")), workers)
    if model is None:
        model = out / "model"
        if not (model / "model.safetensors").is_file() or (model / "train_state.pt").is_file():
            cfg = TrainConfig.for_preset(preset, workers=workers)
            train(ExpressionTask(data, cfg), model, cfg, log=log)
    net, frontend, config = load_model(model, kind="expression")
    rig_obj = default_rig(rig)
    log(f"vertex metrics on rig {rig_obj.name} ({rig_obj.n_vertices} vertices), millimetres")

    held = ClipDataset(data, ("reference", "test"), frontend=frontend, workers=workers, progress=False)
    speech = timing_speech(frontend)
    train_motion = ClipDataset(data, ("train",), progress=False)
    space = held.clips[0].motion.space
    e = space.n_expression
    truth_style = {
        s: style_vector(ExpressionStyle(**held.speaker_style(s)["expression_style"])) for s in held.speakers
    }
    per_speaker = {}
    for c in train_motion.clips:
        per_speaker.setdefault(c.info.speaker, []).append(c.motion.params[:, :e])
    probe = StyleProbe(
        np.stack([motion_statistics(np.concatenate(v)) for v in per_speaker.values()]),
        np.stack(
            [
                style_vector(ExpressionStyle(**train_motion.speaker_style(s)["expression_style"]))
                for s in per_speaker
            ]
        ),
    )
    speakers = held.speakers[:max_speakers] if max_speakers else held.speakers
    variants = [
        ("none", main_length),
        ("style", main_length),
        ("full", main_length),
        ("lora", main_length),
        ("molora", main_length),
    ]
    variants += [(m, L) for L in lengths if L != main_length for m in ("style", "full", "lora", "molora")]
    rows: dict[tuple, list] = {v: [] for v in variants}
    rows[("ground truth", None)] = []
    examples = {}
    for si, spk in enumerate(speakers):
        refs = [c for c in held.clips if c.info.speaker == spk and c.info.role == "reference"]
        tests = [c for c in held.clips if c.info.speaker == spk and c.info.role == "test"]
        truth = [c.motion.params[:, :e] for c in tests]
        bil = [
            bilabial_frames(c.motion.meta.get("phones", []), c.motion.fps, c.motion.n_frames) for c in tests
        ]
        rows[("ground truth", None)].append(
            _score(rig_obj, truth, truth, bil, space, probe, truth_style[spk])
        )
        for method, length in variants:
            profile = adapt(
                net,
                _reference(refs, length),
                AdaptConfig(method=method, max_steps=adapt_steps),
                speech=speech,
            )
            adapted = profile.apply(net)
            preds = []
            for c in tests:
                p = adapted.predict(torch.from_numpy(c.features.features), style=profile.style).numpy()
                preds.append(np.clip(p, space.lower[:e], space.upper[:e]))
            score = _score(rig_obj, preds, truth, bil, space, probe, truth_style[spk])
            score.update(seconds=profile.stats["seconds"], trainable=profile.stats["trainable"])
            rows[(method, length)].append(score)
            if si < renders and length == main_length and method in ("none", "molora"):
                examples.setdefault(spk, {"clip": tests[0]})[method] = preds[0]
        done = ", ".join(
            f"{m}@{L:g}s {np.mean([r['lve_sq'] for r in rows[(m, L)]]):.2f}" for m, L in variants[:5]
        )
        log(f"speaker {spk} ({si + 1}/{len(speakers)}): LVE mm^2 so far (mean over speakers) {done}")
    table = _expression_table(rows)
    per_speaker = {
        f"{m}@{L:g}s": {spk: round(r["lve_sq"], 3) for spk, r in zip(speakers, rows[(m, L)])}
        for m, L in variants
    }  # LVE mm^2: how much methods differ against speakers do
    result = {
        "model": str(model),
        "data": str(data),
        "rig": rig_obj.name,
        "speakers": speakers,
        "main_length": main_length,
        "rows": table,
        "lve_sq_per_speaker": per_speaker,
    }
    (out / "results.json").write_text(json.dumps(result, indent=1))
    md = _markdown(table)
    (out / "table.md").write_text(md + "\n")
    log(md)
    for spk, ex in examples.items():
        _render_example(rig_obj, ex, out / f"side_by_side_{spk}.mp4", space)
    return result


def _score(rig, preds, truth, bilabials, space, probe, true_style) -> dict:
    e = space.n_expression
    metrics = [vertex_metrics(rig, p, t) for p, t in zip(preds, truth)]
    score = {k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]}
    score["fdd_abs"] = float(np.mean([abs(m["fdd"]) for m in metrics]))
    hits = [closure_hits(p, space.channels[:e], b) for p, b in zip(preds, bilabials)]
    score["closure"] = sum(h for h, _ in hits) / max(1, sum(n for _, n in hits))
    recovered = probe(motion_statistics(np.concatenate(preds)))[0]
    score["style_err"] = float(np.abs(recovered - true_style).mean())
    return score


def _expression_table(rows: dict) -> list[dict]:
    table = []
    for (method, length), scores in rows.items():
        if not scores:
            continue
        row = {"method": method, "reference_s": length}
        for k in scores[0]:
            row[k] = float(np.mean([s[k] for s in scores]))
        table.append(row)
    return table


def _markdown(table: list[dict]) -> str:
    cols = [
        ("lve_sq", "LVE mm²", ".3f"),
        ("lve_mm", "LVE mm", ".3f"),
        ("lip_rmse", "lip RMSE mm", ".3f"),
        ("mve", "MVE mm", ".3f"),
        ("fdd", "FDD mm²", "+.3f"),
        ("fdd_abs", "abs FDD", ".3f"),
        ("closure", "p/b/m closed", ".2f"),
        ("style_err", "style err", ".3f"),
        ("seconds", "adapt s", ".1f"),
        ("trainable", "trainable", ",.0f"),
    ]
    lines = ["| method | ref s | " + " | ".join(c[1] for c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for r in table:
        ref = "" if r["reference_s"] is None else f"{r['reference_s']:g}"
        cells = [format(r[k], f) if k in r else "" for k, _, f in cols]
        lines.append(f"| {r['method']} | {ref} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _render_example(rig, example: dict, path, space) -> None:
    clip = example["clip"]
    motions = []
    for key in ("truth", "none", "molora"):
        params = np.zeros_like(clip.motion.params)
        params[:, : space.n_expression] = (
            clip.motion.params[:, : space.n_expression] if key == "truth" else example[key]
        )
        motions.append(Motion(params, space=space, fps=clip.motion.fps, audio=str(clip.info.audio)))
    render_motion(
        motions,
        rig,
        path,
        audio=str(clip.info.audio),
        captions=["ground truth", "no adaptation", "MoLoRA"],
        size=384,
        progress=False,
    )


# ---------------------------------------------------------------- pose adapter
