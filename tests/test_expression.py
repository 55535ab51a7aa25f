"""The expression model, its training loop, adaptation and the expression benchmark, at toy scale."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from adamesh.adapt.expression import AdaptConfig, Reference, _learnable, adapt
from adamesh.adapt.timing import timing_speech
from adamesh.cli import main
from adamesh.data.dataset import ClipDataset
from adamesh.errors import AdameshError, AdameshWarning
from adamesh.eval.metrics import pearson
from adamesh.frontends import make_frontend
from adamesh.models.checkpoint import load_model
from adamesh.models.expression import ExpressionConfig, ExpressionModel, expression_loss
from adamesh.motion import ARKIT, lip_gap
from adamesh.profile import ExpressionProfile, model_fingerprint
from adamesh.train.presets import PRESETS


@pytest.fixture(scope="module")
def corpus(small_corpus):
    return small_corpus


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "expr"
    assert (
        main(
            [
                "train",
                "expression",
                "--data",
                str(corpus),
                "--out",
                str(out),
                "--preset",
                "tiny",
                "--frontend",
                "mel",
                "--epochs",
                "2",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    return out


def test_tiny_model_overfits_a_tiny_clip(corpus):
    clip = ClipDataset(
        corpus, ("train",), speakers=["spk000"], frontend=make_frontend("mel"), workers=1, progress=False
    ).clips[0]
    torch.manual_seed(0)
    model = ExpressionModel(
        ExpressionConfig(
            feature_dim=clip.features.features.shape[1],
            **PRESETS["tiny"]["expression"],
            dropout=0.0,
            style_dropout=0.0,
        )
    )
    feats = torch.from_numpy(clip.features.features)[None]
    params = torch.from_numpy(clip.motion.params[:, :52])[None]
    model.set_statistics(feats[0], params[0])
    target, mask = model.normalise(params), torch.ones(1, feats.shape[1], dtype=torch.bool)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        loss = expression_loss(model, feats, target, model.style(params), mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])
    model.eval()
    pred = model.predict(feats[0], reference=params[0]).detach().numpy()
    jaw = list(clip.motion.space.channels).index("jawOpen")
    assert np.corrcoef(pred[:, jaw], clip.motion.params[:, jaw])[0, 1] > 0.9


def test_training_writes_a_model_folder_and_resumes(trained, corpus, capsys):
    for name in (
        "config.json",
        "model.safetensors",
        "last.safetensors",
        "train_state.pt",
        "frontend.json",
        "log.txt",
        "loss.png",
    ):
        assert (trained / name).is_file(), name
    config = json.loads((trained / "config.json").read_text())
    assert config["kind"] == "expression" and config["train"]["preset"] == "tiny"
    assert config["model"]["d_model"] == PRESETS["tiny"]["expression"]["d_model"]
    assert len((trained / "log.txt").read_text().splitlines()) == 2
    model, frontend, _ = load_model(trained)
    assert frontend.name == "mel" and not model.training
    assert torch.all(model.param_std > 0)
    # more epochs continue the run from where it stopped
    assert (
        main(
            [
                "train",
                "expression",
                "--data",
                str(corpus),
                "--out",
                str(trained),
                "--preset",
                "tiny",
                "--frontend",
                "mel",
                "--epochs",
                "3",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert "resuming" in capsys.readouterr().out
    assert len((trained / "log.txt").read_text().splitlines()) == 3
    # another configuration in the same folder is refused, and nothing is touched
    before = (trained / "last.safetensors").read_bytes()
    assert (
        main(
            [
                "train",
                "expression",
                "--data",
                str(corpus),
                "--out",
                str(trained),
                "--preset",
                "tiny",
                "--frontend",
                "mel",
                "--lr",
                "0.1",
                "--workers",
                "1",
            ]
        )
        == 1
    )
    assert "--fresh" in capsys.readouterr().err
    assert (trained / "last.safetensors").read_bytes() == before


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_training_state_runs_no_code(trained, corpus, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    marker = tmp_path / "marker"
    torch.save({"optimiser": _Payload(marker)}, out / "train_state.pt")
    assert (
        main(
            [
                "train",
                "expression",
                "--data",
                str(corpus),
                "--out",
                str(out),
                "--preset",
                "tiny",
                "--frontend",
                "mel",
                "--epochs",
                "3",
                "--workers",
                "1",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("adamesh: error: cannot resume from") and "--fresh" in err and err.count("\n") == 1
    assert not marker.exists()
    # damaged weight files (a disk that filled up) are written again from the training state
    shutil.copy(trained / "train_state.pt", out / "train_state.pt")
    for name in ("last.safetensors", "model.safetensors"):
        (out / name).write_bytes((out / name).read_bytes()[:1000])
    args = ["train", "expression", "--data", str(corpus), "--out", str(out), "--preset", "tiny",
            "--frontend", "mel", "--epochs", "1", "--workers", "1"]  # fmt: skip
    assert main(args) == 0 and "already finished" in capsys.readouterr().out
    for name in ("last.safetensors", "model.safetensors"):
        repaired, original = load_file(str(out / name)), load_file(str(trained / name))
        assert repaired.keys() == original.keys(), name
        assert all(torch.equal(repaired[k], original[k]) for k in original), name


def test_training_is_reproducible_and_resumes_exactly(corpus, tmp_path, capsys):
    def train(run, epochs, data=corpus):
        return main(
            [
                "train",
                "expression",
                "--data",
                str(data),
                "--out",
                str(tmp_path / run),
                "--preset",
                "tiny",
                "--frontend",
                "mel",
                "--epochs",
                str(epochs),
                "--workers",
                "1",
            ]
        )

    torch.manual_seed(123)
    caller_rng = torch.get_rng_state()
    assert train("a", 2) == 0 and train("b", 2) == 0
    assert torch.equal(torch.get_rng_state(), caller_rng)  # training leaves the caller's RNG as it was
    assert train("c", 1) == 0 and train("c", 2) == 0  # stopped after one epoch, resumed
    a, b, c = (load_file(str(tmp_path / run / "last.safetensors")) for run in "abc")
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)
    other = tmp_path / "other"
    shutil.copytree(corpus, other)
    capsys.readouterr()
    assert train("c", 3, other) == 1  # resuming on other data is refused
    assert "holds a run on other data" in capsys.readouterr().err


def test_training_killed_by_a_signal_resumes_where_an_unstopped_run_ends(corpus, tmp_path):
    """SIGTERM or SIGKILL in the middle of an epoch, then the same command again: nothing partial
    is left, and the run ends where one that was never stopped does. Two processes can differ in the
    last bit of a sum, which Adam turns into different biases ahead of a batch norm (their gradient is
    rounding noise), so this compares the validation losses; test_a_kill_at_any_write_..., in one
    process, compares the weights exactly."""
    args = [
        sys.executable,
        "-m",
        "adamesh",
        "train",
        "expression",
        "--data",
        str(corpus),
        "--preset",
        "tiny",
        "--frontend",
        "mel",
        "--epochs",
        "3",
        "--workers",
        "1",
        "--out",
    ]
    assert subprocess.run(args + [str(tmp_path / "whole")], capture_output=True).returncode == 0
    for sig in (signal.SIGTERM, signal.SIGKILL):
        out = tmp_path / sig.name
        proc = subprocess.Popen(
            args + [str(out)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        for line in proc.stdout:  # stop it once the first epoch is saved, in the second
            if line.startswith("epoch   1"):
                proc.send_signal(sig)
                break
        proc.wait(60)
        assert proc.returncode == (143 if sig == signal.SIGTERM else -9)
        if sig == signal.SIGTERM:
            assert not [p.name for p in out.iterdir() if ".partial-" in p.name]
        assert subprocess.run(args + [str(out)], capture_output=True).returncode == 0
        assert not [p.name for p in out.iterdir() if ".partial-" in p.name]
        whole, resumed = (
            [h["val_loss"] for h in torch.load(d / "train_state.pt", weights_only=True)["history"]]
            for d in (tmp_path / "whole", out)
        )
        assert len(resumed) == 3 and np.allclose(resumed, whole, rtol=0, atol=1e-3), (
            sig.name,
            whole,
            resumed,
        )


def test_a_kill_at_any_write_of_an_epoch_resumes_to_the_same_weights(corpus, tmp_path, monkeypatch, capsys):
    """The run is stopped as SIGTERM would stop it, once at each file write of its second epoch:
    the resumed run must end with the weights of a run that was never stopped."""
    from adamesh.cli import Terminated
    from adamesh.train import loop

    def train(out):
        return main(["train", "expression", "--data", str(corpus), "--out", str(out), "--preset", "tiny",
                     "--frontend", "mel", "--epochs", "3", "--workers", "1"])  # fmt: skip

    written, kill_at = [], None
    real = loop.atomic_output

    @contextlib.contextmanager
    def writing(path, *args, **kwargs):
        written.append(Path(path).name)
        if len(written) == kill_at:
            raise Terminated()
        with real(path, *args, **kwargs) as tmp:
            yield tmp

    monkeypatch.setattr(loop, "atomic_output", writing)
    assert train(tmp_path / "whole") == 0
    states = [i for i, name in enumerate(written, 1) if name == "train_state.pt"]
    epoch2 = range(states[0] + 1, states[1] + 1)  # the writes after epoch 1's state, to epoch 2's
    assert len(epoch2) >= 3  # epoch 1's weights and plot, epoch 2's state
    whole = load_file(str(tmp_path / "whole" / "last.safetensors"))
    for n in [*epoch2, states[1] + 1]:  # and the weights file just after epoch 2's state
        written, kill_at, out = [], n, tmp_path / f"killed_at_{n}"
        assert train(out) == 143, written
        kill_at = None
        assert train(out) == 0
        resumed = load_file(str(out / "last.safetensors"))
        assert all(torch.equal(whole[k], resumed[k]) for k in whole), written[n - 1]
    capsys.readouterr()


def held_out(corpus, frontend):
    clips = ClipDataset(corpus, ("reference", "test"), frontend=frontend, workers=1, progress=False).clips
    refs = [c for c in clips if c.info.role == "reference"]
    tests = [c for c in clips if c.info.role == "test"]
    ref = Reference(
        np.concatenate([c.features.features for c in refs]),
        np.concatenate([c.motion.params[:, :52] for c in refs]),
        refs[0].motion.fps,
    )
    return ref, tests


@pytest.mark.parametrize("method", ["molora", "lora", "full"])
def test_adaptation_improves_the_reference_and_leaves_the_base_alone(trained, corpus, method):
    model, frontend, _ = load_model(trained)
    ref, _ = held_out(corpus, frontend)
    before = model_fingerprint(model)
    profile = adapt(model, ref, AdaptConfig(method=method, max_steps=60, patience=100))
    assert model_fingerprint(model) == before
    members = AdaptConfig().members
    assert len(profile.stats["val_loss_after"]) == members
    assert all(a < b for a, b in zip(profile.stats["val_loss_after"], profile.stats["val_loss_before"]))
    assert profile.stats["trainable"] > 0
    if method == "lora":
        assert profile.spec.ranks == (7,) * members
    if method == "molora":  # the members' branches side by side
        assert profile.spec.ranks == (1, 2, 4) * members and profile.stats["trainable"] < 0.5 * members * sum(
            p.numel() for p in model.parameters()
        )


def test_adaptation_gives_the_same_profile_on_a_busy_machine(trained, corpus, tmp_path):
    """Steps decide how long adaptation trains, not the clock: with every core busy (and each step
    slower) the same reference and seed give the same adapter tensors, bit for bit."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    model, frontend, _ = load_model(trained)
    ref, _ = held_out(corpus, frontend)
    cfg = AdaptConfig(max_steps=40, min_steps=20, eval_every=10)
    quiet = adapt(model, ref, cfg)
    spin = "import time\nend = time.time() + 120\nwhile time.time() < end: pass"
    busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 2)]
    try:
        loaded = adapt(model, ref, cfg)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert (
        loaded.stats["steps"] == quiet.stats["steps"]
        and loaded.stats["best_step"] == quiet.stats["best_step"]
    )
    files = [p.save(tmp_path / f"{n}.safetensors") for n, p in (("quiet", quiet), ("busy", loaded))]
    a, b = (load_file(f) for f in files)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_time_limit_holds_before_the_held_out_slice_may_judge_and_warns(trained, corpus):
    """With no time left every member stops after its first step (before min_steps, where the
    limit used to be checked only at evaluations), keeps what that step learned, and says that the
    profile now depends on the machine's speed."""
    model, frontend, _ = load_model(trained)
    ref, _ = held_out(corpus, frontend)
    torch.manual_seed(123)
    caller_rng = torch.get_rng_state()
    with pytest.warns(AdameshWarning, match="time limit"):
        profile = adapt(model, ref, AdaptConfig(max_seconds=0.0, max_steps=300, min_steps=60, members=3))
    assert torch.equal(torch.get_rng_state(), caller_rng)  # adaptation draws from its own generators only
    assert profile.stats["steps"] == [1, 1, 1] and profile.stats["best_step"] == [1, 1, 1]
    assert any(
        v.abs().sum() > 0 for k, v in profile.adapter.items() if "lora_B" in k
    )  # not the untrained adapter
    with pytest.warns(AdameshWarning):
        again = adapt(model, ref, AdaptConfig(max_seconds=0.0, max_steps=300, min_steps=60, members=3))
    assert all(
        torch.equal(v, again.adapter[k]) for k, v in profile.adapter.items()
    )  # the same seed, the same adapter


