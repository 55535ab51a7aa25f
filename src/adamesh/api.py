"""The public API: load a model, adapt it to a person, animate speech in their style.

    import adamesh
    model = adamesh.load()                      # the weights shipped with the package
    profile = model.adapt("reference.mp4")      # tracks the video, MoLoRA + pose-style retrieval
    profile.save("me.profile")
    motion = model.animate("speech.wav", profile=profile)
    motion.save("speech.npz")

A model folder holds `expression/` (written by `adamesh train expression`) and `pose/` (written by
`adamesh train pose`); `pack_model` turns one into the small half-precision copy the package ships
in `adamesh/weights`. A `Profile` is one safetensors file: the expression adapter (MoLoRA), the
pose style found by retrieval, statistics of the reference and where everything came from; it
refuses to load onto another model.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import os
import shutil
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from adamesh.adapt.expression import AdaptConfig, Reference, adapt
from adamesh.adapt.pose import retrieve_pose_style
from adamesh.adapt.timing import timing_speech
from adamesh.audio import SAMPLE_RATE, frame_count, load_audio
from adamesh.clips import scan_clips
from adamesh.device import single_thread
from adamesh.errors import AdameshError, AdameshWarning
from adamesh.fileio import atomic_output, check_input_file
from adamesh.frames import blink_times, check_settings, finish_frames, speech_samples
from adamesh.frontends import Features
from adamesh.motion import ARKIT, Motion, load_motion
from adamesh.profile import Profile, model_fingerprint, pose_fingerprint
from adamesh.stream import DEFAULT_LOOKAHEAD_MS, Stream
from adamesh.version import __version__

WEIGHTS = Path(__file__).parent / "weights"
PACKED_FORMAT = "adamesh.packed_model"
MIN_REFERENCE_SECONDS = 2.0  # below this neither adaptation has enough to learn from
SHORT_REFERENCE_SECONDS = 8.0  # the method's references are ~10 s; shorter ones work less well
DEFAULT_BLINK_RATE = 15.0  # blinks per minute when nothing better is known
BLINK_MIN_SECONDS = 20.0  # a shorter reference holds too few blinks (~5) to measure a rate
LONG_SPEECH_SECONDS = 60.0  # animate shows its stages from here on (a minute takes about 1.5 s)
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus")


class Animator:
    """A loaded model: the expression network and the pose adapter, each with its speech front-end."""

    def __init__(self, folder: Path):
        from adamesh.models.checkpoint import load_model, load_pose_model

        self.folder = folder
        self.expression, self.expression_frontend, self.expression_config = load_model(
            folder / "expression", kind="expression"
        )
        self.pose, self.pose_frontend = load_pose_model(folder / "pose")
        self.fps = 25.0
        self.ids = {"expression": model_fingerprint(self.expression), "pose": pose_fingerprint(self.pose)}

    # ------------------------------------------------------------------ adaptation

    def adapt(
        self,
        reference: str | os.PathLike | Motion | list[Motion],
        method: str = "molora",
        retrieval: str = "blend",
        seed: int = 0,
        clip_dir: str | os.PathLike | None = None,
        progress: bool = True,
        config: AdaptConfig | None = None,
    ) -> Profile:
        """Learn a person's style from `reference`: a video (tracked first), a clip folder written by
        `adamesh track` or another ARKit clip folder, a motion file with its audio, or Motion objects.

        `clip_dir` keeps the tracked clip of a video (default: a temporary folder, removed).
        `config` sets the adaptation's other settings (steps, time budget, ranks); `method` and
        `seed` override its own."""
        from adamesh.adapt.expression import METHODS
        from adamesh.adapt.pose import POSE_RETRIEVALS

        if method not in METHODS or method == "none":
            raise AdameshError(
                f"unknown adaptation method {method!r}; choose one of molora, lora, full, style"
            )
        if retrieval not in POSE_RETRIEVALS:
            raise AdameshError(
                f"unknown pose retrieval {retrieval!r}; choose one of {', '.join(POSE_RETRIEVALS)}"
            )
        clips, tracking = self._reference_clips(reference, clip_dir, progress)
        motions = [m for m, _ in clips]
        for m, a in clips:
            self._check_clip(m, a)
        seconds = sum(m.duration for m in motions)
        if seconds < MIN_REFERENCE_SECONDS:
            raise AdameshError(
                f"the reference is {seconds:.1f} s long; at least {MIN_REFERENCE_SECONDS:g} s of "
                "the person talking is needed (about 10 s is best)"
            )
        if seconds < SHORT_REFERENCE_SECONDS:
            warnings.warn(
                f"the reference is only {seconds:.1f} s long; the style is learned from it anyway, "
                "but about 10 s captures it better",
                AdameshWarning,
                stacklevel=2,
            )
        t0 = time.perf_counter()
        feats = [self.speech_features(a, m.n_frames) for m, a in clips]
        e_feats = [e.features for e, _ in feats]
        p_units = [p.units for _, p in feats]
        p_feats = [p.features for _, p in feats]
        params = np.concatenate([m.params for m in motions])
        unobserved = tuple(sorted({n for m in motions for n in m.meta.get("unobserved", [])}))
        ref = Reference(
            np.concatenate(e_feats), params[:, : ARKIT.n_expression], self.fps, unobserved=unobserved
        )
        config = replace(config or AdaptConfig(), method=method, seed=seed)
        expression = adapt(self.expression, ref, config, speech=timing_speech(self.expression_frontend))
        pose = retrieve_pose_style(
            self.pose,
            [m.params[:, ARKIT.n_expression :] for m in motions],
            p_units,
            self.fps,
            method=retrieval,
            features=p_feats,
        )
        stats = {
            "seconds": round(seconds, 2),
            "clips": len(motions),
            "frames": len(params),
            "blink_rate": round(blink_rate(params, self.fps), 1) if seconds >= BLINK_MIN_SECONDS else None,
            "head_angle_std_deg": [
                round(float(x), 2)
                for x in np.degrees(params[:, ARKIT.rotation[0] : ARKIT.rotation[1]].std(0))
            ],
            "sources": [str(m.meta.get("source") or m.meta.get("id") or "") for m in motions],
            **tracking,
        }
        provenance = {
            "adamesh": __version__,
            "model": str(self.folder),
            "model_ids": self.ids,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "method": method,
            "retrieval": retrieval,
            "seed": seed,
            "adapt_seconds": round(time.perf_counter() - t0, 2),
        }
        return Profile(expression, pose, stats, provenance)

    def _check_clip(self, motion: Motion, speech: np.ndarray) -> None:
        """Refuse a reference clip whose motion is at another rate than the model's, or whose speech
        does not cover it: its frames would not line up with the speech features."""

        name = motion.meta.get("source") or motion.audio or "a reference clip"
        if abs(motion.fps - self.fps) > 1e-6:
            raise AdameshError(
                f"{name} is at {motion.fps:g} fps; the model works at {self.fps:g} fps: track the "
                f"video again with --fps {self.fps:g}"
            )
        natural = frame_count(len(speech), SAMPLE_RATE, self.fps)
        if abs(natural - motion.n_frames) > 2:
            raise AdameshError(
                f"{name}: the motion has {motion.n_frames} frames but its speech lasts {natural}; "
                "they must belong together (the motion file's `audio` names the wrong file?)"
            )

    def _reference_clips(self, reference, clip_dir, progress) -> tuple[list[tuple[Motion, np.ndarray]], dict]:
        """(motion, 16 kHz speech) of each reference clip, and tracking statistics for a video."""
        if isinstance(reference, (Motion, list, tuple)):
            motions = list(reference) if isinstance(reference, (list, tuple)) else [reference]
            return [(_arkit(m, "a reference motion"), _speech(m)) for m in motions], {}
        path = Path(reference)
        if path.is_dir():
            infos, _ = scan_clips(path)
            motions = [_arkit(load_motion(c.motion), str(c.motion)) for c in infos]
            return [(m, _speech(m)) for m in motions], {}
        check_input_file(
            path,
            "reference",
            "a video, a clip folder or a motion file",
            "give a ~10 s video of the person talking",
        )
        if path.suffix.lower() == ".npz":
            motion = _arkit(load_motion(path), str(path))
            return [(motion, _speech(motion))], {}
        if path.suffix.lower() in AUDIO_SUFFIXES:
            raise AdameshError(
                f"{path} is an audio file; the reference must show the person: give a video of "
                "them talking (~10 s), or a clip folder from `adamesh track`"
            )
        return self._track(path, clip_dir, progress)

    def _track(self, video: Path, clip_dir, progress) -> tuple[list[tuple[Motion, np.ndarray]], dict]:
        from adamesh.tracking import probe, track_video

        has_audio = probe(str(video))[0]  # also refuses what is not a readable video, before tracking
        if not has_audio:
            raise AdameshError(f"{video} has no sound; the reference video must have the person's speech")
        result = track_video(video, clip_dir, overlay=False, progress=progress)
        error = result.fit_error[result.valid]
        stats = {
            "tracked_fraction": round(float(np.mean(result.valid)), 3),
            "fit_error_mm_median": round(float(np.median(error)), 3) if len(error) else None,
            "tracking_fps": round(float(result.fps_tracked), 1),
        }
        return [(result.motion, result.speech)], stats

    # ------------------------------------------------------------------ animation

    def speech_features(self, samples: np.ndarray, n_frames: int | None = None) -> tuple[Features, Features]:
        """The expression and pose models' features of 16 kHz speech, computed once when both models
        use the same front-end (each still gets its own units)."""
        if self.pose_frontend.key() != self.expression_frontend.key():
            e_feats = self.expression_frontend(samples, self.fps, n_frames)
            return e_feats, self.pose_frontend(samples, self.fps, len(e_feats))
        raw = self.expression_frontend.raw(samples, self.fps)
        n = len(raw) if n_frames is None else n_frames
        return self.expression_frontend.with_units(raw).fit(n), self.pose_frontend.with_units(raw).fit(n)

    def animate(
        self,
        audio: str | os.PathLike | np.ndarray,
        profile: Profile | None = None,
        seed: int = 0,
        style_strength: float = 1.0,
        pose_amplitude: float = 1.0,
        blink_rate: float | None = None,
        temperature: float = 0.8,
        progress: bool = False,
    ) -> Motion:
        """ARKit motion (52 blendshapes, head rotation and translation) for speech `audio` (a file,
        or 16 kHz mono samples). `progress` shows the stages of speech longer than a minute.

        profile None animates the generic model. `style_strength` goes from the generic model (0) to
        the profile (1) and beyond (exaggerated); `pose_amplitude` scales head motion about the
        resting posture; `blink_rate` is blinks per minute (default: the reference's, else 15).
        The same inputs and seed give the same motion."""
        check_settings(style_strength, pose_amplitude, blink_rate, temperature)
        samples = (
            speech_samples(audio) if isinstance(audio, np.ndarray) else load_audio(audio, SAMPLE_RATE)[0]
        )
        if len(samples) < SAMPLE_RATE / self.fps:
            raise AdameshError("the speech is shorter than one frame; give a recording with speech in it")
        if profile is not None:
            self.check(profile)
        stages = tqdm(total=2, desc="speech features", unit="stage", leave=False,
                      disable=not progress or len(samples) < LONG_SPEECH_SECONDS * SAMPLE_RATE)  # fmt: skip
        e_feats, p_feats = self.speech_features(samples)
        stages.set_description("expression and head motion")
        stages.update()

        net, style = self.styled_expression(profile, style_strength)
        pose_style, posture, gain = self.pose_style(profile, style_strength)

        def expression() -> np.ndarray:
            with torch.no_grad():
                feats = torch.from_numpy(e_feats.features)
                return net.predict(feats, style=style, style_strength=style_strength).numpy()

        # the expression network on one core while PoseGPT samples its codes, step by step, on
        # another (its steps are too small to share a core's worth of threads)
        with single_thread(), ThreadPoolExecutor(1) as pool:
            expr = pool.submit(expression)
            motion = self.pose.animate(p_feats.features, pose_style, temperature=temperature, seed=seed)
            expr = expr.result()
        pose = self.pose.place(motion, posture, pose_amplitude * gain)
        stages.update()
        stages.close()

        rate = self.blinks_per_minute(profile, blink_rate)
        duration = len(expr) / self.fps
        blinks = list(itertools.takewhile(lambda t: t < duration, blink_times(rate, seed)))
        params = finish_frames(expr, pose, (np.arange(len(expr)) + 0.5) / self.fps, blinks)
        meta = {
            "generator": "adamesh.animate",
            "model_ids": self.ids,
            "seed": seed,
            "style_strength": style_strength,
            "pose_amplitude": pose_amplitude,
            "blink_rate": rate,
            "temperature": temperature,
            "profile": (profile.provenance.get("created", "") if profile else None),
        }
        return Motion(
            params, ARKIT, self.fps, audio=None if isinstance(audio, np.ndarray) else str(audio), meta=meta
        )

    def stream(
        self,
        profile: Profile | None = None,
        lookahead_ms: float = DEFAULT_LOOKAHEAD_MS,
        seed: int = 0,
        **options,
    ):
        """A `Stream`: speech pushed as it arrives, the frames final so far back at once, each
        having heard `lookahead_ms` of speech after its moment. `options`: `hop_ms`, `window_s`
        and animate's style_strength, pose_amplitude, blink_rate and temperature."""
        return Stream(self, profile, lookahead_ms=lookahead_ms, seed=seed, **options)

    def styled_expression(self, profile: Profile | None, strength: float):
        """The expression network carrying the profile's adapter at `strength`, and its style."""
        if profile is None:
            return self.expression, None
        return profile.expression.apply(self.expression, strength), profile.expression.style

    def pose_style(self, profile: Profile | None, strength: float):
        """PoseGPT's style embedding (None: generic), the posture (None: the model's resting pose)
        and the gain (P,) on the motion about it, for a profile at `strength`."""
        ones = np.ones(self.pose.vq.config.pose_dim, np.float32)
        if profile is None or strength <= 0:
            return None, None, ones
        null = self.pose.gpt.null_style.detach()
        amplitude = ones if profile.pose.amplitude is None else profile.pose.amplitude
        gain = np.maximum(ones + strength * (amplitude - ones), 0)
        style = torch.lerp(null, profile.pose.style, strength)
        return style, profile.pose.posture, gain

    def blinks_per_minute(self, profile: Profile | None, rate: float | None) -> float:
        """Blinks per minute: `rate` if given, else the reference's, else DEFAULT_BLINK_RATE."""
        measured = profile.reference.get("blink_rate") if profile else None
        return rate if rate is not None else (DEFAULT_BLINK_RATE if measured is None else measured)

    def check(self, profile: Profile) -> None:
        """Refuse a profile made with another model (its adapter would not fit these weights)."""
        made = {"expression": profile.expression.model_id, "pose": profile.pose.model_id}
        for part, made_id in made.items():
            if made_id != self.ids[part]:
                raise AdameshError(
                    f"this profile was made with another model (its {part} model is {made_id}, this "
                    f"one is {self.ids[part]}); run `adamesh adapt` again with this model"
                )


def load(model: str | os.PathLike | None = None) -> Animator:
    """Load a model folder (expression/ + pose/); None: the weights shipped with the package."""
    folder = Path(model) if model is not None else WEIGHTS
    if not folder.is_dir():
        raise AdameshError(f"model folder {folder} does not exist; omit --model to use the shipped model")
    if not (folder / "expression").is_dir() or not (folder / "pose").is_dir():
        raise AdameshError(
            f"{folder} is not an adamesh model folder: it needs expression/ (from `adamesh train "
            "expression`) and pose/ (from `adamesh train pose`)"
        )
    return Animator(folder)


def blink_rate(params: np.ndarray, fps: float) -> float:
    """Blinks per minute in ARKit parameters: peaks of the mean eyeBlink above 0.35 (a tracked blink
    often stops short of 1), at least 0.2 s apart."""
    from scipy.signal import find_peaks

    blink = params[:, [ARKIT.index("eyeBlinkLeft"), ARKIT.index("eyeBlinkRight")]].mean(1)
    peaks, _ = find_peaks(blink, height=0.35, distance=max(1, int(0.2 * fps)))
    return 60.0 * len(peaks) / max(len(params) / fps, 1e-9)


def pack_model(folder: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A compact copy of a model folder for shipping: the best weights in half precision (small
    buffers, such as normalisation statistics, stay in full precision), configs, front-ends, the
    pose gallery and training logs, with the SHA-256 of every file in manifest.json."""
    folder, out = Path(folder), Path(out)
    load(folder)  # refuses what is not a complete model folder
    keep = (
        "config.json",
        "frontend.json",
        "frontend_units.safetensors",
        "log.txt",
        "model.safetensors",
        "gallery.safetensors",
    )
    with atomic_output(out, directory=True) as tmp:
        files = {}
        for src in sorted(folder.rglob("*")):
            if not src.is_file() or src.name not in keep:
                continue
            rel = src.relative_to(folder)
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.name == "model.safetensors":
                state = load_file(str(src))
                save_file(
                    {
                        k: v.half() if v.is_floating_point() and v.numel() > 4096 else v
                        for k, v in state.items()
                    },
                    str(dst),
                )
            else:
                shutil.copyfile(src, dst)
            files[str(rel)] = hashlib.sha256(dst.read_bytes()).hexdigest()
        (tmp / "manifest.json").write_text(
            json.dumps(
                {"format": PACKED_FORMAT, "source": folder.name, "adamesh": __version__, "files": files},
                indent=1,
            )
        )
        load(tmp)  # the packed copy must load before it replaces anything
        for path in [tmp, *tmp.rglob("*")]:  # readable by everyone, as an installed package must be
            path.chmod(0o755 if path.is_dir() else 0o644)
    return out


def _arkit(motion: Motion, what: str) -> Motion:
    if motion.space is not ARKIT:
        raise AdameshError(
            f"{what} is in the {motion.space.name} space; the shipped model animates ARKit "
            "blendshapes (track a video with `adamesh track` to get one)"
        )
    return motion


def _speech(motion: Motion) -> np.ndarray:
    if not motion.audio:
        name = motion.meta.get("source") or motion.meta.get("id") or "a reference clip"
        raise AdameshError(f"{name} has no audio; adaptation needs the speech that goes with the motion")
    return load_audio(motion.audio, SAMPLE_RATE)[0]
