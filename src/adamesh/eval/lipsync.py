"""`adamesh bench lipsync`: lip sync on real video, the tracked mouth opening as the truth."""

from __future__ import annotations

import csv
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from adamesh.api import WEIGHTS
from adamesh.audio import SAMPLE_RATE, energy_envelope, load_audio
from adamesh.data.augment import degrade
from adamesh.eval.metrics import closure_scores, pearson, speech_mask
from adamesh.fileio import atomic_output, cache_dir
from adamesh.frontends import FeatureCache
from adamesh.models.checkpoint import load_model
from adamesh.motion import finish_expression, get_space, lip_gap
from adamesh.tracking import track_mouth_opening, video_files


def bench_lipsync(
    models: list[str] | None, videos: list[str], conditions=("clean",), out: str | None = None, log=print
) -> dict:
    """Lip sync from audio alone against real video: for each clip, Pearson r between the mouth
    opening a model predicts from the clip's audio (ARKit lip gap jawOpen - mouthClose, generic
    style, as an animation delivers it: within bounds, lips closed no further than touching) and the
    mouth opening MediaPipe Face Mesh tracks in its frames (inner-lip distance over
    eye distance). The audio's loudness in dB is the baseline. One column per model; clips grouped
    by speaker (a folder's clips.csv names them; otherwise each clip is its own speaker), every
    speaker's mean beside the baseline's. `conditions` also degrades the audio (audio.CONDITIONS:
    telephone band, noise at 10 dB SNR) before the models hear it."""
    clips = speaker_clips(videos)
    loaded = []
    for m in models or [str(WEIGHTS / "expression")]:
        net, frontend, config = load_model(m, kind="expression")
        name = f"{Path(m).name if Path(m).name != 'expression' else Path(m).parent.name} ({frontend.name})"
        loaded.append((name, net, frontend, get_space(config["data"]["space"])))
    names = ["loudness (dB)"] + [name for name, *_ in loaded]
    rows, compute, seconds = [], {name: 0.0 for name, *_ in loaded}, 0.0
    for clip in clips:
        opening, valid = tracked_opening(clip["path"])
        audio16, _ = load_audio(clip["path"], SAMPLE_RATE)
        seconds += len(audio16) / SAMPLE_RATE
        speech = speech_mask(energy_envelope(audio16, SAMPLE_RATE, db=True)[: len(opening)]) & valid
        for condition in conditions:
            heard = degrade(audio16, condition, seed=0)
            loudness = energy_envelope(heard, SAMPLE_RATE, db=True)[: len(opening)]
            row = {
                "clip": clip["path"].name,
                "group": clip["group"],
                "speaker": clip["speaker"],
                "condition": condition,
                "seconds": round(len(audio16) / SAMPLE_RATE, 2),
                "r": {"loudness (dB)": pearson(loudness[valid], opening[valid])},
                "late_ms": {"loudness (dB)": _best_lag(loudness, opening, valid) * 40},
                # closures need a level that is 0 at a seal: the linear loudness, not its dB
                "closures": {
                    "loudness (dB)": closure_scores(
                        opening, energy_envelope(heard, SAMPLE_RATE)[: len(opening)], speech
                    )
                },
            }
            for name, net, frontend, space in loaded:
                t0 = time.perf_counter()
                gap = _predicted_gap(heard, net, frontend, space, len(opening))
                if condition == conditions[0]:
                    compute[name] += time.perf_counter() - t0
                row["r"][name] = pearson(gap[valid], opening[valid])
                row["late_ms"][name] = _best_lag(gap, opening, valid) * 40
                row["closures"][name] = closure_scores(opening, gap, speech)
            if condition == conditions[0]:
                row["pause"] = {
                    name: _mouth_in_pauses(heard, net, frontend, space)
                    for name, net, frontend, space in loaded
                }
            rows.append(row)
            log(
                f"{clip['path'].name} ({condition}): "
                + ", ".join(f"{k} r={v:.3f}" for k, v in row["r"].items())
            )
    result = {
        "models": names[1:],
        "conditions": list(conditions),
        "clips": rows,
        "speakers": _speaker_means(rows, names),
        "realtime_factor": {k: seconds / max(v, 1e-9) for k, v in compute.items()},
    }
    result["summary"] = _lipsync_summary(result, names)
    table = _lipsync_markdown(result, names)
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        with atomic_output(Path(out) / "results.json") as tmp:
            tmp.write_text(json.dumps(result, indent=1))
        with atomic_output(Path(out) / "table.md") as tmp:
            tmp.write_text(table)
    log(table)
    return result


def speaker_clips(folders: list[str]) -> list[dict]:
    """Every video of the folders, with its speaker (from the folder's clips.csv, else its own name)."""
    clips = []
    for folder in folders:
        speakers = {}
        listing = Path(folder) / "clips.csv"
        if listing.is_file():
            with open(listing, newline="") as f:
                speakers = {r["file"]: r["speaker"] for r in csv.DictReader(f)}
        for path in video_files([folder]):
            clips.append(
                {"path": path, "group": Path(folder).name, "speaker": speakers.get(path.name, path.stem)}
            )
    return clips


