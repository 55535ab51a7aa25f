"""The synthetic talking-face corpus: espeak-ng speech with ground-truth ARKit animation.

Each speaker is an espeak voice (variant, pitch, pitch range, rate) with an expression style and a
pose style; each clip is a generated sentence, its 16 kHz audio and its 25 fps animation built
from espeak's phoneme timing (see `animation`). Held-out speakers have a reference set (the first
clips, about 20 s) and separate test clips; training speakers keep a few clips for validation.

Everything is drawn from `numpy.random.default_rng([seed, speaker, clip])`, so the corpus is the
same whatever the number of workers or the order they finish in, and an interrupted run resumes
where it stopped (a clip is done when its motion file exists; both files are written atomically).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from adamesh.audio import SAMPLE_RATE, frame_count, resample
from adamesh.data.synthetic.animation import (
    ExpressionStyle,
    Phone,
    PoseStyle,
    animate,
    draw_style,
    style_dict,
)
from adamesh.data.synthetic.espeak import Espeak, Voice
from adamesh.data.synthetic.text import make_sentence
from adamesh.errors import AdameshError
from adamesh.fileio import atomic_output, remove_partials, worker_pool
from adamesh.motion import ARKIT, Motion, load_motion, save_motion
from adamesh.phones import espeak_phone

FORMAT = "adamesh.corpus"
VERSION = 6  # 2: breathing before phrases, longer lead silences; 3: the mouth leads the sound by 40 ms;
# 4: long pauses before or after some sentences; 6: heads drift, shift posture and turn on stress
# (speech and faces as in 4; 5 was an experiment not kept)
# Human-sounding espeak variants (no robots, whisper or croak) and English accents.
VARIANTS = (
    "m1",
    "f1",
    "m2",
    "f2",
    "m3",
    "f3",
    "m4",
    "f4",
    "m5",
    "f5",
    "m6",
    "m7",
    "Alex",
    "Annie",
    "Andy",
    "belinda",
    "edward",
    "linda",
    "iven",
    "steph",
    "norbert",
    "quincy",
    "travis",
    "max",
    "rob",
    "paul",
    "michel",
    "zac",
    "boris",
    "m8",
)
ACCENTS = ("en-us", "en-us", "en-us-nyc", "en", "en-us", "en-gb-scotland")


@dataclass(frozen=True)
class CorpusConfig:
    speakers: int = 48
    sentences: int = 50  # per speaker
    heldout: int = 8  # speakers kept out of training
    seed: int = 0
    fps: float = 25.0
    min_seconds: float = 2.0
    max_seconds: float = 6.0
    reference_seconds: float = 20.0  # reference set of each held-out speaker (subsets give 2.5-20 s)
    val_fraction: float = 0.05  # clips of each training speaker kept for validation
    # Clips with a pause of up to `long_pause_seconds` before or after the sentence, beyond
    # max_seconds: real recordings pause for seconds, and a model that never heard a window
    # without speech keeps the mouth half open through one.
    long_pause_fraction: float = 0.25
    long_pause_seconds: float = 6.0

    def check(self) -> None:
        if self.speakers < 2 or not 1 <= self.heldout < self.speakers:
            raise AdameshError("a corpus needs at least 2 speakers and 1 <= held-out < speakers")
        if self.sentences < 2:
            raise AdameshError("a corpus needs at least 2 sentences per speaker")


@dataclass(frozen=True)
class Speaker:
    id: str
    split: str  # "train" or "heldout"
    voice: Voice
    expression: ExpressionStyle
    pose: PoseStyle

    def describe(self) -> dict:
        return {
            "split": self.split,
            "voice": asdict(self.voice),
            "expression_style": style_dict(self.expression),
            "pose_style": style_dict(self.pose),
        }


def make_speakers(cfg: CorpusConfig) -> list[Speaker]:
    step = cfg.speakers / cfg.heldout
    heldout = {int(step * (k + 1)) - 1 for k in range(cfg.heldout)}  # spread over the list
    speakers = []
    for i in range(cfg.speakers):
        rng = np.random.default_rng([cfg.seed, i, 1_000_003])
        accent = ACCENTS[(i + i // len(VARIANTS)) % len(ACCENTS)]
        voice = Voice(
            name=f"{accent}+{VARIANTS[i % len(VARIANTS)]}",
            rate=int(rng.integers(140, 200)),
            pitch=int(rng.integers(25, 76)),
            range=int(rng.integers(20, 81)),
        )
        speakers.append(
            Speaker(
                f"spk{i:03d}",
                "heldout" if i in heldout else "train",
                voice,
                draw_style(ExpressionStyle, rng),
                draw_style(PoseStyle, rng),
            )
        )
    return speakers


def _phones(phonemes: list[tuple[str, int, int]], n_samples: int, rate: int, lead: float) -> list[Phone]:
    """espeak phoneme events to ARPAbet segments in seconds, silences merged, shifted by `lead`."""
    phones: list[Phone] = []
    for k, (mnemonic, start, word) in enumerate(phonemes):
        phone, stress = espeak_phone(mnemonic)
        end = phonemes[k + 1][1] if k + 1 < len(phonemes) else n_samples
        if end <= start:
            continue
        if phone is None or (phones and phone == "SIL" and phones[-1].phone == "SIL"):
            if phones:
                phones[-1].end = lead + end / rate
            continue
        phones.append(Phone(phone, lead + start / rate, lead + end / rate, stress, word))
    return phones


def synthesize_clip(
    speaker: Speaker, index: int, cfg: CorpusConfig, speaker_index: int
) -> tuple[np.ndarray, Motion]:
    """The audio (16 kHz float32) and ground-truth motion of one clip; deterministic."""
    rng = np.random.default_rng([cfg.seed, speaker_index, index])
    engine = Espeak.instance()
    for _ in range(50):  # draw sentences until one has a duration in range
        sentence = make_sentence(rng, min_words=7)
        syn = engine.synthesize(sentence.text, speaker.voice)
        speech = len(syn.audio) / syn.sample_rate
        if cfg.min_seconds - 0.3 <= speech <= cfg.max_seconds - 0.7:
            break
    # the lead silence is long enough, most of the time, to show the breath before speech; the clip
    # still stays within max_seconds
    lead, tail = rng.uniform(0.15, 0.8), rng.uniform(0.2, 0.5)
    lead = max(0.15, min(lead, cfg.max_seconds - tail - speech))
    pause_rng = np.random.default_rng(
        [cfg.seed, speaker_index, index, 4]
    )  # the other clips stay as they were
    if pause_rng.random() < cfg.long_pause_fraction:
        pause = pause_rng.uniform(1.0, cfg.long_pause_seconds)
        if pause_rng.random() < 0.5:
            lead += pause
        else:
            tail += pause
    audio = resample(syn.audio, syn.sample_rate, SAMPLE_RATE)
    audio = np.concatenate(
        [np.zeros(int(lead * SAMPLE_RATE), np.float32), audio, np.zeros(int(tail * SAMPLE_RATE), np.float32)]
    )
    speech_end = lead + len(syn.audio) / syn.sample_rate
    phones = [Phone("SIL", 0.0, lead)] + _phones(syn.phonemes, len(syn.audio), syn.sample_rate, lead)
    if len(phones) > 1:  # espeak's first event can come a few ms into its audio: silence until then
        if phones[1].phone == "SIL":
            phones[0].end = phones.pop(1).end
        else:
            phones[0].end = phones[1].start
    if phones[-1].phone == "SIL":
        phones[-1].end = len(audio) / SAMPLE_RATE
    else:
        phones.append(Phone("SIL", speech_end, len(audio) / SAMPLE_RATE))
    n = frame_count(len(audio), SAMPLE_RATE, cfg.fps)
    params = animate(phones, n, cfg.fps, speaker.expression, speaker.pose, sentence.kind, rng)
    meta = {
        "producer": "adamesh corpus",
        "speaker": speaker.id,
        "text": sentence.text,
        "kind": sentence.kind,
        "phones": [[p.phone, round(p.start, 4), round(p.end, 4), p.stress] for p in phones],
    }
    return audio, Motion(params, ARKIT, cfg.fps, meta=meta)


# Workers: each process builds the speaker list once and keeps its own espeak instance.
_WORKER: dict = {}


def _init_worker(cfg: CorpusConfig, out: str) -> None:
    _WORKER.update(cfg=cfg, out=Path(out), speakers=make_speakers(cfg))


def _clip_paths(out: Path, speaker: str, index: int) -> tuple[Path, Path]:
    stem = out / "clips" / speaker / f"{speaker}_{index:03d}"
    return stem.with_suffix(".wav"), stem.with_suffix(".npz")


def _make_clip(task: tuple[int, int]) -> dict:
    s, index = task
    cfg, out, speaker = _WORKER["cfg"], _WORKER["out"], _WORKER["speakers"][s]
    wav, npz = _clip_paths(out, speaker.id, index)
    if not npz.is_file():
        audio, motion = synthesize_clip(speaker, index, cfg, s)
        wav.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(wav) as tmp:
            sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16")
        motion.audio = wav
        save_motion(motion, npz)
    else:  # made by an earlier, interrupted run
        motion = load_motion(npz)
    return {
        "id": npz.stem,
        "speaker": speaker.id,
        "index": index,
        "audio": str(wav.relative_to(out)),
        "motion": str(npz.relative_to(out)),
        "seconds": round(motion.duration, 3),
        "text": motion.meta["text"],
        "kind": motion.meta["kind"],
    }


def _roles(clips: list[dict], speaker: Speaker, cfg: CorpusConfig) -> None:
    if speaker.split == "heldout":
        total = 0.0
        for k, c in enumerate(clips):  # the first clips form the reference set, the rest (one at least) test
            c["role"] = "reference" if total < cfg.reference_seconds and k < len(clips) - 1 else "test"
            total += c["seconds"]
    else:
        n_val = max(1, round(cfg.val_fraction * len(clips)))
        for k, c in enumerate(clips):
            c["role"] = "val" if k >= len(clips) - n_val else "train"


def _make_clips(cfg: CorpusConfig, out: Path, workers: int | None, progress: bool) -> list[dict]:
    tasks = [(s, k) for s in range(cfg.speakers) for k in range(cfg.sentences)]
    results = []
    with (
        tqdm(total=len(tasks), desc="corpus", unit="clip", disable=not progress) as bar,
        worker_pool(workers, _init_worker, (cfg, str(out))) as pool,
    ):
        for r in pool.imap_unordered(_make_clip, tasks, chunksize=4):
            results.append(r)
            bar.update()
    return results


def _remove_unfinished(out: Path, made_folder: bool) -> None:
    """A run that failed before its first clip: corpus.json (the resume key) and half-written
    clips would only be litter."""
    (out / "corpus.json").unlink(missing_ok=True)
    for wav in (out / "clips").glob("spk*/spk*.wav"):
        wav.unlink()
    for folder in [*(out / "clips").glob("spk*"), out / "clips"] + ([out] if made_folder else []):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def generate_corpus(
    out: str | os.PathLike,
    cfg: CorpusConfig = CorpusConfig(),
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Write (or finish writing) the corpus in `out`; returns the manifest."""
    cfg.check()
    out = Path(out)
    made_folder = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    settings = out / "corpus.json"
    wanted = {"format": FORMAT, "version": VERSION, "config": asdict(cfg)}
    if settings.is_file():
        if json.loads(settings.read_text()) != wanted:
            raise AdameshError(
                f"{out} holds a corpus made with other settings; "
                "give a new --out folder or delete the old one"
            )
    else:
        with atomic_output(settings) as tmp:
            tmp.write_text(json.dumps(wanted, indent=1))
    workers = workers or os.cpu_count() or 1
    t0 = time.perf_counter()
    try:
        results = _make_clips(cfg, out, workers, progress)
    except BaseException:  # the pool's workers have stopped: what they were writing is litter
        for folder in (out / "clips").glob("spk*"):
            remove_partials(folder)
        if not any((out / "clips").glob("spk*/spk*.npz")):
            _remove_unfinished(out, made_folder)
        raise
    speakers = make_speakers(cfg)
    results.sort(key=lambda r: r["id"])
    by_speaker: dict[str, list[dict]] = {}
    for r in results:
        by_speaker.setdefault(r["speaker"], []).append(r)
    for sp in speakers:
        _roles(by_speaker[sp.id], sp, cfg)
    seconds = sum(r["seconds"] for r in results)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "config": asdict(cfg),
        "fps": cfg.fps,
        "sample_rate": SAMPLE_RATE,
        "space": "arkit",
        "speakers": {sp.id: sp.describe() for sp in speakers},
        "clips": [{k: v for k, v in r.items() if k != "index"} for r in results],
        "stats": {
            "clips": len(results),
            "hours": round(seconds / 3600, 3),
            "generation_seconds": round(time.perf_counter() - t0, 1),
            "workers": workers,
        },
    }
    with atomic_output(out / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return manifest


def timing_sentences(clips: int = 8) -> list[np.ndarray]:
    """16 kHz speech of the lip-timing term of adaptation (`adapt.timing`): the first sentence of
    each of the first `clips` training speakers of the default corpus, one voice each."""
    cfg = CorpusConfig()
    speakers = [(i, s) for i, s in enumerate(make_speakers(cfg)) if s.split == "train"][:clips]
    return [synthesize_clip(s, 0, cfg, i)[0] for i, s in speakers]


def write_timing_speech(path: str | os.PathLike | None = None) -> Path:
    """Write `timing_sentences()` where adaptation reads them (by default the file shipped in the
    package), after a change to the corpus generator."""
    from adamesh.adapt.timing import TIMING_SPEECH

    path = Path(path or TIMING_SPEECH)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, *timing_sentences())
    return path


def held_out_speaker(speaker_id: str):
    """(the default corpus's config, the held-out speaker `speaker_id`, its index)."""
    cfg = CorpusConfig()
    speakers = make_speakers(cfg)
    index = next((i for i, s in enumerate(speakers) if s.id == speaker_id), None)
    if index is None or speakers[index].split != "heldout":
        raise AdameshError(f"{speaker_id} is not a held-out speaker of the default corpus")
    return cfg, speakers[index], index


def synthetic_reference(folder: Path, seconds: float, speaker_id: str) -> list[Motion]:
    """The first clips of a held-out speaker of the default corpus, `seconds` at least, as motions
    with their speech written to `folder` (what the shipped model never saw)."""
    cfg, speaker, index = held_out_speaker(speaker_id)
    folder.mkdir(parents=True, exist_ok=True)
    reference, total, k = [], 0.0, 0
    while total < seconds:
        audio, motion = synthesize_clip(speaker, k, cfg, index)
        wav = folder / f"{speaker_id}_reference_{k:02d}.wav"
        sf.write(wav, audio, SAMPLE_RATE, subtype="PCM_16")
        motion.audio = str(wav)
        reference.append(motion)
        total += motion.duration
        k += 1
    return reference