def test_lip_timing_term_keeps_when_the_lips_move_on_unrelated_speech(trained, corpus):
    """Adapted hard on 3 s, the lips drift from the speech's timing on other sentences unless the
    lip-timing term holds them; its speech is espeak's, the check runs on the held-out test clips."""
    model, frontend, _ = load_model(trained)
    ref, tests = held_out(corpus, frontend)
    short = Reference(ref.features[:75], ref.params[:75], ref.fps)
    speech = timing_speech(frontend, clips=4)
    assert len(speech) == 4 and all(f.shape[1] == ref.features.shape[1] and len(f) > 25 for f in speech)

    def timing_r(weight):
        cfg = AdaptConfig(members=1, lr=3e-2, max_steps=80, min_steps=80, timing_weight=weight)
        profile = adapt(model, short, cfg, speech=speech)
        adapted = profile.apply(model)
        rs = []
        with torch.no_grad():
            for c in tests:
                feats = torch.from_numpy(c.features.features)
                base = lip_gap(model.predict(feats).numpy(), ARKIT.channels)
                rs.append(
                    pearson(
                        lip_gap(adapted.predict(feats, style=profile.style).numpy(), ARKIT.channels), base
                    )
                )
        return float(np.mean(rs))

    free, held = timing_r(0.0), timing_r(1.0)
    print(f"lip-gap r with the base model on test clips: free {free:.3f}, held {held:.3f}")
    assert held > free + 0.02