OPENING_VERSION = 1  # bump when track_mouth_opening changes, so cached openings are measured again


def tracked_opening(path) -> tuple[np.ndarray, np.ndarray]:
    """track_mouth_opening through a cache keyed by the video's content (tracking is the slow part)."""
    entry = cache_dir() / "opening" / f"{FeatureCache.audio_hash(path)}-25-v{OPENING_VERSION}.npz"
    if entry.is_file():
        try:
            with np.load(entry) as z:
                return z["opening"], z["valid"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # a damaged entry is measured again
    opening, valid = track_mouth_opening(path)
    entry.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(entry) as tmp:
        np.savez(tmp, opening=opening, valid=valid)
    return opening, valid


def _speaker_means(rows: list[dict], names: list[str]) -> list[dict]:
    out = {}
    for row in rows:
        key = (row["group"], row["speaker"], row["condition"])
        entry = out.setdefault(
            key,
            {
                "group": key[0],
                "speaker": key[1],
                "condition": key[2],
                "clips": 0,
                "seconds": 0.0,
                "r": {n: [] for n in names},
                "closures": {n: [] for n in names},
            },
        )
        entry["clips"] += 1
        entry["seconds"] = round(entry["seconds"] + row["seconds"], 2)
        for n in names:
            entry["r"][n].append(row["r"][n])
            entry["closures"][n].append(row["closures"][n])
    for entry in out.values():
        entry["r"] = {n: float(np.mean(v)) for n, v in entry["r"].items()}
        entry["closures"] = {n: pooled_closures(v) for n, v in entry["closures"].items()}
    return list(out.values())


def pooled_closures(scores: list[dict]) -> dict:
    """Closure counts of several clips summed, with recall and precision of the sums (None when
    there is nothing to count) and the mean depth of the lips at the true closures."""
    total = {k: sum(s[k] for s in scores) for k in ("closures", "reproduced", "model_closures", "real")}
    depths = [s["depth"] for s in scores if s["depth"] is not None]
    return {
        **total,
        "recall": total["reproduced"] / total["closures"] if total["closures"] else None,
        "precision": total["real"] / total["model_closures"] if total["model_closures"] else None,
        "depth": float(np.mean(depths)) if depths else None,
    }


PAUSE_SECONDS = 5.0


def _room_tone(audio: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """`seconds` of the clip's own background: its quietest 0.4 s, repeated from random points."""
    n = int(0.4 * SAMPLE_RATE)
    if len(audio) <= n:
        return np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    power = np.convolve(audio.astype(np.float64) ** 2, np.ones(n), "valid")[::160]
    quiet = audio[int(np.argmin(power)) * 160 :][:n]
    pieces = [np.roll(quiet, int(rng.integers(n))) for _ in range(int(np.ceil(seconds * SAMPLE_RATE / n)))]
    return np.concatenate(pieces)[: int(seconds * SAMPLE_RATE)].astype(np.float32)


def _predicted_gap(audio: np.ndarray, net, frontend, space, n_frames: int | None = None) -> np.ndarray:
    """The lip gap a model predicts from 16 kHz speech at 25 fps, generic style, as an animation
    delivers it (`motion.finish_expression`)."""
    feats = frontend(audio, 25.0, n_frames=n_frames)
    with torch.no_grad():
        pred = net.predict(torch.from_numpy(feats.features)).numpy()
    return lip_gap(finish_expression(pred, space), space.channels[: space.n_expression])


def _mouth_in_pauses(audio: np.ndarray, net, frontend, space) -> dict:
    """How far the predicted mouth stays open through a pause of PAUSE_SECONDS after the clip,
    of digital silence and of the clip's own room tone: the mean lip gap from 0.5 s into the
    pause over the mean lip gap of the clip itself (0: closed at rest)."""
    out = {}
    for kind in ("silence", "room tone"):
        pause = (
            np.zeros(int(PAUSE_SECONDS * SAMPLE_RATE), np.float32)
            if kind == "silence"
            else _room_tone(audio, PAUSE_SECONDS, np.random.default_rng(0))
        )
        gap = np.maximum(_predicted_gap(np.concatenate([audio, pause]), net, frontend, space), 0.0)
        speech_frames = int(len(audio) / SAMPLE_RATE * 25)
        out[kind] = float(gap[speech_frames + 12 :].mean() / max(gap[:speech_frames].mean(), 1e-6))
    return out


def _lipsync_summary(result: dict, names: list[str]) -> dict:
    """Per condition and group: mean over speakers, and how many speakers beat the loudness baseline."""
    summary = {}
    for sp in result["speakers"]:
        entry = summary.setdefault(sp["condition"], {}).setdefault(
            sp["group"], {"speakers": 0, "r": {}, "beats": {}}
        )
        entry["speakers"] += 1
        for n in names:
            entry["r"].setdefault(n, []).append(sp["r"][n])
            if n != names[0]:
                entry["beats"][n] = entry["beats"].get(n, 0) + int(sp["r"][n] > sp["r"][names[0]])
    for groups in summary.values():
        for entry in groups.values():
            entry["r"] = {n: float(np.mean(v)) for n, v in entry["r"].items()}
    return summary


def _lipsync_markdown(result: dict, names: list[str]) -> str:
    head = "| " + " | ".join(names) + " |"
    first = result["conditions"][0]
    lines = [
        f"Per speaker (mean over the speaker's clips), {first} audio:",
        "",
        "| set | speaker | clips | seconds " + head,
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for sp in result["speakers"]:
        if sp["condition"] == first:
            best = max(names, key=lambda n: sp["r"][n])
            cells = [f"**{sp['r'][n]:.3f}**" if n == best else f"{sp['r'][n]:.3f}" for n in names]
            lines.append(
                f"| {sp['group']} | {sp['speaker']} | {sp['clips']} | {sp['seconds']:.1f} | "
                + " | ".join(cells)
                + " |"
            )

    def fraction(value):
        return "-" if value is None else f"{value:.2f}"

    lines += [
        "",
        f"Lip closures ({first} audio), event by event against the tracked opening (metrics.closure_scores): "
        "recall / precision (true closures; lip gap left at them over the 95th percentile, 0 a seal):",
        "",
        "| set | speaker " + head,
        "|---|---|" + "---|" * len(names),
    ]
    for sp in result["speakers"]:
        if sp["condition"] == first:
            c = sp["closures"]
            lines.append(
                f"| {sp['group']} | {sp['speaker']} | "
                + " | ".join(
                    f"{fraction(c[n]['recall'])} / {fraction(c[n]['precision'])} ({c[n]['closures']}; "
                    f"{fraction(c[n]['depth'])})"
                    for n in names
                )
                + " |"
            )
    for group in sorted({sp["group"] for sp in result["speakers"]}):
        pooled = {
            n: pooled_closures(
                [r["closures"][n] for r in result["clips"] if r["group"] == group and r["condition"] == first]
            )
            for n in names
        }
        lines.append(
            f"| {group} | all clips | "
            + " | ".join(
                f"{fraction(pooled[n]['recall'])} / {fraction(pooled[n]['precision'])} ({pooled[n]['closures']})"
                for n in names
            )
            + " |"
        )
    lines += [
        "",
        "Mean over speakers; in brackets, speakers whose mean beats the loudness baseline:",
        "",
        "| condition | set | speakers " + head,
        "|---|---|---|" + "---|" * len(names),
    ]
    for condition, groups in result["summary"].items():
        for group, e in groups.items():
            cells = [f"{e['r'][names[0]]:.3f}"] + [
                f"{e['r'][n]:.3f} ({e['beats'][n]}/{e['speakers']})" for n in names[1:]
            ]
            lines.append(f"| {condition} | {group} | {e['speakers']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Median shift that would sync best, per set ({first} audio; ms; positive: later than the "
        "tracked mouth; a diagnostic of the clips' audio-video offset and of the model, not used in r):",
        "",
    ]
    for group in sorted({r["group"] for r in result["clips"]}):
        late = {
            n: np.median(
                [r["late_ms"][n] for r in result["clips"] if r["group"] == group and r["condition"] == first]
            )
            for n in names
        }
        lines.append(f"- {group}: " + ", ".join(f"{n} {v:+.0f}" for n, v in late.items()))
    paused = [r for r in result["clips"] if "pause" in r]
    lines += [
        "",
        f"Mouth through a {PAUSE_SECONDS:g} s pause after each clip ({first} audio): mean lip gap from "
        "0.5 s into the pause over the clip's own, mean over clips (0: closed at rest):",
        "",
        "| set | pause | " + " | ".join(names[1:]) + " |",
        "|---|---|" + "---|" * (len(names) - 1),
    ]
    for group in sorted({r["group"] for r in paused}):
        for kind in ("silence", "room tone"):
            lines.append(
                f"| {group} | {kind} | "
                + " | ".join(
                    f"{np.mean([r['pause'][n][kind] for r in paused if r['group'] == group]):.2f}"
                    for n in names[1:]
                )
                + " |"
            )
    lines += [
        "",
        "Speech to expression parameters, front-end included: "
        + ", ".join(f"{k} {v:.0f}x real time" for k, v in result["realtime_factor"].items())
        + ".",
    ]
    return "\n".join(lines) + "\n"


def _best_lag(x: np.ndarray, opening: np.ndarray, valid: np.ndarray, most: int = 5) -> int:
    """The shift in frames (within +-`most`) at which `x` follows the opening best; positive when `x`
    comes late. A diagnostic only: lip sync is scored without any shift."""

    def r(lag):
        a, b, v = (
            (x[lag:], opening[: len(opening) - lag], valid[: len(opening) - lag])
            if lag >= 0
            else (x[:lag], opening[-lag:], valid[-lag:])
        )
        return pearson(a[v], b[v])

    return max(range(-most, most + 1), key=r)
