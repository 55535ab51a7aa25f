"""The public API on the shipped model: load, adapt, animate, profiles, and the CLI's bad-input errors."""

import hashlib
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

import adamesh
from adamesh import api
from adamesh.audio import SAMPLE_RATE
from adamesh.cli import main
from adamesh.data.synthetic.corpus import CorpusConfig, make_speakers, synthesize_clip
from adamesh.errors import AdameshError
from adamesh.models.expression import ExpressionConfig
from adamesh.models.pose import PoseConfig
from adamesh.motion import ARKIT, Motion, load_motion
from adamesh.profile import PROFILE_FORMAT

CFG = CorpusConfig()
SPEAKERS = make_speakers(CFG)
HELD_OUT = next(i for i, s in enumerate(SPEAKERS) if s.split == "heldout")


@pytest.fixture(scope="module")
def model():
    return adamesh.load()


def _clips(tmp, indices):
    out = []
    for k in indices:
        audio, motion = synthesize_clip(SPEAKERS[HELD_OUT], k, CFG, HELD_OUT)
        wav = tmp / f"clip_{k}.wav"
        sf.write(wav, audio, SAMPLE_RATE)
        motion.audio = str(wav)
        motion.save(tmp / f"clip_{k}.npz")
        out.append(motion)
    return out


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Reference clips (a folder of motion files with their speech, ~9-12 s) and one test clip."""
    tmp = tmp_path_factory.mktemp("held_out")
    ref_dir = tmp / "reference"
    ref_dir.mkdir()
    reference = _clips(ref_dir, range(3))
    test = _clips(tmp, [CFG.sentences - 1])[0]
    return ref_dir, reference, test


@pytest.fixture(scope="module")
def profile(model, held_out, tmp_path_factory):
    ref_dir = held_out[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the short-reference warning is tested on its own
        return model.adapt(ref_dir)


def test_shipped_weights_match_their_manifest_and_configs():
    manifest = json.loads((api.WEIGHTS / "manifest.json").read_text())
    assert manifest["format"] == api.PACKED_FORMAT
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((api.WEIGHTS / rel).read_bytes()).hexdigest() == digest, rel
    size = sum(p.stat().st_size for p in api.WEIGHTS.rglob("*") if p.is_file())
    assert size < 12e6  # "a few MB"
    # every recorded config builds a network whose parameters have exactly the shipped shapes
    for folder, config_cls in (
        ("expression", ExpressionConfig),
        ("pose/vqvae", PoseConfig),
        ("pose/gpt", PoseConfig),
    ):
        from adamesh.models.checkpoint import MODELS

        config = json.loads((api.WEIGHTS / folder / "config.json").read_text())
        net = MODELS[config["kind"]][0](config_cls(**config["model"]))
        shipped = load_file(str(api.WEIGHTS / folder / "model.safetensors"))
        assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {
            k: tuple(v.shape) for k, v in shipped.items()
        }
    cfg = json.loads((api.WEIGHTS / "expression" / "config.json").read_text())
    assert cfg["train"]["frontend"] == "whisper" and cfg["train"]["preset"] == "default"


def test_generic_animation_is_deterministic_and_in_bounds(model, held_out):
    test = held_out[2]
    a = model.animate(test.audio, seed=3)
    b = model.animate(test.audio, seed=3)
    c = model.animate(test.audio, seed=4)
    assert a.space is ARKIT and abs(a.n_frames - test.n_frames) <= 1
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params[:, 52:55], c.params[:, 52:55])  # the seed drives head motion
    assert np.all(a.params >= np.array(ARKIT.lower)) and np.all(a.params <= np.array(ARKIT.upper))
    assert np.all(a.channel("mouthClose") <= a.channel("jawOpen"))  # lips never pushed through each other
    # lips follow the synthetic speaker's true lips
    n = min(a.n_frames, test.n_frames)
    assert np.corrcoef(a.channel("jawOpen")[:n], test.channel("jawOpen")[:n])[0, 1] > 0.7


def test_profile_brings_the_animation_closer_to_the_speaker(model, profile, held_out):
    test = held_out[2]
    n = test.n_frames
    generic = model.animate(test.audio, None).params[:n, :52]
    personal = model.animate(test.audio, profile).params[:n, :52]
    true = test.params[: len(personal), :52]
    blink = [ARKIT.index("eyeBlinkLeft"), ARKIT.index("eyeBlinkRight")]
    keep = np.setdiff1d(np.arange(52), blink)  # blinks are random events, not style
    assert np.abs(personal - true)[:, keep].mean() < 0.8 * np.abs(generic - true)[:, keep].mean()
    assert profile.reference["clips"] == 3 and profile.reference["seconds"] > 8
    assert profile.pose.chosen and abs(sum(profile.pose.weights) - 1) < 1e-3


def test_style_strength_zero_is_the_generic_model(model, profile, held_out):
    audio = held_out[2].audio
    generic = model.animate(audio, None, seed=1)
    zero = model.animate(audio, profile, seed=1, style_strength=0.0, blink_rate=api.DEFAULT_BLINK_RATE)
    np.testing.assert_allclose(zero.params[:, :52], generic.params[:, :52], atol=1e-4)
    np.testing.assert_allclose(zero.params[:, 52:], generic.params[:, 52:], atol=1e-5)
    strong = model.animate(audio, profile, seed=1, style_strength=1.5)
    normal = model.animate(audio, profile, seed=1)
    assert (
        np.abs(strong.params[:, :52] - generic.params[:, :52]).mean()
        > np.abs(normal.params[:, :52] - generic.params[:, :52]).mean()
    )


def test_pose_amplitude_and_blink_rate(model, profile, held_out):
    audio = held_out[2].audio
    base = model.animate(audio, profile, seed=2)
    half = model.animate(audio, profile, seed=2, pose_amplitude=0.5)
    rot = slice(*ARKIT.rotation)
    np.testing.assert_allclose(half.params[:, rot].std(0), 0.5 * base.params[:, rot].std(0), rtol=1e-3)
    none = model.animate(audio, profile, seed=2, blink_rate=0)
    assert none.channel("eyeBlinkLeft").max() < 1e-6
    many = model.animate(audio, profile, seed=2, blink_rate=60)
    assert api.blink_rate(many.params, many.fps) > 20


def test_profile_round_trip_and_refused_by_another_model(model, profile, held_out, tmp_path):
    path = profile.save(tmp_path / "me.profile")
    loaded = api.Profile.load(path)
    audio = held_out[2].audio
    np.testing.assert_array_equal(model.animate(audio, loaded).params, model.animate(audio, profile).params)
    assert loaded.reference == profile.reference and loaded.provenance == profile.provenance

    # another model: the shipped one with one weight changed
    other = tmp_path / "other"
    shutil.copytree(api.WEIGHTS, other)
    weights = other / "expression" / "model.safetensors"
    state = load_file(str(weights))
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1000)
    state[key] = state[key] + torch.ones_like(state[key]) * 1e-2
    save_file(state, str(weights))
    with pytest.raises(AdameshError, match="another model"):
        adamesh.load(other).animate(audio, loaded)


def test_reference_length_rules(model, held_out, tmp_path):
    ref = held_out[1]
    with pytest.warns(UserWarning, match="only"):
        short = model.adapt(ref[:1])  # one sentence, 2.5-5 s: works, with a warning
    assert short.reference["seconds"] < 8
    audio, rate = sf.read(ref[0].audio)
    short_wav = tmp_path / "short.wav"
    sf.write(short_wav, audio[: int(1.6 * rate)], rate)
    clipped = Motion(ref[0].params[:40], ARKIT, ref[0].fps, audio=str(short_wav))  # 1.6 s
    with pytest.raises(AdameshError, match="at least 2 s"):
        model.adapt([clipped])
    # a motion and a speech file that do not belong together
    with pytest.raises(AdameshError, match="must belong together"):
        model.adapt([Motion(ref[1].params, ARKIT, ref[1].fps, audio=str(short_wav))])
    # a motion at another frame rate than the model's
    with pytest.raises(AdameshError, match="--fps 25"):
        model.adapt([Motion(ref[1].params, ARKIT, 30.0, audio=ref[1].audio)])


def test_cli_adapt_animate_and_bad_inputs(held_out, tmp_path, capsys):
    ref_dir, _, test = held_out
    prof = tmp_path / "p.profile"
    assert main(["adapt", "--reference", str(ref_dir), "--out", str(prof)]) == 0
    out = tmp_path / "speech.npz"
    assert (
        main(
            [
                "animate",
                "--audio",
                test.audio,
                "--profile",
                str(prof),
                "--out",
                str(out),
                "--export",
                "csv",
                "--export",
                "glb",
            ]
        )
        == 0
    )
    motion = load_motion(out)
    assert (
        motion.n_frames > 0
        and out.with_suffix(".csv").stat().st_size > 0
        and out.with_suffix(".glb").is_file()
    )
    capsys.readouterr()

    # an audio file given as reference
    assert main(["adapt", "--reference", test.audio, "--out", str(tmp_path / "x.profile")]) == 1
    assert "audio file" in capsys.readouterr().err
    # an empty audio file
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), SAMPLE_RATE)
    assert main(["animate", "--audio", str(empty), "--out", str(tmp_path / "e.npz")]) == 1
    assert "no audio samples" in capsys.readouterr().err
    # a file that is not a profile
    assert (
        main(["animate", "--audio", test.audio, "--profile", test.audio, "--out", str(tmp_path / "f.npz")])
        == 1
    )
    assert "profile" in capsys.readouterr().err
    # nothing half-written by any of the failures
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "empty.wav",
        "p.profile",
        "speech.csv",
        "speech.glb",
        "speech.npz",
    ]


def test_cli_adapt_refuses_a_video_without_a_face_or_a_corrupt_one(tmp_path, capsys):
    pytest.importorskip("mediapipe", reason="face tracking needs mediapipe (make install)")
    from adamesh.render.video import write_video

    noise = tmp_path / "noise.wav"
    sf.write(noise, np.random.default_rng(0).normal(0, 0.1, 2 * SAMPLE_RATE).astype(np.float32), SAMPLE_RATE)
    grey = tmp_path / "grey.mp4"
    write_video(
        grey, iter([np.full((128, 128, 3), 128, np.uint8)] * 50), 50, 25.0, audio=str(noise), progress=False
    )
    noise.unlink()
    out = tmp_path / "me.profile"
    assert main(["adapt", "--reference", str(grey), "--out", str(out)]) == 1
    assert "no face found" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    assert main(["adapt", "--reference", str(corrupt), "--out", str(out)]) == 1
    assert "corrupt" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.mp4", "grey.mp4"]


def test_a_front_end_both_models_share_is_computed_once(model, monkeypatch):
    from adamesh.frontends import load_frontend, make_frontend

    speech, _ = synthesize_clip(SPEAKERS[HELD_OUT], 0, CFG, HELD_OUT)
    calls = []

    def counted(frontend):
        compute = frontend.compute
        monkeypatch.setattr(frontend, "compute", lambda *a: calls.append(frontend.name) or compute(*a))
        return frontend

    # the shipped model: both models hear the same Whisper front-end, each with its own units
    assert model.pose_frontend.key() == model.expression_frontend.key()
    twin = counted(load_frontend(api.WEIGHTS / "pose" / "gpt"))
    monkeypatch.setattr(model, "expression_frontend", counted(load_frontend(api.WEIGHTS / "expression")))
    monkeypatch.setattr(model, "pose_frontend", twin)
    e, p = model.speech_features(speech)
    assert calls == ["whisper"]
    np.testing.assert_array_equal(p.features, e.features)
    np.testing.assert_array_equal(p.units, twin.assign_units(e.features))
    assert twin.n_units == 32 and len(set(p.units.tolist())) > 3
    # another front-end for the pose model: each is computed
    monkeypatch.setattr(model, "pose_frontend", counted(make_frontend("mel")))
    calls.clear()
    e, p = model.speech_features(speech)
    assert sorted(calls) == ["mel", "whisper"] and p.features.shape == (len(e), 160)


def test_bench_speed_times_animation_and_front_ends(tmp_path):
    from adamesh.eval.speed import bench_speed

    wav = tmp_path / "speech.wav"
    sf.write(wav, np.random.default_rng(0).normal(0, 0.1, 3 * SAMPLE_RATE).astype(np.float32), SAMPLE_RATE)
    lines = []
    (row,) = bench_speed([None], [str(wav)], repeats=1, log=lines.append)
    assert row["frontends"] == {"expression": "whisper", "pose": "whisper"} and row["shared_frontend"]
    assert row["animate_realtime"] > 0 and set(row["frontend_realtime"]) == {"expression", "pose"}
    assert any(line.startswith("| shipped | whisper | whisper (the same, computed once) |") for line in lines)


@pytest.mark.parametrize(
    "meta, needle",
    [
        (
            {"reference": {"blink_rate": 1e9}, "expression": {}, "pose": {}},
            "blink rate is 1000000000.0, not 0-60",
        ),
        ({"reference": {"blink_rate": "often"}}, "blink rate is 'often'"),
        ({"reference": {}}, "is damaged (KeyError: 'expression')"),
    ],
)
def test_damaged_profiles_are_clear_errors(meta, needle, tmp_path):
    path = tmp_path / "bad.profile"
    save_file(
        {"x": torch.zeros(1)}, str(path), metadata={"adamesh": json.dumps({"format": PROFILE_FORMAT, **meta})}
    )
    with pytest.raises(AdameshError) as err:
        api.Profile.load(path)
    assert needle in str(err.value) and "adamesh adapt" in str(err.value)


def test_loading_adapting_and_animating_import_no_training_or_corpus_code(tmp_path):
    # a fresh interpreter: this test process has imported everything already
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "ref.wav", 0.1 * rng.standard_normal(32000).astype(np.float32), 16000)
    code = (
        "import sys, numpy as np, adamesh\n"
        "from adamesh.motion import ARKIT, Motion\n"
        "m = adamesh.load()\n"
        "ref = Motion(np.random.default_rng(0).uniform(0, 0.3, (50, ARKIT.dim)).astype(np.float32), ARKIT, 25.0,"
        " audio='ref.wav')\n"
        "p = m.adapt(ref, config=adamesh.AdaptConfig(max_steps=2, min_steps=1, eval_every=1), progress=False)\n"
        "m.animate(np.zeros(16000, dtype=np.float32), profile=p)\n"
        "print(sorted(k for k in sys.modules if k.startswith('adamesh')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    loaded = eval(out.stdout.strip().splitlines()[-1])
    assert {"adamesh.api", "adamesh.models.expression", "adamesh.adapt.expression"} <= set(loaded)
    forbidden = [
        k
        for k in loaded
        if k.split(".")[1:2] in (["train"], ["data"], ["eval"], ["cli"], ["demo"], ["serve"])
    ]
    assert not forbidden, forbidden


def test_long_speech_shows_the_stages_of_animation(model, capsys):
    speech = 0.1 * np.random.default_rng(0).standard_normal(int(api.LONG_SPEECH_SECONDS + 1) * 16000)
    quiet = model.animate(speech.astype(np.float32))
    assert "head motion" not in capsys.readouterr().err  # progress is asked for, not imposed
    shown = model.animate(speech.astype(np.float32), progress=True)
    assert "speech features" in capsys.readouterr().err
    np.testing.assert_array_equal(shown.params, quiet.params)


def test_a_failed_run_leaves_no_outputs_and_keeps_the_last_runs(held_out, tmp_path, monkeypatch):
    """animate's outputs (motion, exports, video) appear together or not at all: a render that
    fails (here: the disk fills up) or is interrupted after the motion and exports are written
    leaves the earlier run's files as they were and no new or partial ones."""
    import errno

    import adamesh.render

    test = held_out[2]
    out = tmp_path / "speech.npz"
    args = ["animate", "--audio", test.audio, "--out", str(out), "--export", "csv", "--export", "glb"]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) >= {"speech.npz", "speech.csv", "speech.glb"}

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    for failure in (full_disk, lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt())):
        monkeypatch.setattr(adamesh.render, "render_motion", failure)
        try:
            rc = main([*args, "--seed", "7", "--render", str(tmp_path / "speech.mp4")])
        except KeyboardInterrupt:
            rc = None
        assert rc != 0
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_the_readme_python_snippet_runs(held_out, tmp_path, monkeypatch):
    """The README's Python block, run as written: only its example file names are replaced by a
    clip folder (one of the reference kinds it names) and a speech file."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 1
    ref_dir, _, test = held_out
    code = blocks[0].replace('"reference.mp4"', repr(str(ref_dir))).replace('"speech.wav"', repr(test.audio))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the short reference's warning
        exec(compile(code, "README.md", "exec"), namespace)
    assert (tmp_path / "me.profile").is_file() and (tmp_path / "speech.npz").is_file()
    assert namespace["verts"].shape[0] == namespace["motion"].n_frames
    assert namespace["frames"].shape[1] == 58


def test_speech_made_of_nan_is_refused_but_a_few_stray_samples_are_silenced(model):
    speech = np.sin(np.arange(16000) * 0.05).astype(np.float32) * 0.1
    with pytest.raises(AdameshError, match="16,000 of its 16,000 samples are NaN or infinite"):
        model.animate(np.full(16000, np.nan, np.float32))
    glitch = speech.copy()
    glitch[::2000] = np.inf  # 8 of 16,000
    np.testing.assert_array_equal(
        model.animate(glitch).params, model.animate(np.where(np.isinf(glitch), 0, glitch)).params
    )