def test_channels_the_reference_cannot_teach_keep_the_base_prediction(trained, corpus):
    model, frontend, _ = load_model(trained)
    ref, _ = held_out(corpus, frontend)
    feats = torch.as_tensor(ref.features)
    params = torch.as_tensor(ref.params, dtype=torch.float32).clone()
    static = int(torch.argmin(model.param_std))  # a channel the corpus never moves
    params[:, static] = 0.3
    params[:, ARKIT.index("eyeLookInLeft")] = 0.9
    out = _learnable(model, feats, params, ("eyeLookInLeft",))
    with torch.no_grad():
        generic = model.predict(feats)
    torch.testing.assert_close(out[:, static], generic[:, static])
    torch.testing.assert_close(out[:, ARKIT.index("eyeLookInLeft")], generic[:, ARKIT.index("eyeLookInLeft")])
    torch.testing.assert_close(out[:, ARKIT.index("jawOpen")], params[:, ARKIT.index("jawOpen")])


def test_profile_round_trip_and_model_check(trained, corpus, tmp_path):
    model, frontend, _ = load_model(trained)
    ref, tests = held_out(corpus, frontend)
    profile = adapt(
        model, ref, AdaptConfig(max_steps=20, adapter=replace(AdaptConfig().adapter, alpha=4.0))
    )  # scales 4, 2, 1
    path = profile.save(tmp_path / "p.safetensors")
    loaded = ExpressionProfile.load(path)
    assert loaded.spec.alpha == 4.0 and loaded.spec.ranks == (1, 2, 4) * AdaptConfig().members
    feats = torch.from_numpy(tests[0].features.features)
    a = profile.apply(model).predict(feats, style=profile.style)
    b = loaded.apply(model).predict(feats, style=loaded.style)
    torch.testing.assert_close(a, b)
    loaded.spec = replace(
        loaded.spec, alpha=None
    )  # the scales are part of the adapter: without them it is another one
    assert not torch.allclose(a, loaded.apply(model).predict(feats, style=loaded.style))
    other = ExpressionModel(model.config)
    with pytest.raises(AdameshError, match="another model"):
        loaded.apply(other)
    with pytest.raises(AdameshError, match="at least"):
        adapt(model, Reference(ref.features[:10], ref.params[:10], ref.fps))
    (tmp_path / "bad.safetensors").write_bytes(b"nonsense")
    with pytest.raises(AdameshError, match="cannot read profile"):
        ExpressionProfile.load(tmp_path / "bad.safetensors")


