"""`adamesh bench frontends` and `bench probe`: how much of the speech each front-end keeps, on
real voices, before any training."""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from adamesh.audio import SAMPLE_RATE, frame_count, load_audio
from adamesh.clips import scan_clips
from adamesh.data.augment import degrade
from adamesh.data.dataset import ClipDataset
from adamesh.data.synthetic.animation import viseme_of
from adamesh.data.synthetic.corpus import CorpusConfig, generate_corpus
from adamesh.errors import AdameshError
from adamesh.eval.lipsync import speaker_clips, tracked_opening
from adamesh.eval.metrics import pearson
from adamesh.frontends import make_frontend
from adamesh.frontends.base import frame_times, nearest_rows
from adamesh.frontends.mel import ANALYSIS_RATE
from adamesh.frontends.phonetic import align_phones
from adamesh.motion import ARKIT, lip_gap
from adamesh.phones import PHONE_INDEX, PHONES


def _nmi(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised mutual information (arithmetic mean of the entropies) of two labelings."""
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1)
    p = joint / joint.sum()
    pa, pb = p.sum(1), p.sum(0)
    nz = p > 0
    mi = (p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum()
    ha, hb = -(pa[pa > 0] * np.log(pa[pa > 0])).sum(), -(pb[pb > 0] * np.log(pb[pb > 0])).sum()
    return float(2 * mi / (ha + hb)) if ha + hb > 0 else 0.0


def bench_frontends(
    speech_dir: str,
    corpus: str | None = None,
    frontends=("phonetic", "mel"),
    ssl_models: dict | None = None,
    units: int = 128,
    seed: int = 0,
    workers=None,
    random_ssl: bool = False,
) -> list[dict]:
    """How well each front-end's units follow phones on real speech, and how fast it runs.

    The unit-to-phone mapping (each unit's most frequent phone) is learned on synthetic corpus clips,
    where the phones are known from espeak, then applied to the real LibriVox clips and compared,
    frame by frame at 25 fps, with a forced alignment of their transcripts; k-means units (mel,
    hubert, wav2vec2) are fitted on the same corpus clips. NMI needs no mapping.
    """
    speech = Path(speech_dir)
    transcripts = {}
    for f in sorted(speech.rglob("transcription")) + sorted(speech.rglob("*.txt")):
        for line in f.read_text().splitlines():
            m = re.match(r"\s*(?:<s>)?\s*(.*?)\s*(?:</s>)?\s*\(([^)]+)\)\s*$", line)
            if m:
                transcripts[m.group(2)] = m.group(1)
    wavs = sorted(p for p in speech.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".mp3", ".ogg"))
    if not wavs:
        raise AdameshError(f"no speech files (wav, flac, mp3, ogg) under {speech}; pass --speech DIR")
    fps = 25.0
    real = []  # (path, audio, reference phone per frame or None)
    for w in wavs:
        audio, _ = load_audio(w)
        ref = None
        if w.stem in transcripts:
            labels = align_phones(audio, transcripts[w.stem])
            if labels is not None:
                n = frame_count(len(audio), 16000, fps)
                ref = nearest_rows(labels, ANALYSIS_RATE, frame_times(n, fps))
        real.append((w, audio, ref))
    aligned = [r for r in real if r[2] is not None]
    seconds = sum(len(a) for _, a, _ in real) / 16000

    with tempfile.TemporaryDirectory() as tmp:
        if corpus is None:
            corpus = os.path.join(tmp, "corpus")
            generate_corpus(
                corpus,
                CorpusConfig(speakers=12, sentences=20, heldout=2, seed=seed),
                workers=workers,
                progress=False,
            )
        specs = [(name, {}) for name in frontends] + [
            (k, {"model_dir": d}) for k, d in (ssl_models or {}).items()
        ]
        if random_ssl:  # the paper's architecture at base size, for its speed on this machine
            from transformers import HubertConfig, HubertModel

            HubertModel(HubertConfig()).save_pretrained(os.path.join(tmp, "hubert-base-random"))
            specs.append(("hubert", {"model_dir": os.path.join(tmp, "hubert-base-random")}))
        rows = []
        for name, opts in specs:
            fe = make_frontend(name, **opts)
            fit = ClipDataset(corpus, roles=("train",), frontend=fe, workers=workers, progress=False)
            test = ClipDataset(corpus, roles=("val", "test"), frontend=fe, workers=workers, progress=False)
            if name != "phonetic":
                fe.fit_units([c.features for c in fit.clips], units, seed)

            def corpus_labels(ds):
                u, p = [], []
                for c in ds.clips:
                    t = frame_times(c.motion.n_frames, fps)
                    phones = c.motion.meta["phones"]
                    ends = np.array([ph[2] for ph in phones])
                    idx = np.minimum(np.searchsorted(ends, t), len(phones) - 1)
                    p.append(np.array([PHONE_INDEX[phones[i][0]] for i in idx]))
                    u.append(fe.assign_units(c.features.features) if name != "phonetic" else c.features.units)  # noqa: B023 (called in this iteration)
                return np.concatenate(u), np.concatenate(p)

            u_fit, p_fit = corpus_labels(fit)
            n_units = int(max(u_fit.max(), fe.n_units - 1)) + 1
            counts = np.zeros((n_units, len(PHONES)))
            np.add.at(counts, (u_fit, p_fit), 1)
            mapping = counts.argmax(1)
            u_syn, p_syn = corpus_labels(test)
            t0 = time.perf_counter()  # features of the real clips are computed afresh, not cached
            feats = [fe(a, fps) for _, a, _ in real]
            rtf = (time.perf_counter() - t0) / seconds
            u_real = np.concatenate([f.units for f, r in zip(feats, real) if r[2] is not None] or [[0]])
            p_real = np.concatenate([r[2] for r in aligned] or [[0]])
            vis = np.vectorize(lambda i: viseme_of(PHONES[i]))
            rows.append(
                {
                    "frontend": name
                    + (" (random init)" if "random" in str(opts.get("model_dir", "")) else ""),
                    "dim": fe.dim,
                    "units": n_units,
                    "phone_acc_synthetic": float((mapping[u_syn] == p_syn).mean()),
                    "phone_acc_real": float((mapping[u_real] == p_real).mean()),
                    "viseme_acc_real": float((vis(mapping[u_real]) == vis(p_real)).mean()),
                    "nmi_real": _nmi(u_real, p_real),
                    "rtf": rtf,
                }
            )
    if not aligned:
        print("  note: no clip had a transcript that could be aligned, so the 'real' columns are empty")
        for r in rows:
            r.update(phone_acc_real=float("nan"), viseme_acc_real=float("nan"), nmi_real=float("nan"))
    sil = float((p_real == 0).mean()) if aligned else float("nan")
    print(
        f"front-end benchmark: {len(real)} real clips ({seconds:.1f} s) from {speech}, "
        f"{len(aligned)} with forced-aligned transcripts ({len(p_real) if aligned else 0} frames at {fps:g} fps); "
        f"units mapped to phones on synthetic clips; {os.cpu_count()} CPU cores"
    )
    print(f"  chance: always SIL = {sil:.3f} phone accuracy on the real clips")
    print(
        f"  {'front-end':<22s} {'dim':>4s} {'units':>5s} {'phone acc (synthetic)':>22s} "
        f"{'phone acc (real)':>17s} {'viseme acc (real)':>18s} {'NMI (real)':>11s} {'RTF':>7s}"
    )
    for r in rows:
        print(
            f"  {r['frontend']:<22s} {r['dim']:>4d} {r['units']:>5d} {r['phone_acc_synthetic']:>22.3f} "
            f"{r['phone_acc_real']:>17.3f} {r['viseme_acc_real']:>18.3f} {r['nmi_real']:>11.3f} {r['rtf']:>7.4f}"
        )
    return rows


def parse_frontend_spec(spec: str) -> tuple[str, dict]:
    """'whisper:model=base,compute_type=float32' -> ('whisper', {'model': 'base', 'compute_type': 'float32'})."""
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise AdameshError(f"front-end option {item!r} in {spec!r} is not KEY=VALUE")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                pass
        options[key] = {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value
    return name, options


def bench_probe(
    frontends: list[str],
    corpus: str,
    videos: list[str],
    speakers: int = 12,
    context: int = 3,
    conditions=("clean",),
    log=print,
) -> list[dict]:
    """How much lip information each speech front-end carries for real voices, before any training
    choice: a ridge regression from its features (+-`context` frames) to the synthetic corpus's lip
    gap (jawOpen - mouthClose), fitted on the training clips of the first `speakers` speakers (the
    penalty chosen on the corpus's validation clips), then r of its prediction against the mouth
    opening tracked in real videos, as in `bench lipsync`. Front-ends as 'name:key=value,...'."""
    channels = ARKIT.channels[: ARKIT.n_expression]
    infos, _ = scan_clips(corpus)
    chosen = sorted({c.speaker for c in infos if c.role == "train"})[:speakers]
    clips = speaker_clips(videos)
    tracked = [tracked_opening(c["path"]) for c in clips]
    audio = [load_audio(c["path"], SAMPLE_RATE)[0] for c in clips]
    seconds = sum(len(a) for a in audio) / SAMPLE_RATE

    def stack(f):
        pad = np.pad(f, ((context, context), (0, 0)), mode="edge")
        return np.concatenate([pad[k : k + len(f)] for k in range(2 * context + 1)], axis=1)

    rows = []
    for spec in frontends:
        name, options = parse_frontend_spec(spec)
        fe = make_frontend(name, **options)
        sets = [
            ClipDataset(corpus, roles=(role,), speakers=chosen, frontend=fe, progress=False)
            for role in ("train", "val")
        ]
        xs = [np.concatenate([stack(c.features.features) for c in ds.clips]) for ds in sets]
        ys = [
            np.concatenate([lip_gap(c.motion.params[:, : ARKIT.n_expression], channels) for c in ds.clips])
            for ds in sets
        ]
        mean, std = xs[0].mean(0), xs[0].std(0) + 1e-6
        x_fit, x_val = (xs[0] - mean) / std, (xs[1] - mean) / std
        gram, rhs = x_fit.T @ x_fit, x_fit.T @ (ys[0] - ys[0].mean())
        best = None
        for alpha in (1e0, 1e1, 1e2, 1e3, 1e4, 1e5):
            w = np.linalg.solve(gram + alpha * np.eye(len(gram)), rhs)
            r = pearson(x_val @ w, ys[1])
            if best is None or r > best[0]:
                best = (r, alpha, w)
        val_r, alpha, w = best
        row = {"frontend": spec, "dim": fe.dim, "alpha": alpha, "corpus_val_r": val_r, "r": {}}
        t0 = time.perf_counter()
        for condition in conditions:
            per_speaker = {}
            for c, (opening, valid), a in zip(clips, tracked, audio):
                f = fe(degrade(a, condition, seed=0), 25.0, n_frames=len(opening)).features
                pred = ((stack(f) - mean) / std) @ w
                per_speaker.setdefault((c["group"], c["speaker"]), []).append(
                    pearson(pred[valid], opening[valid])
                )
            means = {k: float(np.mean(v)) for k, v in per_speaker.items()}
            row["r"][condition] = {
                g: float(np.mean([v for (gg, _), v in means.items() if gg == g]))
                for g in sorted({g for g, _ in means})
            }
            row.setdefault("speakers", {})[condition] = {f"{g}/{s}": v for (g, s), v in means.items()}
        row["realtime"] = seconds * len(conditions) / (time.perf_counter() - t0)
        rows.append(row)
        log(
            f"{spec}: corpus validation r {val_r:.3f} (alpha {alpha:g}); real: "
            + "; ".join(
                f"{cond} " + ", ".join(f"{g} {v:.3f}" for g, v in r.items()) for cond, r in row["r"].items()
            )
        )
    groups = sorted({g for r in rows for g in r["r"][conditions[0]]})
    log(
        "| front-end | corpus val r | "
        + " | ".join(f"{g} r ({c})" for c in conditions for g in groups)
        + " | x real time |"
    )
    log("|---|---|" + "---|" * (len(groups) * len(conditions)) + "---|")
    for r in rows:
        log(
            f"| {r['frontend']} | {r['corpus_val_r']:.3f} | "
            + " | ".join(f"{r['r'][c][g]:.3f}" for c in conditions for g in groups)
            + f" | {r['realtime']:.0f}x |"
        )
    return rows
