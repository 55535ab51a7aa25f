"""The `adamesh` command: a thin layer over the Python API.

Every user error (AdameshError) prints one line ``adamesh: error: ...`` and exits 1; anything else
is a bug and prints one line too, with the traceback only under ADAMESH_DEBUG=1.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

from adamesh import __version__
from adamesh.errors import AdameshError
from adamesh.train.presets import PRESETS


def _warn(message, category, filename, lineno, file=None, line=None):
    print(f"adamesh: warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- commands


def cmd_render(args) -> None:
    from adamesh.fileio import VIDEO_SUFFIXES, check_outputs, check_suffix, check_writable
    from adamesh.motion import load_motion
    from adamesh.render import render_motion
    from adamesh.rigs import load_rig

    check_writable(args.out)
    check_suffix(args.out, VIDEO_SUFFIXES, "a video")
    check_outputs([args.out], [*args.motion, *(args.rig or []), args.audio])
    motions = [load_motion(p) for p in args.motion]
    rigs = [load_rig(r) for r in args.rig]
    if len(rigs) == 1:
        rigs = rigs * len(motions)
    captions = args.captions.split("|") if args.captions else None
    if captions and len(captions) != len(motions):
        raise AdameshError(f"--captions has {len(captions)} entries for {len(motions)} motions")
    stats = render_motion(motions, rigs, args.out, audio=args.audio, captions=captions, size=args.size,
                          backend=args.renderer, antialias=args.antialias)  # fmt: skip
    print(
        f"wrote {args.out}: {stats['frames']} frames, {stats['seconds']:.2f} s at {stats['fps']:g} fps, "
        f"{'with' if stats['audio'] else 'no'} audio ({stats['renderer']}, {stats['render_fps']:.0f} frames/s)"
    )


def cmd_export(args) -> None:
    from adamesh.export import export
    from adamesh.fileio import check_outputs, check_suffix, check_writable
    from adamesh.motion import load_motion

    check_writable(args.out, directory=args.format == "obj")
    if args.format != "obj":
        check_suffix(args.out, (f".{args.format}",), f"a {args.format} file")
    check_outputs([args.out], [args.motion, args.rig])
    motion = load_motion(args.motion)
    path = export(motion, args.format, args.out, args.rig, fps=args.fps)
    fps = args.fps or motion.fps
    print(
        f"wrote {path} ({args.format}, {round(motion.duration * fps) if args.fps else motion.n_frames} frames "
        f"at {fps:g} fps)"
    )


def cmd_rig_install(args) -> None:
    from adamesh.rigs.ict import install_ict, load_ict

    if args.name != "ict-facekit":
        raise AdameshError(f"unknown rig {args.name!r}; installable: ict-facekit")
    t0 = time.perf_counter()
    path = install_ict(args.source, args.cache)
    rig = load_ict(path)
    print(
        f"installed ICT-FaceKit to {path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s)"
    )
    print(rig.describe())


def cmd_rig_show(args) -> None:
    from PIL import Image

    from adamesh.fileio import atomic_output, check_suffix, check_writable
    from adamesh.render import contact_sheet
    from adamesh.rigs import load_rig

    check_writable(args.out)
    check_suffix(args.out, (".png",), "a PNG image")
    rig = load_rig(args.rig)
    sheet = contact_sheet(rig, tile=args.tile, backend=args.renderer)
    with atomic_output(args.out) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")
    print(f"wrote {args.out}: contact sheet of rig {rig.name} ({sheet.shape[1]}x{sheet.shape[0]})")


def cmd_rig_info(args) -> None:
    from adamesh.rigs import load_rig

    print(load_rig(args.rig).describe())


def cmd_motion_demo(args) -> None:
    import soundfile as sf

    from adamesh.audio import SAMPLE_RATE
    from adamesh.fileio import atomic_output, check_companion, check_suffix, check_writable
    from adamesh.testmotion import demo_motion

    check_writable(args.out)
    check_suffix(args.out, (".npz",), "an adamesh motion file")
    out = Path(args.out)
    wav = out.with_suffix(".wav")
    check_companion(wav, out)
    motion, audio = demo_motion(args.seconds, args.fps)
    with atomic_output(wav) as tmp:
        sf.write(tmp, audio, SAMPLE_RATE, format="WAV")
    motion.audio = str(wav)
    motion.save(out)
    print(f"wrote {out} ({motion.n_frames} frames at {motion.fps:g} fps) and its audio {wav}")


def cmd_motion_info(args) -> None:
    from adamesh.motion import load_motion

    m = load_motion(args.motion)
    print(f"{args.motion}: space {m.space.name}, {m.n_frames} frames at {m.fps:g} fps ({m.duration:.2f} s)")
    print(f"  audio: {m.audio or 'none'}")
    print(f"  meta: {m.meta}")
    active = [(c, float(abs(m.params[:, i]).max())) for i, c in enumerate(m.space.channels)]
    active = [f"{c}={v:.2f}" for c, v in active if v > 1e-3]
    print(f"  channels in use (max |value|): {', '.join(active) or 'none'}")


def cmd_corpus(args) -> None:
    from adamesh.data.synthetic.corpus import CorpusConfig, generate_corpus

    cfg = CorpusConfig(speakers=args.speakers, sentences=args.sentences, heldout=args.heldout, seed=args.seed)
    m = generate_corpus(args.out, cfg, workers=args.workers)
    st = m["stats"]
    n_held = sum(sp["split"] == "heldout" for sp in m["speakers"].values())
    print(
        f"corpus in {args.out}: {st['clips']} clips, {st['hours']:.2f} h of speech, {cfg.speakers} speakers "
        f"({cfg.speakers - n_held} training, {n_held} held out), {st['generation_seconds']:.0f} s with "
        f"{st['workers']} workers; manifest: {Path(args.out) / 'manifest.json'}"
    )


def cmd_bench_frontends(args) -> None:
    from adamesh.eval.frontends import bench_frontends

    ssl = {k: getattr(args, k) for k in ("hubert", "wav2vec2") if getattr(args, k)}
    bench_frontends(
        args.speech or dev_data("speech", flag="--speech")[0],
        args.corpus,
        args.frontends.split(","),
        ssl,
        args.units,
        args.seed,
        args.workers,
        random_ssl=args.random_ssl,
    )


def cmd_bench_corpus(args) -> None:
    from adamesh.eval.corpus import bench_corpus

    bench_corpus(args.corpus)


def cmd_bench_render(args) -> None:
    from adamesh.eval.render import bench_render

    bench_render(args.rig, args.size, args.frames, args.renderer, args.antialias)


def cmd_train(args) -> None:
    from adamesh.train.loop import TrainConfig, train
    from adamesh.train.tasks import ExpressionTask, train_pose

    options = frontend_options(args.frontend, args.frontend_model)
    overrides = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        frontend=args.frontend,
        frontend_options=options,
        workers=args.workers,
        augment=args.augment,
    )
    from adamesh.device import resolve_device, start_distributed

    device = resolve_device(args.device)
    start_distributed(device)
    t0 = time.time()
    if args.kind == "pose":
        stages = train_pose(args.data, args.out, args.preset, fresh=args.fresh, device=device, **overrides)
        histories = [r["history"] for r in stages.values()]
    else:
        cfg = TrainConfig.for_preset(args.preset, **overrides)
        histories = [
            train(ExpressionTask(args.data, cfg), args.out, cfg, fresh=args.fresh, device=device)["history"]
        ]
    if all(histories):
        best = ", ".join(f"{min(h['val_loss'] for h in hist):.4f}" for hist in histories)
        print(f"trained in {time.time() - t0:.0f} s; best validation loss {best}; model: {args.out}")


def frontend_options(name: str | None, model: str | None) -> dict:
    """--frontend-model: a model folder, or for whisper also a model name (tiny.en, base)."""
    if not model:
        return {}
    from adamesh.frontends.whisper import NAMED_MODELS

    if name in (None, "whisper") and model in NAMED_MODELS:  # whisper is the default front-end
        return {"model": model}
    return {"model_dir": str(Path(model).resolve())}


def cmd_bench_expression(args) -> None:
    from adamesh.eval.expression import bench_expression

    lengths = tuple(listed(args.lengths, "--lengths", number(above=0, high=600)))
    bench_expression(
        args.data,
        args.model,
        args.preset,
        args.out,
        args.rig,
        lengths,
        renders=args.renders,
        max_speakers=args.speakers,
        workers=args.workers,
    )


def cmd_bench_pose(args) -> None:
    from adamesh.eval.pose import bench_pose

    sizes = tuple(listed(args.codebooks, "--codebooks", number(int, low=2, high=65536)))
    bench_pose(
        args.data,
        args.model,
        args.preset,
        args.out,
        args.reference_seconds,
        args.speakers,
        sizes,
        args.workers,
        args.seed,
        args.renders,
    )


def cmd_bench_prior(args) -> None:
    from adamesh.eval.pose import bench_prior

    videos = args.videos or dev_data("video/real", flag="--videos")
    bench_prior(videos, args.model, args.out, args.min_seconds)


def cmd_bench_lipsync(args) -> None:
    from adamesh.eval.lipsync import bench_lipsync

    videos = _dev_videos(args.videos)
    bench_lipsync(args.model, videos, tuple(args.conditions.split(",")), args.out)


def cmd_bench_probe(args) -> None:
    from adamesh.eval.frontends import bench_probe

    videos = _dev_videos(args.videos)
    bench_probe(
        args.frontend or ["mel", "whisper"],
        args.corpus,
        videos,
        args.speakers,
        conditions=tuple(args.conditions.split(",")),
    )


DATA_VARIABLE = "ADAMESH_DATA"  # where the development data lives (video/, speech/): the benchmarks' default


def dev_data(*parts: str, flag: str) -> list[str]:
    """Folders under $ADAMESH_DATA, for a benchmark run without `flag`; a clear error when unset."""
    root = os.environ.get(DATA_VARIABLE)
    if not root:
        raise AdameshError(
            f"no {flag} given, and {DATA_VARIABLE} is not set: pass {flag}, or set {DATA_VARIABLE} to "
            f"the folder of the development data (video/, speech/; ../shared/data beside a checkout)"
        )
    folders = [Path(root) / p for p in parts]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise AdameshError(f"{', '.join(missing)} does not exist ({DATA_VARIABLE}={root}); pass {flag}")
    return [str(f) for f in folders]


def _dev_videos(given: list[str] | None) -> list[str]:
    """The real videos a lip-sync benchmark runs on: those given, else the development data's grid and real."""
    return given or dev_data("video/grid", "video/real", flag="--videos")