def test_bench_expression_table(trained, corpus, tmp_path):
    from adamesh.eval.expression import bench_expression

    result = bench_expression(
        str(corpus),
        str(trained),
        out=str(tmp_path),
        rig="builtin",
        lengths=(5.0,),
        main_length=5.0,
        renders=1,
        adapt_steps=30,
        log=lambda *a: None,
    )
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows) == {"none", "style", "full", "lora", "molora", "ground truth"}
    truth = rows.pop("ground truth")
    assert truth["lve_sq"] == 0 and truth["mve"] == 0 and truth["closure"] == 1.0
    for r in rows.values():
        assert np.isfinite([r["lve_sq"], r["mve"], r["lip_rmse"], r["fdd"], r["style_err"]]).all()
        assert r["lve_sq"] > 0 and r["lve_mm"] ** 2 <= r["lve_sq"] + 1e-9  # Jensen: mean(x)^2 <= mean(x^2)
    assert rows["none"]["trainable"] == 0 and rows["molora"]["trainable"] > 0
    assert "| molora |" in (tmp_path / "table.md").read_text()
    video = next(tmp_path.glob("side_by_side_*.mp4"))
    assert video.stat().st_size > 10_000


def test_room_tone_is_the_clips_quietest_background():
    from adamesh.eval.lipsync import _room_tone

    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(3 * 16000)).astype(np.float32)  # loud, but for 0.6 s of hiss
    audio[16000 : 16000 + 9600] *= 0.01
    tone = _room_tone(audio, 5.0, np.random.default_rng(1))
    assert tone.shape == (5 * 16000,) and tone.dtype == np.float32
    assert np.sqrt(np.mean(tone**2)) == pytest.approx(0.003, rel=0.1)
    assert not _room_tone(audio[:100], 5.0, rng).any()  # too short to have a background: silence


