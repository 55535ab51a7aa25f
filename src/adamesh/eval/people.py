"""`adamesh bench people`: does a profile from a short clip of a real person animate new speech
in that person's style?

Each speaker's clips are tracked once (cached by content) and joined in order. The first R seconds
are the reference; the rest is the test, whose tracked motion is the truth and whose speech the
model animates, generic and through a profile of each adaptation method. Scored on the test:

- lip sync: Pearson r of the ARKit lip gap (jawOpen - mouthClose) against the tracked one;
- expression: mean absolute error per ARKit group (blinks, gaze and tongue left out), and lip
  vertex error (mm, LVE as in `evaluation`) with the tracked and the predicted weights each
  driving the rig (ICT-FaceKit when installed);
- style: for a few readable signals (how far the mouth opens, smiles, brows, lopsidedness), the
  error of their mean and standard deviation against the truth's; 0 is the person, and the
  generic model's error is reported beside each method's;
- head pose: error of the per-axis standard deviation of head angles, of the resting posture (the
  mean angles), and the Frechet distance of 1 s pose statistics; and how the motion looks beside
  the truth's (`metrics.head_motion_measures`: spread, speed, slow drift, holds, nods and turns,
  lag behind the voice);
- adaptation seconds.
"""

from __future__ import annotations

import csv
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from adamesh import api
from adamesh.audio import SAMPLE_RATE, energy_envelope, load_audio
from adamesh.errors import AdameshError
from adamesh.eval.metrics import (
    frechet_distance,
    head_motion_measures,
    lip_gap,
    pearson,
    pose_features,
    vertex_metrics,
)
from adamesh.fileio import atomic_output, cache_dir
from adamesh.frontends import FeatureCache
from adamesh.motion import ARKIT, Motion, load_motion, save_motion
from adamesh.render import RigView, side_by_side
from adamesh.render.video import write_video
from adamesh.rigs import default_rig
from adamesh.tracking import read_video_frames, track_video, video_files

METHODS = ("none", "style", "lora", "molora", "full")
MIN_TEST_SECONDS = 5.0
TRACK_VERSION = 1  # bump when tracking changes, so cached tracks are made again

_E = list(ARKIT.channels[: ARKIT.n_expression])
GROUPS = {
    "jaw": ["jawForward", "jawLeft", "jawRight", "jawOpen"],
    "mouth": [c for c in _E if c.startswith("mouth")],
    "brows": [c for c in _E if c.startswith("brow")],
    "cheeks+squint": [
        "cheekPuff",
        "cheekSquintLeft",
        "cheekSquintRight",
        "eyeSquintLeft",
        "eyeSquintRight",
        "noseSneerLeft",
        "noseSneerRight",
    ],
}


def _signal(params: np.ndarray, plus=(), minus=()) -> np.ndarray:
    out = np.zeros(len(params))
    for names, sign in ((plus, 1.0), (minus, -1.0)):
        for n in names:
            out += sign * params[:, _E.index(n)] / len(names)
    return out