def _bench_speech(given: list[str] | None) -> list[str]:
    """The speech files a speed benchmark runs on: those given, else the development data's a2f clips."""
    audio = given or sorted(str(p) for p in Path(dev_data("speech/a2f", flag="--audio")[0]).glob("*.wav"))
    if not audio:
        raise AdameshError("no speech to time: pass --audio FILE (repeat for several)")
    return audio


def cmd_bench_stream(args) -> None:
    from adamesh.eval.stream import bench_stream

    lookaheads = listed(args.lookaheads, "--lookaheads", number(low=0, high=5000))
    videos = _dev_videos(args.videos)
    streams = listed(args.streams, "--streams", number(int, low=1, high=64))
    bench_stream(
        args.model,
        _bench_speech(args.audio),
        videos,
        lookaheads,
        args.hop_ms,
        args.chunk_ms,
        args.out,
        streams,
    )


def cmd_bench_long(args) -> None:
    from adamesh.eval.speed import bench_long

    audio = _bench_speech(args.audio)
    minutes = listed(args.minutes, "--minutes", number(low=0.05, high=600))
    bench_long(args.model, audio, minutes)


def cmd_bench_speed(args) -> None:
    from adamesh.eval.speed import bench_speed

    bench_speed(args.model or [None], _bench_speech(args.audio), args.repeats)