def test_bench_lipsync_on_real_videos_grouped_by_speaker(trained, tmp_path):
    from conftest import DATA

    grid = DATA / "video" / "grid"
    if not (grid / "lbax4n.mpg").is_file():
        pytest.skip(f"GRID clips not found at {grid} (../shared/data is absent)")
    pytest.importorskip("mediapipe")
    from adamesh.eval.lipsync import bench_lipsync

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("lbax4n.mpg", "bbaf2n.mpg"):
        (videos / name).symlink_to(grid / name)
    (videos / "clips.csv").write_text("file,speaker\nlbax4n.mpg,anna\nbbaf2n.mpg,anna\n")
    result = bench_lipsync(
        [str(trained)], [str(videos)], ("clean", "telephone"), out=str(tmp_path / "out"), log=lambda *a: None
    )
    model = f"{trained.name} (mel)"
    assert [(r["clip"], r["condition"]) for r in result["clips"]] == [
        ("bbaf2n.mpg", "clean"),
        ("bbaf2n.mpg", "telephone"),
        ("lbax4n.mpg", "clean"),
        ("lbax4n.mpg", "telephone"),
    ]
    lbax = result["clips"][2]["r"]
    assert 0.4 < lbax["loudness (dB)"] < 0.8  # loudness follows the mouth on this clip (r = 0.57)
    assert -1 <= lbax[model] <= 1 and lbax[model] != 0
    late = result["clips"][2]["late_ms"]
    assert set(late) == {"loudness (dB)", model} and all(v % 40 == 0 and abs(v) <= 200 for v in late.values())
    (clean,) = [s for s in result["speakers"] if s["condition"] == "clean"]
    assert (clean["speaker"], clean["clips"]) == ("anna", 2)
    assert clean["r"][model] == pytest.approx(np.mean([r["r"][model] for r in result["clips"][::2]]))
    summary = result["summary"]["clean"]["videos"]
    assert summary["speakers"] == 1 and summary["beats"][model] == int(
        clean["r"][model] > clean["r"]["loudness (dB)"]
    )
    assert "| videos | anna | 2 |" in (tmp_path / "out" / "table.md").read_text()
    # the mouth through a pause after each clip, measured once per clip (on clean audio)
    assert ["pause" in r for r in result["clips"]] == [True, False, True, False]
    pause = result["clips"][0]["pause"][model]
    assert set(pause) == {"silence", "room tone"} and all(np.isfinite(v) and v >= 0 for v in pause.values())
    assert "| videos | room tone |" in (tmp_path / "out" / "table.md").read_text()
    # lip closures event by event: the speaker's counts are the sums of its clean clips'
    clips = [r["closures"][model] for r in result["clips"][::2]]
    pooled = clean["closures"][model]
    assert pooled["closures"] == sum(c["closures"] for c in clips) > 0  # GRID sentences have p, b and m
    assert pooled["recall"] == pytest.approx(sum(c["reproduced"] for c in clips) / pooled["closures"])
    assert "| videos | anna |" in (tmp_path / "out" / "table.md").read_text().split("Lip closures")[1]
    with pytest.raises(AdameshError, match="no videos"):
        bench_lipsync([str(trained)], [str(tmp_path / "empty")])


