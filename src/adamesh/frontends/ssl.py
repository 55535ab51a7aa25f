"""HuBERT / wav2vec2 features (the paper's setting) from a transformers model in a local folder.

The model is never downloaded: the user gives a folder holding config.json and the weights (one
saved with `save_pretrained`, or a downloaded Hugging Face snapshot). Long files are encoded in
windows with extra context on both sides, stitched on the 50 Hz frame grid by sample offsets, then
interpolated to the motion rate at each 50 Hz frame's receptive-field centre.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
from itertools import accumulate
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from adamesh.audio import SAMPLE_RATE
from adamesh.errors import AdameshError
from adamesh.fileio import file_sha256
from adamesh.frontends.base import Features, FrontEnd, frame_times, sample_rows

os.environ.setdefault(
    "HF_HUB_OFFLINE", "1"
)  # else a missing file makes from_pretrained retry online for ~20 s
from transformers import AutoConfig, HubertModel, Wav2Vec2Model

MODELS = {"hubert": HubertModel, "wav2vec2": Wav2Vec2Model}
WEIGHT_PATTERNS = ("model*.safetensors", "pytorch_model*.bin")


class SSLFrontEnd(FrontEnd):
    """Hidden states of one layer of a HuBERT or wav2vec2 model; units are k-means clusters of them."""

    def __init__(
        self,
        kind: str = "hubert",
        model_dir: str | os.PathLike | None = None,
        layer: int = -1,
        window_s: float = 20.0,
        context_s: float = 1.0,
        device: str = "cpu",
    ):
        if kind not in MODELS:
            raise AdameshError(
                f"unknown self-supervised model kind {kind!r}; choose one of {', '.join(MODELS)}"
            )
        hint = (
            f"the {kind} front-end needs a local model folder (config.json + weights), e.g. one saved "
            "with save_pretrained; pass --frontend-model DIR"
        )
        if model_dir is None:
            raise AdameshError(hint)
        self.name, self.model_dir = kind, Path(model_dir).expanduser().resolve()
        self.weight_files = sorted({p for pat in WEIGHT_PATTERNS for p in self.model_dir.glob(pat)})
        if not (self.model_dir / "config.json").is_file() or not self.weight_files:
            raise AdameshError(f"{self.model_dir} is not a model folder: {hint}")
        try:
            cfg = AutoConfig.from_pretrained(self.model_dir, local_files_only=True)
        except (OSError, ValueError, KeyError) as e:
            raise AdameshError(f"cannot read the model config in {self.model_dir}: {e}") from None
        if cfg.model_type != kind:
            raise AdameshError(
                f"{self.model_dir} holds a {cfg.model_type!r} model, not a {kind!r} one; "
                "choose the front-end that matches the model"
            )
        n = cfg.num_hidden_layers
        if not -(n + 1) <= layer <= n:
            raise AdameshError(
                f"layer {layer} does not exist in this {n}-layer {kind} model: choose from "
                f"{-(n + 1)} to {n} (0 is the CNN/projection output, -1 the last layer)"
            )
        if window_s <= 0 or context_s < 0:
            raise AdameshError("window_s must be positive and context_s not negative")
        self.layer, self.window_s, self.context_s, self.device = (
            int(layer),
            float(window_s),
            float(context_s),
            device,
        )
        self.dim = cfg.hidden_size
        # Conv stack geometry: 50 Hz frame i sees samples [i * stride, i * stride + field).
        strides = [1, *accumulate(cfg.conv_stride, operator.mul)]
        self.stride = strides[-1]
        self.field = 1 + sum((k - 1) * s for k, s in zip(cfg.conv_kernel, strides))
        self.rate = SAMPLE_RATE / self.stride
        self.offset = self.field / 2 / SAMPLE_RATE  # centre of frame 0's receptive field (12.5 ms)
        self.normalize = self._wants_normalized_input(cfg)
        self._model = None

    def _wants_normalized_input(self, cfg) -> bool:
        pre = self.model_dir / "preprocessor_config.json"
        if not pre.is_file():
            # No preprocessor config: follow fairseq's convention, where the large models (layer-norm
            # conv stack) were trained on normalised audio and the base ones (group norm) on raw audio.
            return cfg.feat_extract_norm == "layer"
        try:
            spec = json.loads(pre.read_text())
        except (OSError, ValueError) as e:
            raise AdameshError(f"cannot read {pre}: {e}") from None
        if spec.get("sampling_rate", SAMPLE_RATE) != SAMPLE_RATE:
            raise AdameshError(
                f"{pre} says the model expects {spec['sampling_rate']} Hz audio; "
                f"adamesh feeds {SAMPLE_RATE} Hz"
            )
        return bool(spec.get("do_normalize", False))

    def options(self) -> dict:
        return {
            "model_dir": str(self.model_dir),
            "layer": self.layer,
            "window_s": self.window_s,
            "context_s": self.context_s,
        }

    def config(self) -> dict:
        # The model's content, not its folder, names the model: a moved folder keeps its cached features.
        h = hashlib.sha256((self.model_dir / "config.json").read_bytes())
        for p in self.weight_files:
            h.update(file_sha256(p).encode())
        base = {k: v for k, v in super().config().items() if k != "model_dir"}
        return {**base, "kind": self.name, "normalize": self.normalize, "model": h.hexdigest()[:16]}

    @property
    def model(self) -> torch.nn.Module:
        """Loaded on first use, so cached features never need the weights in memory."""
        if self._model is None:
            try:
                model, info = MODELS[self.name].from_pretrained(
                    self.model_dir, local_files_only=True, dtype=torch.float32, output_loading_info=True
                )
            except (OSError, ValueError, RuntimeError, SafetensorError) as e:
                raise AdameshError(f"cannot load the {self.name} model in {self.model_dir}: {e}") from None
            # Missing weights would be silently random; the mask embedding is only used in training.
            missing = [k for k in info["missing_keys"] if "masked_spec_embed" not in k]
            if missing:
                raise AdameshError(
                    f"the weights in {self.model_dir} lack {len(missing)} tensors of a "
                    f"{self.name} model (e.g. {missing[0]}); is it the right folder?"
                )
            self._model = model.to(self.device).eval()
        return self._model

    def compute(self, audio: np.ndarray, n_frames: int, fps: float) -> Features:
        x = np.asarray(audio, np.float32)
        if self.normalize and len(x):  # per utterance, as the model's feature extractor does
            x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        x = np.pad(x, (0, max(0, self.field - len(x))))  # shorter than one receptive field: one frame
        rows = self.encode(x)
        values = sample_rows(rows, self.rate, frame_times(n_frames, fps), offset=self.offset)
        return Features(values, np.zeros(n_frames, np.int64), float(fps))

    def encode(self, x: np.ndarray) -> np.ndarray:
        """50 Hz rows of the chosen layer for samples `x` (at least one receptive field long).

        Windows start on the frame grid, so window w's frames are global frames start // stride + j
        and the rows concatenate to exactly the frame count of a single pass, however long the file.
        """
        s = self.stride
        total = (len(x) - self.field) // s + 1
        window = max(1, round(self.window_s * SAMPLE_RATE / s)) * s
        # Whole frames of context, and at least field - stride samples so a window's last frame is complete.
        context = math.ceil(max(self.context_s * SAMPLE_RATE, self.field - s) / s) * s
        rows = []
        for start in range(0, total * s, window):
            a, b = max(0, start - context), min(len(x), start + window + context)
            first = (start - a) // s
            rows.append(self._forward(x[a:b])[first : first + min(window // s, total - start // s)])
        rows = np.concatenate(rows)
        assert len(rows) == total
        return rows

    def _forward(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.model(
                torch.from_numpy(np.ascontiguousarray(x))[None].to(self.device), output_hidden_states=True
            )
        return out.hidden_states[self.layer][0].float().cpu().numpy()