def cmd_bench_video(args) -> None:
    from adamesh.eval.video import bench_video

    bench_video(args.videos or dev_data("video/grid", flag="--videos")[0], args.out, args.model, args.rig)


def cmd_bench_people(args) -> None:
    from adamesh.eval.people import bench_people

    seconds = listed(args.reference_seconds, "--reference-seconds", number(above=0, high=600))
    videos = args.videos or dev_data("video/real", flag="--videos")
    bench_people(
        videos,
        args.out,
        args.model,
        seconds,
        tuple(args.methods.split(",")),
        args.rig,
        args.test_clips,
        args.renders,
    )


def cmd_track(args) -> None:
    import numpy as np

    from adamesh.tracking import track_video, track_videos

    if len(args.video) > 1 or Path(args.video[0]).is_dir():
        t0 = time.time()
        motions, failures = track_videos(
            args.video, args.out, rig=args.rig, fps=args.fps, speaker=args.speaker, workers=args.workers
        )
        for failure in failures:
            print(f"skipped: {failure}")
        print(
            f"{len(motions)} tracked clips in {args.out} ({time.time() - t0:.0f} s); train on them with "
            f"`adamesh train expression --data {args.out} ...`"
        )
        if failures:
            raise AdameshError(
                f"{len(failures)} videos could not be tracked (above); the others are in {args.out}"
            )
        return
    result = track_video(
        args.video[0], args.out, rig=args.rig, fps=args.fps, overlay=not args.no_overlay, speaker=args.speaker
    )
    error = result.fit_error[result.valid]
    print(
        f"tracked {args.video[0]}: {result.motion.n_frames} frames at {result.motion.fps:g} fps, face found in "
        f"{result.valid.mean():.0%}, fit error median {np.median(error):.2f} mm, {result.fps_tracked:.0f} "
        f"video frames/s"
    )
    for path in result.paths:
        print(f"wrote {path}")


def cmd_adapt(args) -> None:
    from adamesh import api
    from adamesh.fileio import check_outputs, check_writable

    check_writable(args.out)
    check_outputs([args.out], [args.reference])
    model = api.load(args.model)
    profile = model.adapt(
        args.reference, method=args.method, retrieval=args.retrieval, seed=args.seed, clip_dir=args.keep_clip
    )
    profile.save(args.out)
    ref, pose = profile.reference, profile.pose
    chosen = ", ".join(f"{v} ({w:.2f})" for v, w in zip(pose.chosen, pose.weights))
    blinks = (
        f"{ref['blink_rate']:.0f} blinks/min"
        if ref["blink_rate"] is not None
        else f"blink rate not measured (under {api.BLINK_MIN_SECONDS:g} s), animate uses {api.DEFAULT_BLINK_RATE:g}/min"
    )
    print(f"reference: {ref['seconds']:.1f} s in {ref['clips']} clip(s), {blinks}")
    stats = profile.expression.stats
    expression = (
        f"{profile.expression.method}, {len(stats['steps'])} adapters of "
        f"{'/'.join(map(str, stats['steps']))} steps"
        if "steps" in stats
        else profile.expression.method
    )
    head = ""
    if pose.amplitude is not None:  # the reference's head motion against PoseGPT's, pitch/yaw/roll
        head = f", head motion x{'/'.join(f'{g:.2g}' for g in pose.amplitude[:3])} (pitch/yaw/roll)"
    print(
        f"expression: {expression}; pose style: {pose.method} of {chosen}{head}; "
        f"adapted in {profile.provenance['adapt_seconds']:.1f} s"
    )
    print(f"wrote {args.out}")


def cmd_stream(args) -> None:
    import adamesh
    from adamesh.fileio import check_outputs, check_suffix
    from adamesh.live import stream_to
    from adamesh.senders import make_senders

    path = args.out if args.out is not None else None if args.send else "-"
    if path not in (None, "-"):
        kinds = {"csv": (".csv",), "jsonl": (".jsonl", ".json", ".ndjson", ".txt")}[args.format]
        check_suffix(path, kinds, f"{args.format} lines")
        check_outputs([path], [args.audio if args.audio != "-" else None])
    profile = adamesh.Profile.load(args.profile) if args.profile else None  # before the model's seconds
    senders = make_senders(args.send or [], args.subject)  # an unknown host is said before loading
    model = adamesh.load(args.model)
    report = stream_to(
        model,
        args.audio,
        sys.stdout if path == "-" else path,
        profile=profile,
        fmt=args.format,
        lookahead_ms=args.lookahead_ms,
        hop_ms=args.hop_ms,
        seed=args.seed,
        fast=args.fast,
        senders=senders,
    )  # fmt: skip; a reader that stops (| head) ends it as `main` says
    print(
        f"adamesh: {report['frames']} frames for {report['seconds']:.1f} s of speech; first frame "
        f"{report['first_frame_ms']:.0f} ms after the speech began; frame latency median "
        f"{report['latency_ms_median']:.0f} ms, p95 {report['latency_ms_p95']:.0f} ms "
        f"(look-ahead {args.lookahead_ms:g} ms); {report['compute_per_second']:.3f} s of compute per s of speech"
        + (f"; sent {report['frames']} frames to {', '.join(args.send)}, packet latency median "
           f"{report['packet_latency_ms_median']:.0f} ms, p95 {report['packet_latency_ms_p95']:.0f} ms"
           if senders else ""),
        file=sys.stderr,
    )  # fmt: skip


def cmd_serve(args) -> None:
    from adamesh.serve import serve

    serve(args.host, args.port, model=args.model, profiles=args.profile or [], avatars=args.avatar or [],
          lookahead_ms=args.lookahead_ms)  # fmt: skip