def test_long_speech_is_predicted_in_cross_faded_windows(trained, corpus):
    """Beyond 30 s the network runs in overlapping windows (bounded memory); the result follows
    the whole-sequence prediction."""
    model, frontend, _ = load_model(trained)
    clips = ClipDataset(corpus, ("train",), frontend=frontend, workers=1, progress=False).clips
    feats = torch.from_numpy(np.concatenate([c.features.features for c in clips * 2])[:2000])
    assert len(feats) == 2000  # three windows of 750 frames
    whole = model.predict(feats, window=10**6)
    windowed = model.predict(feats)
    assert windowed.shape == whole.shape
    np.testing.assert_array_equal(model.predict(feats[:700]), model.predict(feats[:700], window=10**6))
    # windows at 0, 650 and 1300: each one's own prediction alone where no other reaches, a
    # cross-fade of the two where they overlap (frames 650-749 and 1300-1399)
    first, second = model.predict(feats[:750]), model.predict(feats[650:1400])
    torch.testing.assert_close(windowed[:650], first[:650], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(windowed[750:1300], second[100:650], atol=1e-5, rtol=1e-5)
    ramp = ((torch.arange(100) + 0.5) / 100)[:, None]
    torch.testing.assert_close(
        windowed[650:750], (1 - ramp) * first[650:] + ramp * second[:100], atol=1e-5, rtol=1e-5
    )
    # and the whole follows the whole-sequence prediction (a full-size model: r 0.998 on 75 s of speech)
    gap_whole, gap_windowed = (lip_gap(x.numpy(), ARKIT.channels) for x in (whole, windowed))
    assert pearson(gap_whole, gap_windowed) > 0.95


def test_closures_are_counted_event_by_event():
    from adamesh.eval.metrics import closure_scores, speech_mask

    n = 120
    truth, model = np.ones(n), np.ones(n)
    for t in (20, 50, 80):
        truth[t - 1 : t + 2] = [0.3, 0.0, 0.3]  # three seals of the real lips
    for t in (21, 52, 100):
        model[t - 1 : t + 2] = [0.3, 0.05, 0.3]  # two of them, late by 1 and 2 frames, and one of its own
    scores = closure_scores(truth, model, np.ones(n, bool))
    assert scores == {
        "closures": 3,
        "reproduced": 2,
        "model_closures": 3,
        "real": 2,
        "depth": (0.05 + 0.05 + 1.0) / 3,
    }  # open at the missed one
    # three frames too late is a miss; outside speech nothing counts
    late = np.ones(n)
    late[83] = 0.0
    assert closure_scores(truth, late, np.ones(n, bool))["reproduced"] == 0
    speech = np.ones(n, bool)
    speech[70:90] = False
    assert closure_scores(truth, model, speech)["closures"] == 2
    # a silent stop closure inside a word stays speech; a long pause does not
    loudness = np.full(60, -20.0)
    loudness[10:14] = -80.0  # 160 ms: a closure
    loudness[30:50] = -80.0  # 800 ms: a pause
    mask = speech_mask(loudness)
    assert mask[10:14].all() and not mask[35:45].any() and mask[:10].all() and mask[50:].all()


def test_the_seal_term_follows_the_lip_gap_and_weighs_closures_inside_speech():
    from adamesh.models.expression import SEAL_CLOSURE_WEIGHT, seal_loss

    target = torch.tensor([[0, 0, 0, 0, 0.5, 1, 1, 0.1, 0, 0.1, 1, 1, 0.5, 0, 0, 0, 0, 0, 0, 0]])
    mask = torch.ones_like(target, dtype=torch.bool)
    assert seal_loss(target, target, mask, 0.15) == 0

    def cost(frame):  # an error of 0.1 (a tenth of the 95th percentile) at one frame
        pred = target.clone()
        pred[0, frame] += 0.1
        return float(seal_loss(pred, target, mask, 0.15))

    assert cost(8) == pytest.approx((1 + SEAL_CLOSURE_WEIGHT) * cost(5))  # a closure between openings
    assert cost(1) == pytest.approx(cost(5))  # a pause is followed like any other frame
    assert seal_loss(target + 0.1, target, ~mask, 0.15) == 0  # padding costs nothing
