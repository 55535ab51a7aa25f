"""`make demo` (`adamesh demo`): personalise the shipped model to a speaker it never saw, end to end.

A held-out speaker of the default synthetic corpus is synthesised on the spot (espeak-ng voice and
the corpus's ground-truth rules): about 10 s of reference clips and three new test sentences. The
shipped model adapts to the reference (MoLoRA + pose-style retrieval), animates the test sentences
generically and with the profile, and the demo writes to one folder:

    side_by_side.mp4     ground truth | generic | personalised, with the speech
    personalised.glb     mesh + animation of the personalised result (any glTF viewer or engine)
    personalised.csv     the same as a Live Link Face CSV (Unreal)
    channels.png         key blendshapes and head angles against ground truth
    report.md            the metrics, and what made them
    profile.profile, generic.npz, personalised.npz, ground_truth.npz, speech.wav
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from adamesh.audio import times_real_time
from adamesh.data.synthetic.corpus import held_out_speaker, synthetic_reference
from adamesh.fileio import atomic_output, check_output_folder
from adamesh.motion import ARKIT, Motion

DEMO_SPEAKER = "spk011"  # held out of the shipped model's training corpus (CorpusConfig defaults)
REFERENCE_SECONDS = 10.0
TEST_SENTENCES = 3
KEY_CHANNELS = ("jawOpen", "mouthClose", "mouthFunnel", "mouthSmileLeft", "browInnerUp")
OUTPUTS = ("clips", "speech.wav", ".npz", "profile.profile", "personalised.glb", "personalised.csv",
           "side_by_side.mp4", "channels.png", "report.md", "report.json")  # fmt: skip


def _test_sentences(n_test: int, speaker_id: str):
    """Joined audio and ground truth of `n_test` sentences from the far end of the speaker's
    sentence list (never in the reference)."""
    from adamesh.data.synthetic.corpus import synthesize_clip

    cfg, speaker, index = held_out_speaker(speaker_id)
    tests = [synthesize_clip(speaker, cfg.sentences - 1 - j, cfg, index) for j in range(n_test)]
    truth = Motion(
        np.concatenate([m.params for _, m in tests]),
        ARKIT,
        cfg.fps,
        meta={
            "producer": "adamesh demo",
            "speaker": speaker_id,
            "text": " ".join(m.meta["text"] for _, m in tests),
        },
    )
    return np.concatenate([a for a, _ in tests]), truth


def _plot(truth: Motion, generic: Motion, personal: Motion, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(KEY_CHANNELS) + ["headPitch", "headYaw", "headRoll"]
    fig, axes = plt.subplots(len(names), 1, figsize=(11, 2.0 * len(names)), sharex=True)
    t = np.arange(truth.n_frames) / truth.fps
    for ax, name in zip(axes, names):
        scale = 180 / np.pi if name.startswith("head") else 1.0
        for motion, label, style in (
            (truth, "ground truth", "k-"),
            (generic, "generic", "C0--"),
            (personal, "personalised", "C3-"),
        ):
            ax.plot(t[: motion.n_frames], motion.channel(name) * scale, style, lw=1.2, label=label)
        ax.set_ylabel(name + (" (deg)" if scale != 1 else ""), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", ncol=3, fontsize=9)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle("held-out speaker: ground truth, generic model and personalised model")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def _metrics(rig, truth: Motion, motion: Motion) -> dict:
    from adamesh.eval.metrics import pearson, vertex_metrics
    from adamesh.motion import lip_gap

    e = ARKIT.n_expression
    n = min(truth.n_frames, motion.n_frames)
    v = vertex_metrics(rig, motion.params[:n, :e], truth.params[:n, :e])
    rot = slice(*ARKIT.rotation)
    return {
        "LVE (mm^2)": v["lve_sq"],
        "lip gap Pearson r": pearson(
            lip_gap(motion.params[:n, :e], ARKIT.channels[:e]),
            lip_gap(truth.params[:n, :e], ARKIT.channels[:e]),
        ),
        "expression L1": float(np.abs(motion.params[:n, :e] - truth.params[:n, :e]).mean()),
        "head angle std (deg)": [round(float(x), 2) for x in np.degrees(motion.params[:n, rot].std(0))],
        "mean head angle error (deg)": float(
            np.degrees(np.abs(motion.params[:n, rot].mean(0) - truth.params[:n, rot].mean(0)).mean())
        ),
    }


def run_demo(
    out: str | os.PathLike,
    rig_spec: str | None = None,
    speaker: str = DEMO_SPEAKER,
    model: str | None = None,
    log=print,
) -> dict:
    """Run the demo into folder `out` (see the module docstring); returns the report's numbers."""
    from adamesh import api
    from adamesh.export import write_csv, write_glb
    from adamesh.render import render_motion
    from adamesh.rigs import default_rig

    out = check_output_folder(out, OUTPUTS, "the demo's")
    out.mkdir(parents=True, exist_ok=True)
    rig = default_rig(rig_spec)
    t_start = time.perf_counter()
    log(
        f"synthesising held-out speaker {speaker}: ~{REFERENCE_SECONDS:g} s of reference, {TEST_SENTENCES} "
        "test sentences"
    )
    from adamesh.audio import SAMPLE_RATE as rate

    reference = synthetic_reference(out / "clips", REFERENCE_SECONDS, speaker)
    audio, truth = _test_sentences(TEST_SENTENCES, speaker)
    speech = out / "speech.wav"
    with atomic_output(speech) as tmp:
        sf.write(tmp, audio, rate, subtype="PCM_16")
    truth.audio = str(speech)

    animator = api.load(model)
    t0 = time.perf_counter()
    profile = animator.adapt(reference)
    adapt_seconds = time.perf_counter() - t0
    profile.save(out / "profile.profile")
    log(
        f"adapted in {adapt_seconds:.1f} s: pose style {profile.pose.method} of {', '.join(profile.pose.chosen)}"
    )

    t0 = time.perf_counter()
    personal = animator.animate(speech, profile, seed=0)
    animate_seconds = time.perf_counter() - t0
    generic = animator.animate(speech, None, seed=0)
    for name, motion in (("ground_truth", truth), ("generic", generic), ("personalised", personal)):
        motion.save(out / f"{name}.npz")
    write_glb(personal, rig, out / "personalised.glb")
    write_csv(personal, rig, out / "personalised.csv")
    _plot(truth, generic, personal, out / "channels.png")
    render_motion(
        [truth, generic, personal],
        rig,
        out / "side_by_side.mp4",
        captions=["ground truth", "generic", "personalised"],
        size=384,
    )

    scores = {"generic": _metrics(rig, truth, generic), "personalised": _metrics(rig, truth, personal)}
    result = {
        "speaker": speaker,
        "reference_seconds": profile.reference["seconds"],
        "test_seconds": round(truth.duration, 2),
        "rig": rig.name,
        "adapt_seconds": round(adapt_seconds, 2),
        "truth_head_angle_std": [
            round(float(x), 2) for x in np.degrees(truth.params[:, slice(*ARKIT.rotation)].std(0))
        ],
        "animate_realtime_factor": round(personal.duration / animate_seconds, 1),
        "scores": scores,
        "pose_style": profile.pose.to_dict(),
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    with atomic_output(out / "report.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    with atomic_output(out / "report.md") as tmp:
        tmp.write_text(_report(result))
    log(_report(result))
    return result


def _report(r: dict) -> str:
    rows = [k for k in r["scores"]["generic"] if not isinstance(r["scores"]["generic"][k], list)]
    lines = [
        f"# adamesh demo: held-out speaker {r['speaker']}",
        "",
        f"Reference: {r['reference_seconds']:.1f} s of synthetic speech and ground-truth motion of a speaker "
        f"the shipped model never saw. Test: {r['test_seconds']:.1f} s of {TEST_SENTENCES} new sentences. Metrics on the "
        f"{r['rig']} rig.",
        "",
        "| metric | generic | personalised |",
        "|---|---|---|",
    ]
    for k in rows:
        lines.append(f"| {k} | {r['scores']['generic'][k]:.3f} | {r['scores']['personalised'][k]:.3f} |")
    lines.append(
        f"| head angle std pitch/yaw/roll (deg), ground truth {r['truth_head_angle_std']} | "
        f"{r['scores']['generic']['head angle std (deg)']} | {r['scores']['personalised']['head angle std (deg)']} |"
    )
    lines += [
        "",
        f"Adaptation: {r['adapt_seconds']:.1f} s (MoLoRA + pose-style retrieval). Animation: "
        f"{times_real_time(r['animate_realtime_factor'])} real time. Whole demo: {r['total_seconds']:.0f} s.",
        f"Pose style: {r['pose_style']['method']} of {', '.join(r['pose_style']['chosen'])} "
        f"(weights {r['pose_style']['weights']}).",
        "",
    ]
    return "\n".join(lines)