def cmd_animate(args) -> None:
    from adamesh import api
    from adamesh.audio import times_real_time
    from adamesh.export import FBX_HINT, blender_python, export
    from adamesh.fileio import (
        VIDEO_SUFFIXES,
        atomic_outputs,
        check_input_file,
        check_outputs,
        check_suffix,
        check_writable,
    )
    from adamesh.render import render_motion
    from adamesh.rigs import load_rig

    out = Path(args.out)
    if out.suffix != ".npz":
        raise AdameshError(f"--out {out} must end in .npz (an adamesh motion file)")
    targets = (
        [out]
        + [out.with_suffix(f".{fmt}") for fmt in args.export or []]
        + ([Path(args.render)] if args.render else [])
    )
    for path in targets:
        check_writable(path)
    if args.render:
        check_suffix(args.render, VIDEO_SUFFIXES, "a video")
    check_input_file(args.audio, "audio", "an audio or video file", "give a recording with speech in it")
    check_outputs(targets, [args.audio, args.profile, args.rig])
    profile = api.Profile.load(args.profile) if args.profile else None  # before the model's seconds
    model = api.load(args.model)
    if profile is not None:
        model.check(profile)
    if "fbx" in (args.export or []) and blender_python() is None:
        raise AdameshError(FBX_HINT)
    avatar = args.rig.startswith("gltf:")  # its glb export is the avatar's own file, animated
    if avatar:
        from adamesh.avatar import check_avatar

        check_avatar(args.rig[len("gltf:") :])
    rig = load_rig(args.rig) if args.render or not avatar else None
    t0 = time.perf_counter()
    motion = model.animate(
        args.audio,
        profile,
        seed=args.seed,
        style_strength=args.style_strength,
        pose_amplitude=args.pose_amplitude,
        blink_rate=args.blink_rate,
        temperature=args.temperature,
        progress=True,
    )
    seconds = time.perf_counter() - t0
    folders = {out.with_suffix(".obj")} if "obj" in (args.export or []) else set()
    with atomic_outputs(targets, folders) as partial:  # all appear together, or none
        motion.save(partial[0])
        for fmt, path in zip(args.export or [], partial[1:]):
            export(motion, fmt, path, args.rig if avatar else rig)
        if args.render:
            render_motion([motion], [rig], partial[-1])
    print(
        f"wrote {out}: {motion.n_frames} frames ({motion.duration:.1f} s) in {seconds:.2f} s, "
        f"{times_real_time(motion.duration / max(seconds, 1e-9))} real time"
    )
    for path in targets[1:]:
        print(f"wrote {path}")


def cmd_demo(args) -> None:
    from adamesh.demo import DEMO_SPEAKER, run_demo

    result = run_demo(args.out, args.rig, args.speaker or DEMO_SPEAKER, args.model)
    print(
        f"demo outputs are in {args.out} ({result['total_seconds']:.0f} s): side_by_side.mp4, "
        "personalised.glb/.csv, channels.png, report.md"
    )


def cmd_model_pack(args) -> None:
    from adamesh.api import pack_model

    out = pack_model(args.folder, args.out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 1e6:.1f} MB)")


# --------------------------------------------------------------------------- parser


def _model_bench_arguments(p: argparse.ArgumentParser, kind: str) -> None:
    """What the benchmarks of a trained model share: data, model, preset, output, renders, size."""
    p.add_argument("--data", help="corpus folder (default: generate one of the preset's size in --out)")
    p.add_argument("--model", help=f"trained {kind} model folder (default: train one in --out)")
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="tiny",
        help="size of the generated corpus and trained model (tiny: a few minutes)",
    )
    p.add_argument("--out", default=f"out/bench_{kind}", help="results, table and renders go here")
    p.add_argument("--renders", type=COUNT, default=2, help="held-out speakers to render side by side")
    p.add_argument("--speakers", type=COUNT, default=None, help="at most this many held-out speakers")
    p.add_argument("--workers", type=WORKERS, default=None)


class Parser(argparse.ArgumentParser):
    """Usage errors as every other error: one line, exit 1 (argparse prints the usage and exits 2)."""

    def error(self, message):
        raise AdameshError(f"{message} (see `{self.prog} --help`)")