# Readable style signals: (name, channels averaged, channels subtracted)
STYLE = (
    ("mouth opening", ("jawOpen",), ("mouthClose",)),
    ("smile", ("mouthSmileLeft", "mouthSmileRight"), ()),
    ("frown", ("mouthFrownLeft", "mouthFrownRight"), ()),
    ("lips forward", ("mouthPucker", "mouthFunnel"), ()),
    ("brows up", ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"), ()),
    ("brows down", ("browDownLeft", "browDownRight"), ()),
    ("lopsided smile", ("mouthSmileLeft",), ("mouthSmileRight",)),
    ("mouth sideways", ("mouthLeft",), ("mouthRight",)),
    ("lopsided brows", ("browOuterUpLeft",), ("browOuterUpRight",)),
)


def style_signals(params: np.ndarray) -> dict[str, np.ndarray]:
    return {name: _signal(params, plus, minus) for name, plus, minus in STYLE}


@dataclass
class Clip:
    name: str
    motion: Motion
    speech: np.ndarray  # 16 kHz, exactly as long as the motion's frames
    video: Path | None


# ---------------------------------------------------------------- speakers and their clips


def find_speakers(folders: list[str]) -> dict[str, list[tuple[str, Path]]]:
    """speaker -> [(kind, path)] in order: "clip" for a tracked motion file (a clip folder from
    `adamesh track`), "video" for a video. A folder's clips.csv names each video's speaker (a
    video it does not list is a speaker of its own), else each subfolder is a speaker, else the
    folder is one; a clip folder is one speaker (its motions' speaker)."""
    speakers: dict[str, list[tuple[str, Path]]] = {}
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise AdameshError(f"video folder {folder} does not exist")
        motions = sorted(folder.glob("*.npz"))
        if motions:
            name = str(load_motion(motions[0]).meta.get("speaker") or folder.name)
            speakers.setdefault(name, []).extend(("clip", m) for m in motions)
            continue
        listing = folder / "clips.csv"
        named = {}
        if listing.is_file():
            with open(listing, newline="") as f:
                named = {r["file"]: r["speaker"] for r in csv.DictReader(f)}
        subfolders = [d for d in sorted(folder.iterdir()) if d.is_dir()] if not named else []
        for d in subfolders:
            for v in video_files([d]):
                speakers.setdefault(d.name, []).append(("video", v))
        if not subfolders:  # without a clips.csv the folder is one speaker
            for v in video_files([folder]):
                speakers.setdefault(named.get(v.name, v.stem) if named else folder.name, []).append(
                    ("video", v)
                )
    if not speakers:
        raise AdameshError(f"no videos or tracked clips found in {', '.join(folders)}")
    return speakers


def tracked_clip(path: Path, progress: bool = False) -> Clip:
    """A video's tracked motion and speech, tracked once and kept in the cache by the video's content."""
    folder = cache_dir() / "tracked" / f"{FeatureCache.audio_hash(path)}-v{TRACK_VERSION}"
    motion_file = folder / f"{path.stem}.npz"
    if not motion_file.is_file():
        track_video(path, folder, overlay=False, progress=progress)
    motion = load_motion(motion_file)
    if motion.audio is None:
        raise AdameshError(f"{path} has no sound; the benchmark animates the person's own speech")
    return _clip(path.stem, motion, load_audio(motion.audio, SAMPLE_RATE)[0], path)


def _clip(name: str, motion: Motion, speech: np.ndarray, video) -> Clip:
    n = int(round(motion.n_frames * SAMPLE_RATE / motion.fps))
    return Clip(name, motion, np.pad(speech[:n], (0, max(0, n - len(speech)))), video)


def load_clip(path: Path) -> Clip:
    motion = load_motion(path)
    if motion.audio is None:
        raise AdameshError(f"{path} names no audio; the benchmark animates the person's own speech")
    source = motion.meta.get("source")  # the tracked video, for the side-by-side renders
    video = next((p for p in (Path(str(source)), path.parent / str(source)) if source and p.is_file()), None)
    return _clip(path.stem, motion, load_audio(motion.audio, SAMPLE_RATE)[0], video)


# ---------------------------------------------------------------- metrics


def score(pred: np.ndarray, truth: np.ndarray, rig, fps: float, loudness: np.ndarray | None = None) -> dict:
    """Every measure of one prediction against the tracked truth (both (T, 58) ARKit params);
    `loudness` (dB per frame) of the speech for the head's lag behind the voice."""
    n = min(len(pred), len(truth))
    pred, truth = pred[:n], truth[:n]
    e = ARKIT.n_expression
    out = {"lip_r": pearson(lip_gap(pred[:, :e], _E), lip_gap(truth[:, :e], _E))}
    for group, names in GROUPS.items():
        idx = [_E.index(c) for c in names]
        out[f"l1_{group}"] = float(np.abs(pred[:, idx] - truth[:, idx]).mean())
    vm = vertex_metrics(rig, pred[:, :e], truth[:, :e])
    out["lve_mm"], out["lve_sq"] = vm["lve_mm"], vm["lve_sq"]
    sp, st = style_signals(pred[:, :e]), style_signals(truth[:, :e])
    out["style"] = {k: float(abs(sp[k].mean() - st[k].mean()) + abs(sp[k].std() - st[k].std())) for k in sp}
    out["style_err"] = float(np.mean(list(out["style"].values())))
    rot = slice(*ARKIT.rotation)
    dp, dt = np.degrees(pred[:, rot]), np.degrees(truth[:, rot])
    out["pose_std_err_deg"] = float(np.abs(dp.std(0) - dt.std(0)).mean())
    out["posture_err_deg"] = float(np.linalg.norm(dp.mean(0) - dt.mean(0)))
    out["pose_fd"] = frechet_distance(pose_features(pred[:, rot], fps), pose_features(truth[:, rot], fps))
    out["head"] = head_motion_measures(pred[:, rot], fps, loudness)
    return out


# ---------------------------------------------------------------- the benchmark


def _split(clips: list[Clip], seconds: float, test_clips: int | None, fps: float):
    """(motion params, speech) of the reference, the first `seconds` of the clips joined, and of
    the test after it: the rest, or (with `test_clips`) up to the end of the next `test_clips`
    whole clips."""
    params = np.concatenate([c.motion.params for c in clips])
    speech = np.concatenate([c.speech for c in clips])
    ends = np.cumsum([c.motion.n_frames for c in clips])
    cut = int(round(seconds * fps))
    last = len(params)
    if test_clips is not None:
        whole = int(np.searchsorted(ends, cut, side="left")) + 1  # the first clip that starts after the cut
        last = int(ends[min(len(ends), whole + test_clips) - 1])
    hop = SAMPLE_RATE / fps
    return (
        (params[:cut], speech[: int(round(cut * hop))]),
        (params[cut:last], speech[int(round(cut * hop)) : int(round(last * hop))]),
    )


def bench_people(
    videos: list[str],
    out: str = "out/bench_people",
    model: str | None = None,
    reference_seconds=(10.0,),
    methods=METHODS,
    rig: str | None = None,
    test_clips: int | None = None,
    renders: int = 2,
    adapt_config=None,
    log=print,
) -> dict:
    """See the module docstring. Returns the results (also in `out`/results.json, table in table.md).
    `adapt_config` (an AdaptConfig) sets the adaptation's steps and time budget."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise AdameshError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    speakers = find_speakers(videos)  # before anything is written or loaded
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    animator = api.load(model)
    fps = animator.fps
    rig_obj = default_rig(rig)
    log(
        f"vertex metrics on rig {rig_obj.name}; methods {', '.join(methods)}; references "
        f"{', '.join(f'{r:g}' for r in reference_seconds)} s"
    )

    rows, skipped, examples, truth_head = [], {}, [], {}
    for speaker, items in speakers.items():
        t0 = time.perf_counter()
        clips, total = [], 0.0
        for (
            kind,
            p,
        ) in items:  # with test_clips, only as many clips as the longest reference and the test need
            if (
                test_clips is not None
                and total >= max(reference_seconds)
                and len(clips)
                > test_clips
                + np.searchsorted(np.cumsum([c.motion.duration for c in clips]), max(reference_seconds))
            ):
                break
            clips.append(tracked_clip(p) if kind == "video" else load_clip(p))
            total += clips[-1].motion.duration
        log(f"{speaker}: {len(clips)} clip(s), {total:.1f} s (tracked in {time.perf_counter() - t0:.0f} s)")
        example = None
        for seconds in sorted(reference_seconds):
            if total < seconds + MIN_TEST_SECONDS:
                skipped.setdefault(speaker, []).append(
                    f"{total:.1f} s is under {seconds:g} + {MIN_TEST_SECONDS:g} s"
                )
                log(f"  {seconds:g} s reference: skipped ({total:.1f} s of material)")
                continue
            (ref_params, ref_speech), (truth, test_speech) = _split(clips, seconds, test_clips, fps)
            folder = out / "speakers" / speaker / f"{seconds:g}s"
            folder.mkdir(parents=True, exist_ok=True)
            ref_wav = _write_wav(folder / "reference.wav", ref_speech)
            _write_wav(folder / "test.wav", test_speech)
            reference = Motion(ref_params, ARKIT, fps, audio=str(ref_wav), meta={"speaker": speaker})
            save_motion(
                Motion(truth, ARKIT, fps, audio=str(folder / "test.wav"), meta={"speaker": speaker}),
                folder / "truth.npz",
            )
            loudness = energy_envelope(test_speech, SAMPLE_RATE, fps, db=True)
            truth_head[f"{speaker} {seconds:g}"] = head_motion_measures(
                truth[:, slice(*ARKIT.rotation)], fps, loudness
            )
            predictions = {}
            for method in methods:
                t1 = time.perf_counter()
                profile = None
                if method != "none":
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # short references are the point here
                        profile = animator.adapt(
                            reference, method=method, progress=False, config=adapt_config
                        )
                adapt_s = time.perf_counter() - t1 if profile else 0.0
                motion = animator.animate(test_speech, profile, seed=0)
                predictions[method] = motion.params
                row = {
                    "speaker": speaker,
                    "reference_s": seconds,
                    "test_s": round(len(truth) / fps, 2),
                    "method": method,
                    "adapt_s": round(adapt_s, 2),
                    **score(motion.params, truth, rig_obj, fps, loudness),
                }
                rows.append(row)
                log(
                    f"  {seconds:g} s, {method}: lip r {row['lip_r']:.3f}, LVE {row['lve_mm']:.2f} mm, style "
                    f"{row['style_err']:.4f}, pose FD {row['pose_fd']:.1f}"
                    + (f", adapted in {adapt_s:.1f} s" if profile else "")
                )
            _plot(folder / "channels.png", speaker, truth, predictions, fps)
            example = (speaker, clips, seconds, truth, predictions, folder)  # the longest reference is shown
        if example and len(examples) < renders:
            examples.append(example)
    if not rows:
        raise AdameshError(
            "no speaker has enough material for the reference lengths asked: "
            + "; ".join(f"{k}: {v[0]}" for k, v in skipped.items())
        )
    result = {
        "model": str(animator.folder),
        "rig": rig_obj.name,
        "methods": list(methods),
        "reference_seconds": list(reference_seconds),
        "rows": rows,
        "skipped": skipped,
        "mean": _means(rows),
        "truth_head": truth_head,
    }
    table = markdown(result)
    with atomic_output(out / "results.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    with atomic_output(out / "table.md") as tmp:
        tmp.write_text(table)
    log(table)
    for _speaker, clips, seconds, truth, predictions, folder in examples:
        best = next((m for m in ("molora", "lora", "full", "style") if m in predictions), None)
        _render(
            folder / "side_by_side.mp4",
            clips,
            seconds,
            truth,
            predictions["none"] if "none" in predictions else None,
            predictions.get(best),
            best,
            rig_obj,
            fps,
            folder / "test.wav",
        )
        log(f"rendered {folder / 'side_by_side.mp4'}")
    return result


def _write_wav(path: Path, samples: np.ndarray) -> Path:
    with atomic_output(path) as tmp:
        sf.write(tmp, samples, SAMPLE_RATE, subtype="PCM_16")
    return path


MEASURES = (
    "lip_r",
    "l1_jaw",
    "l1_mouth",
    "l1_brows",
    "l1_cheeks+squint",
    "lve_mm",
    "style_err",
    "pose_std_err_deg",
    "posture_err_deg",
    "pose_fd",
    "adapt_s",
)


def _means(rows: list[dict]) -> list[dict]:
    """Mean over speakers of every measure, per (reference length, method)."""
    keys = sorted({(r["reference_s"], r["method"]) for r in rows}, key=lambda k: (k[0], METHODS.index(k[1])))
    out = []
    for seconds, method in keys:
        group = [r for r in rows if r["reference_s"] == seconds and r["method"] == method]
        out.append(
            {
                "reference_s": seconds,
                "method": method,
                "speakers": len(group),
                **{m: float(np.mean([r[m] for r in group])) for m in MEASURES},
            }
        )
    return out


def markdown(result: dict) -> str:
    heads = [
        "lip r",
        "L1 jaw",
        "L1 mouth",
        "L1 brows",
        "L1 cheeks+squint",
        "LVE mm",
        "style err (generic)",
        "pose std err °",
        "posture err °",
        "pose FD",
        "adapt s",
    ]
    lines = [
        "Mean over speakers:",
        "",
        "| ref s | method | speakers | " + " | ".join(heads) + " |",
        "|---|---|---|" + "---|" * len(heads),
    ]
    generic = {m["reference_s"]: m for m in result["mean"] if m["method"] == "none"}
    for m in result["mean"]:
        g = generic.get(m["reference_s"])
        cells = [
            f"{m[k]:.3f}" if k in ("lip_r",) else f"{m[k]:.4f}" if k.startswith("l1") else f"{m[k]:.2f}"
            for k in MEASURES
        ]
        cells[6] = f"{m['style_err']:.4f}" + (f" ({g['style_err']:.4f})" if g else "")
        lines.append(
            f"| {m['reference_s']:g} | {m['method']} | {m['speakers']} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        *_per_speaker(
            result,
            "Per speaker (lip r / LVE mm / style err):",
            lambda r: f"{r['lip_r']:.3f} / {r['lve_mm']:.2f} / {r['style_err']:.4f}",
            test_seconds=True,
        ),
        "",
        *_per_speaker(
            result,
            "Per speaker head pose (std err ° / posture err ° / pose FD):",
            lambda r: f"{r['pose_std_err_deg']:.2f} / {r['posture_err_deg']:.2f} / {r['pose_fd']:.1f}",
        ),
    ]
    lines += ["", *head_motion_table(result)]
    if result["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"{k} ({', '.join(v)})" for k, v in result["skipped"].items())]
    return "\n".join(lines) + "\n"


def _per_speaker(result: dict, title: str, cell, test_seconds: bool = False) -> list[str]:
    """A table of every speaker and reference length, one `cell(row)` a method."""
    methods = result["methods"]
    lines = [
        title,
        "",
        "| speaker | ref s | " + ("test s | " if test_seconds else "") + " | ".join(methods) + " |",
        "|---|---|" + ("---|" if test_seconds else "") + "---|" * len(methods),
    ]
    for key in dict.fromkeys((r["speaker"], r["reference_s"]) for r in result["rows"]):
        rs = {r["method"]: r for r in result["rows"] if (r["speaker"], r["reference_s"]) == key}
        test_s = f"{next(iter(rs.values()))['test_s']:.0f} | " if test_seconds else ""
        cells = " | ".join(cell(rs[m]) if m in rs else "" for m in methods)
        lines.append(f"| {key[0]} | {key[1]:g} | {test_s}{cells} |")
    return lines


HEAD_MEASURES = (
    ("std pitch/yaw/roll °", lambda h: " / ".join(f"{x:.2f}" for x in h["std_deg"])),
    ("speed median (p95) °/s", lambda h: f"{h['speed_median']:.1f} ({h['speed_p95']:.1f})"),
    ("power < 0.5 Hz", lambda h: f"{h['slow_share']:.2f}"),
    ("0.5-2 Hz", lambda h: f"{h['nod_share']:.2f}"),
    ("held still", lambda h: f"{h['held']:.2f}"),
    ("nods / min", lambda h: f"{h['nods_per_min']:.1f}"),
    ("turns / min", lambda h: f"{h['turns_per_min']:.1f}"),
    (
        "lag behind voice s (r)",
        lambda h: f"{h.get('speech_lag_s', np.nan):+.2f} ({h.get('speech_r', np.nan):.2f})",
    ),
)


def _mean_head(measures: list[dict]) -> dict:
    return {
        k: (
            np.mean([m[k] for m in measures], 0).tolist()
            if k == "std_deg"
            else float(np.mean([m[k] for m in measures]))
        )
        for k in measures[0]
    }


def head_motion_table(result: dict) -> list[str]:
    """Head motion measures, mean over speakers, of the truth and of every method."""
    lines = [
        "Head motion, mean over speakers (metrics.head_motion_measures):",
        "",
        "| ref s | motion | " + " | ".join(h for h, _ in HEAD_MEASURES) + " |",
        "|---|---|" + "---|" * len(HEAD_MEASURES),
    ]
    for seconds in result["reference_seconds"]:
        truth = [v for k, v in result["truth_head"].items() if k.rsplit(" ", 1)[1] == f"{seconds:g}"]
        if not truth:
            continue
        shown = {"tracked truth": truth}
        for method in result["methods"]:
            shown[method] = [
                r["head"] for r in result["rows"] if r["reference_s"] == seconds and r["method"] == method
            ]
        for name, measures in shown.items():
            if measures:
                h = _mean_head(measures)
                lines.append(f"| {seconds:g} | {name} | " + " | ".join(f(h) for _, f in HEAD_MEASURES) + " |")
    return lines


# ---------------------------------------------------------------- what to look at


def _plot(path: Path, speaker: str, truth: np.ndarray, predictions: dict, fps: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    signals = ["mouth opening", "smile", "brows up", "lopsided smile"]
    t = np.arange(len(truth)) / fps
    fig, axes = plt.subplots(len(signals) + 3, 1, figsize=(12, 13), sharex=True)
    shown = {"tracked": truth, **{k: v for k, v in predictions.items() if k in ("none", "molora")}}
    for label, params in shown.items():
        n = min(len(params), len(t))
        s = style_signals(params[:n, : ARKIT.n_expression])
        for ax, name in zip(axes, signals):
            ax.plot(t[:n], s[name], lw=1, label="generic" if label == "none" else label)
            ax.set_ylabel(name)
        for k, ax in enumerate(axes[len(signals) :]):
            ax.plot(t[:n], np.degrees(params[:n, ARKIT.rotation[0] + k]), lw=1)
            ax.set_ylabel(ARKIT.channels[ARKIT.rotation[0] + k] + " °")
    axes[0].legend(loc="upper right")
    axes[0].set_title(f"{speaker}: test part, tracked against predicted")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def _video_frames(clips: list[Clip], start: int, n: int, fps: float, size: int):
    """The real video's frames for stream frames start..start+n (nearest in time), square, `size`."""
    ends = np.cumsum([c.motion.n_frames for c in clips])
    k = int(np.searchsorted(ends, start, side="right"))
    clip = clips[k]
    offset = start - (ends[k - 1] if k else 0)
    wanted = [(offset + i) / fps for i in range(min(n, clip.motion.n_frames - offset))]
    frames, it = [], iter(read_video_frames(clip.video)) if clip.video else iter(())
    prev = None
    for w in wanted:
        for ts, img in it:
            prev = img
            if ts >= w - 0.5 / fps:
                break
        if prev is None:
            break
        h, wd = prev.shape[:2]
        side = min(h, wd)
        crop = prev[(h - side) // 2 : (h + side) // 2, (wd - side) // 2 : (wd + side) // 2]
        frames.append(np.asarray(Image.fromarray(crop).resize((size, size))))
    return frames


def _render(
    path: Path,
    clips,
    seconds,
    truth,
    generic,
    personal,
    method,
    rig,
    fps,
    audio,
    size: int = 320,
    most_seconds: float = 12.0,
) -> None:
    """The real video | the tracked rig | generic | personalised, with the test speech."""
    start = int(round(seconds * fps))
    n = min(len(truth), int(most_seconds * fps))
    real = _video_frames(clips, start, n, fps, size)
    n = min(n, len(real)) if real else n
    panels = [("tracked", truth)] + [
        (name, p) for name, p in (("generic", generic), (method, personal)) if p is not None
    ]
    captions = (["video"] if real else []) + [c if c != "none" else "generic" for c, _ in panels]
    view = RigView(rig, size)

    def frames():
        rendered = [list(view.frames(p[:n])) for _, p in panels]
        for i in range(n):
            yield side_by_side(([real[i]] if real else []) + [r[i] for r in rendered], captions)

    try:
        write_video(path, frames(), n, fps, audio=str(audio), progress=False)
    finally:
        view.close()