def number(kind=float, low: float | None = None, high: float | None = None, above: float | None = None):
    """An argparse type: an int or a finite float within [low, high] (or > above), else a usage
    error that names the accepted range."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None
        ok = (
            math.isfinite(value)
            and (low is None or value >= low)
            and (high is None or value <= high)
            and (above is None or value > above)
        )
        if not ok:
            bounds = [f">= {low:g}"] if low is not None else []
            bounds += [f"> {above:g}"] if above is not None else []
            bounds += [f"<= {high:g}"] if high is not None else []
            raise argparse.ArgumentTypeError(f"{text} is out of range: give a number {' and '.join(bounds)}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


COUNT = number(int, low=1)  # frames, epochs, sizes ...


def listed(text: str, option: str, kind) -> list:
    """A comma-separated list of values of argparse type `kind` (a `number`), else one clear error."""
    try:
        values = [kind(x.strip()) for x in text.split(",") if x.strip()]
    except argparse.ArgumentTypeError as e:
        raise AdameshError(f"{option}: {e}") from None
    if not values and text.strip():
        raise AdameshError(f"{option}: give comma-separated values")
    return values


# processes: each holds a model, so more than a few per core only costs memory (and a typo of
# 10^20 would start processes until the machine runs out)
WORKERS = number(int, low=1, high=8 * (os.cpu_count() or 1))
SEED = number(int, low=0, high=2**32 - 1)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="adamesh", description="Speech to personalised 3D facial animation.")
    p.add_argument("--version", action="version", version=f"adamesh {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    rig_help = "builtin, ict, ict:PATH, flame:PATH or gltf:PATH"

    r = sub.add_parser("render", help="render motion files to an mp4 with speech")
    r.add_argument("motion", nargs="+", help="motion file(s) (.npz); several are shown side by side")
    r.add_argument("--rig", action="append", default=None, help=f"{rig_help} (once, or once per motion)")
    r.add_argument("--audio", help="speech to mux (default: the audio the motion file names)")
    r.add_argument("--out", required=True, help="output .mp4")
    r.add_argument("--captions", help="panel captions separated by |, e.g. 'ground truth|generated'")
    r.add_argument("--size", type=COUNT, default=512, help="panel size in pixels (default 512)")
    r.add_argument("--renderer", choices=["auto", "gl", "torch"], default=None, help="default: auto")
    r.add_argument(
        "--antialias",
        type=number(int, low=0, high=16),
        default=0,
        help="GL multisamples, e.g. 4 (slower); default 0",
    )
    r.set_defaults(func=cmd_render)

    e = sub.add_parser("export", help="export a motion to glb, Live Link CSV, OBJ sequence or npz")
    e.add_argument("motion")
    e.add_argument("--format", required=True, choices=["glb", "fbx", "csv", "obj", "npz"])
    e.add_argument("--rig", default="builtin", help=f"{rig_help} (default builtin; csv needs none)")
    e.add_argument("--out", required=True, help="output file (a folder for obj)")
    e.add_argument(
        "--fps",
        type=number(float, low=1, high=240),
        help="csv only: resample to this frame rate (Live Link Face records 60)",
    )
    e.set_defaults(func=cmd_export)

    rg = sub.add_parser("rig", help="install, inspect and show rigs").add_subparsers(
        dest="rig_command", required=True
    )
    ri = rg.add_parser("install", help="import ICT-FaceKit from a folder, zip or URL")
    ri.add_argument("name", help="ict-facekit")
    ri.add_argument("--from", dest="source", required=True, help="FaceXModel folder, repository zip, or URL")
    ri.add_argument("--cache", help="where to write the rig file (default: $ADAMESH_CACHE/rigs)")
    ri.set_defaults(func=cmd_rig_install)
    rs = rg.add_parser("show", help="contact sheet: neutral and every shape, labelled")
    rs.add_argument("rig", help=rig_help)
    rs.add_argument("--out", required=True, help="output .png")
    rs.add_argument("--tile", type=COUNT, default=256, help="tile size in pixels (default 256)")
    rs.add_argument("--renderer", choices=["auto", "gl", "torch"], default=None)
    rs.set_defaults(func=cmd_rig_show)
    rinfo = rg.add_parser("info", help="print a rig's size, regions and source")
    rinfo.add_argument("rig", help=rig_help)
    rinfo.set_defaults(func=cmd_rig_info)

    mo = sub.add_parser("motion", help="make or inspect motion files").add_subparsers(
        dest="motion_command", required=True
    )
    md = mo.add_parser("demo", help="write the test motion (and its audio, same name .wav)")
    md.add_argument("--out", required=True, help="output motion .npz")
    md.add_argument("--seconds", type=number(above=0, high=3600), default=6.0)
    md.add_argument("--fps", type=number(low=1, high=240), default=25.0)
    md.set_defaults(func=cmd_motion_demo)
    mi = mo.add_parser("info", help="summarise a motion file")
    mi.add_argument("motion")
    mi.set_defaults(func=cmd_motion_info)

    b = sub.add_parser("bench", help="benchmarks that print numbers").add_subparsers(
        dest="bench_command", required=True
    )
    br = b.add_parser("render", help="rendering speed (frames per second)")
    br.add_argument("--rig", default="builtin", help=rig_help)
    br.add_argument("--size", type=COUNT, default=512)
    br.add_argument("--frames", type=number(int, low=1, high=100_000), default=200)
    br.add_argument("--renderer", choices=["auto", "gl", "torch"], default=None)
    br.add_argument("--antialias", type=number(int, low=0, high=16), default=0)
    br.set_defaults(func=cmd_bench_render)
    bf = b.add_parser(
        "frontends", help="speech front-ends: unit agreement with aligned phones, real-time factor"
    )
    bf.add_argument(
        "--speech",
        help="folder of real speech; LibriVox-style 'transcription' files give the reference phones "
        "(default: $ADAMESH_DATA/speech)",
    )
    bf.add_argument(
        "--corpus",
        help="synthetic corpus to fit units and the unit-to-phone mapping on "
        "(default: a small one made on the fly)",
    )
    bf.add_argument("--frontends", default="phonetic,mel", help="comma-separated front-ends without weights")
    bf.add_argument("--hubert", metavar="DIR", help="a local HuBERT model folder to include")
    bf.add_argument("--wav2vec2", metavar="DIR", help="a local wav2vec2 model folder to include")
    bf.add_argument(
        "--random-ssl",
        action="store_true",
        help="include a randomly initialised HuBERT-base (speed only: no pretrained weights here)",
    )
    bf.add_argument("--units", type=COUNT, default=128, help="k-means units for mel/hubert/wav2vec2")
    bf.add_argument("--seed", type=SEED, default=0)
    bf.add_argument("--workers", type=WORKERS, default=None)
    bf.set_defaults(func=cmd_bench_frontends)

    bc = b.add_parser(
        "corpus", help="how much speaker styles matter in a corpus (speaker-agnostic oracle error)"
    )
    bc.add_argument("corpus", help="corpus folder (made by adamesh corpus)")
    bc.set_defaults(func=cmd_bench_corpus)

    be = b.add_parser(
        "expression",
        help="expression adaptation on held-out speakers: no adaptation, style "
        "encoder, full fine-tuning, LoRA and MoLoRA; LVE, MVE, FDD, lip closure, style error",
    )
    _model_bench_arguments(be, "expression")
    be.add_argument(
        "--rig", help=f"rig for vertex metrics (default: ict if installed, else builtin): {rig_help}"
    )
    be.add_argument("--lengths", default="2.5,5,10,20", help="reference lengths in seconds")
    be.set_defaults(func=cmd_bench_expression)

    bp = b.add_parser(
        "pose",
        help="pose adaptation on held-out speakers: generic, random, mean, top-1 and "
        "blended retrieved styles; diversity, beat alignment, FD, style error; VQ-VAE codebooks",
    )
    _model_bench_arguments(bp, "pose")
    bp.add_argument("--reference-seconds", type=number(above=0), default=10.0)
    bp.add_argument(
        "--codebooks", default="", help="also train VQ-VAEs with these codebook sizes, e.g. 64,256,1024"
    )
    bp.add_argument("--seed", type=SEED, default=0, help="sampling seed")
    bp.set_defaults(func=cmd_bench_pose)

    bpr = b.add_parser(
        "prior",
        help="the pose prior on real heads: tracked head motion through the VQ-VAE, per speaker "
        "(per-axis r, error / spread)",
    )
    bpr.add_argument(
        "--videos",
        action="append",
        help="folder of talking-face videos (a clips.csv names speakers) or a clip folder from "
        "`adamesh track` (repeat; default: $ADAMESH_DATA/video/real)",
    )
    bpr.add_argument("--model", help="model, pose or VQ-VAE folder (default: the shipped model)")
    bpr.add_argument(
        "--min-seconds",
        type=number(low=0.5, high=3600),
        default=15.0,
        help="speakers with less video are left out",
    )
    bpr.add_argument("--out", default="out/bench_prior", help="results.json, table.md and reconstruction.png")
    bpr.set_defaults(func=cmd_bench_prior)

    bl = b.add_parser(
        "lipsync", help="lip sync on real video: predicted vs tracked mouth opening (Pearson r)"
    )
    bl.add_argument(
        "--model",
        action="append",
        help="expression model folder (repeat to compare; default: the shipped model)",
    )
    bl.add_argument(
        "--videos",
        action="append",
        help="folder of talking-face videos with their speech, a "
        "clips.csv naming speakers (repeat; default: $ADAMESH_DATA/video/grid and .../real)",
    )
    bl.add_argument(
        "--conditions",
        default="clean",
        help="comma-separated: clean, telephone (8 kHz band), noise10 (white noise at 10 dB SNR)",
    )
    bl.add_argument("--out", default="out/bench_lipsync", help="results.json and table.md go here")
    bl.set_defaults(func=cmd_bench_lipsync)
    bq = b.add_parser(
        "probe",
        help="lip information in speech front-ends: a ridge regression fitted on the "
        "corpus, scored against mouth opening tracked in real video",
    )
    bq.add_argument(
        "--frontend",
        action="append",
        help="front-end as NAME[:KEY=VALUE,...], e.g. "
        "whisper:model=base or whisper:compute_type=float32 (repeat; default: mel and whisper)",
    )
    bq.add_argument("--corpus", required=True, help="synthetic corpus folder (adamesh corpus)")
    bq.add_argument(
        "--speakers", type=COUNT, default=12, help="training speakers the regression is fitted on"
    )
    bq.add_argument(
        "--videos",
        action="append",
        help="folders of real videos (default: grid and real in $ADAMESH_DATA/video)",
    )
    bq.add_argument("--conditions", default="clean", help="comma-separated: clean, telephone, noise10")
    bq.set_defaults(func=cmd_bench_probe)
    bst = b.add_parser(
        "stream",
        help="streaming: latency, compute per second of speech and lip sync against offline, per look-ahead",
    )
    bst.add_argument("--model", help="model folder (default: the model shipped with adamesh)")
    bst.add_argument(
        "--audio", action="append", help="speech to time (repeat; default: $ADAMESH_DATA/speech/a2f)"
    )
    bst.add_argument(
        "--videos", action="append", help="folders of real videos for lip sync (default: grid and real)"
    )
    bst.add_argument("--lookaheads", default="80,160,320", help="comma-separated look-aheads in ms")
    bst.add_argument(
        "--hop-ms", type=number(low=1, high=2000), default=80.0, help="a step every ... ms (default 80)"
    )
    bst.add_argument(
        "--chunk-ms", type=number(low=1, high=1000), default=20.0, help="size of the pushed chunks"
    )
    bst.add_argument(
        "--streams",
        default="1,2,4,8",
        help="comma-separated numbers of streams run at once (default 1,2,4,8)",
    )
    bst.add_argument("--out", default="out/bench_stream", help="results.json and table.md go here")
    bst.set_defaults(func=cmd_bench_stream)
    bs = b.add_parser(
        "speed",
        help="speech to ARKit + head pose, front-ends included, for several models "
        "side by side; each model's front-ends alone",
    )
    bs.add_argument(
        "--model", action="append", help="model folder (repeat to compare; default: the shipped model)"
    )
    bs.add_argument(
        "--audio", action="append", help="speech file (repeat; default: $ADAMESH_DATA/speech/a2f/*.wav)"
    )
    bs.add_argument("--repeats", type=COUNT, default=5, help="timed runs; the best is kept (default 5)")
    bs.set_defaults(func=cmd_bench_speed)
    bg = b.add_parser("long", help="wall time and peak memory of animating long speech (1, 10, 60 minutes)")
    bg.add_argument("--model", help="model folder (default: the shipped model)")
    bg.add_argument(
        "--audio",
        action="append",
        help="speech file, repeated to each length (repeat; default: $ADAMESH_DATA/speech/a2f/*.wav)",
    )
    bg.add_argument(
        "--minutes", default="1,10,60", help="comma-separated lengths in minutes (default 1,10,60)"
    )
    bg.set_defaults(func=cmd_bench_long)
    bv = b.add_parser(
        "video",
        help="real talking-face videos end to end: tracking speed and fit error, "
        "adaptation time, lip sync of generic and personalised animation, animation speed",
    )
    bv.add_argument(
        "--videos",
        help="folder of videos, one speaker each (default: $ADAMESH_DATA/video/grid)",
    )
    bv.add_argument("--model", help="model folder (default: the shipped model)")
    bv.add_argument("--rig", default="builtin", help="rig the tracker fits (builtin or ict)")
    bv.add_argument("--out", default="out/bench_video")
    bv.set_defaults(func=cmd_bench_video)

    bpe = b.add_parser(
        "people",
        help="personal style on real people: profiles from the first seconds of each "
        "speaker's video against the generic model, on the rest (lip sync, expression, style, head pose)",
    )
    bpe.add_argument(
        "--videos",
        action="append",
        help="folder of videos (speakers from its clips.csv or subfolders) "
        "or a clip folder of one speaker from `adamesh track` (repeat; default: $ADAMESH_DATA/video/real)",
    )
    bpe.add_argument(
        "--reference-seconds", default="10", help="comma-separated reference lengths, e.g. 2.5,5,10"
    )
    bpe.add_argument(
        "--methods",
        default="none,style,lora,molora,full",
        help="comma-separated: none (generic), "
        "style (style embedding only), lora, molora, full (fine-tuning)",
    )
    bpe.add_argument(
        "--test-clips",
        type=COUNT,
        help="test on at most this many clips after the reference (default: all the rest)",
    )
    bpe.add_argument("--model", help="model folder (default: the shipped model)")
    bpe.add_argument(
        "--rig", help=f"rig for lip vertex error (default: ict if installed, else builtin): {rig_help}"
    )
    bpe.add_argument("--renders", type=number(int, low=0), default=2, help="speakers rendered side by side")
    bpe.add_argument("--out", default="out/bench_people")
    bpe.set_defaults(func=cmd_bench_people)

    t = sub.add_parser("train", help="train a model of the method").add_subparsers(
        dest="train_command", required=True
    )
    for kind, help_text in (
        ("expression", "the speech-to-expression model"),
        ("pose", "the pose adapter: VQ-VAE, then PoseGPT, then the gallery of style matrices"),
    ):
        te = t.add_parser(kind, help=help_text + " (resumes an interrupted run)")
        te.add_argument(
            "--data",
            required=True,
            nargs="+",
            help="corpus or clip folder (see docs/data.md: Clip "
            "datasets); several folders train on all their clips, e.g. the corpus and tracked real video",
        )
        te.add_argument("--out", required=True, help="model folder")
        te.add_argument("--preset", choices=list(PRESETS), default="default")
        te.add_argument(
            "--frontend",
            choices=["phonetic", "mel", "whisper", "hubert", "wav2vec2"],
            help="speech front-end (default: the training config's for this kind of model)",
        )
        te.add_argument(
            "--frontend-model",
            metavar="DIR",
            help="model folder of a whisper (faster-whisper "
            "layout), hubert or wav2vec2 front-end; for whisper also a name: tiny.en (default), base",
        )
        te.add_argument("--epochs", type=COUNT, help="epochs (of each stage, for pose)")
        te.add_argument(
            "--augment",
            type=number(int, low=0, high=16),
            help="degraded copies of each training clip's audio (noise, "
            "reverberation, telephone band, gain); each window hears one at random",
        )
        te.add_argument("--batch-size", type=number(int, low=1, high=4096))
        te.add_argument("--lr", type=number(above=0, high=1))
        te.add_argument("--seed", type=SEED)
        te.add_argument(
            "--workers", type=WORKERS, default=None, help="feature extraction processes (default: all cores)"
        )
        te.add_argument("--fresh", action="store_true", help="start over instead of resuming a run in --out")
        te.add_argument(
            "--device",
            choices=("auto", "cpu", "cuda"),
            default="auto",
            help="where to train (auto: a CUDA GPU if PyTorch sees one; under torchrun, one per process)",
        )
        te.set_defaults(func=cmd_train, kind=kind)

    tr = sub.add_parser(
        "track",
        help="fit the rig to a talking-face video: a clip folder (motion + speech), "
        "fit report and overlay video",
    )
    tr.add_argument(
        "video",
        nargs="+",
        help="video of one face (mp4, mov, mkv, webm, avi, mpg); several "
        "videos or folders of videos make one clip folder, without overlays (resumes if interrupted)",
    )
    tr.add_argument("--out", required=True, help="clip folder to write")
    tr.add_argument(
        "--speaker",
        help="speaker name written into the motion (default: the video's name); "
        "give one name to the videos of one person, so training treats them as one style",
    )
    tr.add_argument(
        "--workers", type=WORKERS, help="tracking processes for several videos (default: all cores)"
    )
    tr.add_argument(
        "--rig", default="builtin", help="rig whose parameters are fitted: builtin or ict (default builtin)"
    )
    tr.add_argument(
        "--fps", type=number(low=1, high=240), default=25.0, help="motion frame rate (default 25)"
    )
    tr.add_argument("--no-overlay", action="store_true", help="skip the overlay video (faster)")
    tr.set_defaults(func=cmd_track)

    model_help = "model folder (default: the model shipped with adamesh)"
    ad = sub.add_parser("adapt", help="learn a person's style from a ~10 s reference video: one profile file")
    ad.add_argument(
        "--reference",
        required=True,
        help="video of the person talking, or a clip folder from "
        "`adamesh track`, or a motion file (.npz) with its audio",
    )
    ad.add_argument("--model", help=model_help)
    ad.add_argument("--out", required=True, help="profile file to write (.profile)")
    ad.add_argument(
        "--method",
        choices=["molora", "lora", "full", "style"],
        default="molora",
        help="expression adaptation (default molora)",
    )
    ad.add_argument("--retrieval", choices=["blend", "top1"], default="blend", help="pose-style retrieval")
    ad.add_argument("--seed", type=SEED, default=0)
    ad.add_argument("--keep-clip", metavar="DIR", help="keep the tracked clip of a reference video in DIR")
    ad.set_defaults(func=cmd_adapt)

    an = sub.add_parser("animate", help="speech to animation, generic or in a profile's style")
    an.add_argument("--audio", required=True, help="speech (wav, flac, mp3, or a video's sound track)")
    an.add_argument("--profile", help="profile from `adamesh adapt` (default: the generic model)")
    an.add_argument("--model", help=model_help)
    an.add_argument("--out", required=True, help="motion file to write (.npz)")
    an.add_argument("--render", metavar="OUT.mp4", help="also render a video with the speech")
    an.add_argument(
        "--export",
        action="append",
        choices=["glb", "fbx", "csv"],
        help="also export beside --out: glb (mesh + animation), fbx (the same through Blender) or csv "
        "(Live Link); repeatable",
    )
    an.add_argument("--rig", default="builtin", help=f"rig for --render and --export glb: {rig_help}")
    an.add_argument("--seed", type=SEED, default=0, help="head motion and blink timing (default 0)")
    an.add_argument(
        "--style-strength",
        type=number(low=0, high=3),
        default=1.0,
        help="0 generic, 1 as the profile, above 1 exaggerated (default 1)",
    )
    an.add_argument(
        "--pose-amplitude", type=number(low=0, high=3), default=1.0, help="scale of head motion (default 1)"
    )
    an.add_argument(
        "--blink-rate",
        type=number(low=0, high=60),
        help="blinks per minute (default: the reference's, else 15)",
    )
    an.add_argument(
        "--temperature", type=number(low=0.05, high=3), default=0.8, help="head-motion sampling temperature"
    )
    an.set_defaults(func=cmd_animate)

    st = sub.add_parser(
        "stream",
        help="animate speech as it arrives: frames as JSON lines or Live Link CSV rows, as soon as final",
    )
    st.add_argument(
        "--audio",
        required=True,
        help="speech file (paced in real time), or - for raw 16 kHz mono 16-bit PCM on stdin",
    )
    st.add_argument(
        "--out",
        help="where the frame lines go (default -: stdout; none when --send is given and this is not)",
    )
    st.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="JSON lines or Live Link CSV")
    st.add_argument(
        "--send",
        action="append",
        metavar="livelink[=HOST:PORT] | vmc[=HOST:PORT]",
        help="also send each frame, at its moment, as Live Link Face UDP packets (Unreal; default "
        "127.0.0.1:11111) or VMC protocol OSC messages (VTuber apps; default 127.0.0.1:39539); repeat for more",
    )
    st.add_argument("--subject", default="adamesh", help="the Live Link subject name (default adamesh)")
    st.add_argument("--profile", help="profile from `adamesh adapt` (default: the generic model)")
    st.add_argument("--model", help=model_help)
    st.add_argument(
        "--lookahead-ms",
        type=number(low=0, high=5000),
        default=160.0,
        help="speech each frame hears after its moment (default 160)",
    )
    st.add_argument(
        "--hop-ms", type=number(low=1, high=2000), default=80.0, help="a step every ... ms (default 80)"
    )
    st.add_argument("--seed", type=SEED, default=0)
    st.add_argument("--fast", action="store_true", help="do not pace a file in real time: as fast as it goes")
    st.set_defaults(func=cmd_stream)

    sv = sub.add_parser("serve", help="a local web page: pick an avatar and a profile, watch it speak live")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    sv.add_argument("--port", type=number(int, low=1, high=65535), default=8000)
    sv.add_argument("--model", help=model_help)
    sv.add_argument("--profile", action="append", help="profile file to offer on the page (repeat)")
    sv.add_argument("--avatar", action="append", help="glb avatar to offer on the page (repeat)")
    sv.add_argument("--lookahead-ms", type=number(low=0, high=5000), default=160.0)
    sv.set_defaults(func=cmd_serve)

    dm = sub.add_parser(
        "demo",
        help="personalise the shipped model to a held-out synthetic speaker: video, "
        "glb, Live Link CSV, plots and a report in one folder",
    )
    dm.add_argument("--out", default="out/demo")
    dm.add_argument(
        "--rig", help=f"rig to render and export (default: ict if installed, else builtin): {rig_help}"
    )
    dm.add_argument("--speaker", help="held-out speaker of the default corpus (default spk011)")
    dm.add_argument("--model", help=model_help)
    dm.set_defaults(func=cmd_demo)

    mdl = sub.add_parser("model", help="model folders").add_subparsers(dest="model_command", required=True)
    mp = mdl.add_parser(
        "pack", help="half-precision copy of a model folder (expression/ + pose/) for shipping"
    )
    mp.add_argument("folder")
    mp.add_argument("--out", required=True)
    mp.set_defaults(func=cmd_model_pack)

    c = sub.add_parser("corpus", help="generate the synthetic talking-face corpus (resumes if interrupted)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--speakers", type=number(int, low=1, high=10_000), default=48)
    c.add_argument(
        "--sentences", type=number(int, low=1, high=10_000), default=50, help="sentences per speaker"
    )
    c.add_argument("--heldout", type=number(int, low=1), default=8, help="speakers kept out of training")
    c.add_argument("--seed", type=SEED, default=0)
    c.add_argument("--workers", type=WORKERS, default=None, help="processes (default: all cores)")
    c.set_defaults(func=cmd_corpus)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except AdameshError as e:
        print(f"adamesh: error: {e}", file=sys.stderr)
        return 1
    if getattr(args, "rig", None) is None and args.func is cmd_render:
        args.rig = ["builtin"]
    for value in vars(args).values():  # soundfile, PyAV and others open names as UTF-8 only
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and not text.isascii() and _undecodable(text):
                print(
                    f"adamesh: error: the name {ascii(text)} is not UTF-8; rename the file", file=sys.stderr
                )
                return 1
    warnings.showwarning = _warn
    previous = None
    if threading.current_thread() is threading.main_thread():  # only there can signals be handled
        previous = signal.signal(signal.SIGTERM, functools.partial(_terminate, os.getpid()))
    try:
        args.func(args)
        sys.stdout.flush()  # here, so that a reader who closed the pipe is seen below
    except BrokenPipeError:  # `| head`: the reader has seen enough, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 0
    except AdameshError as e:
        print(f"adamesh: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("adamesh: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("adamesh: terminated", file=sys.stderr)
        return 143
    except OSError as e:  # the file system said no (a file where a folder should be, a full disk ...)
        where = f" {e.filename}" if e.filename else ""
        print(
            f"adamesh: error: cannot use{where}: {e.strerror or e}; check the path, its permissions and the "
            "free space (the cache is $ADAMESH_CACHE, else ~/.cache/adamesh)",
            file=sys.stderr,
        )
        return 1
    except Exception as e:  # a bug: one line, the traceback on request
        if os.environ.get("ADAMESH_DEBUG"):
            traceback.print_exc()
        print(f"adamesh: internal error: {type(e).__name__}: {e} (set ADAMESH_DEBUG=1 for the traceback)",
              file=sys.stderr)  # fmt: skip
        return 3
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _undecodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that partial outputs are removed on the way out."""


def _terminate(main_pid, signum, frame):
    if os.getpid() != main_pid:  # a forked worker: die as SIGTERM would, the parent cleans up
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    raise Terminated()
