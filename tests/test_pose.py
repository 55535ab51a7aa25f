"""The pose adapter: VQ-VAE, PoseGPT, style matrices and retrieval, at toy scale."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from adamesh.adapt.pose import retrieve_pose_style
from adamesh.cli import main
from adamesh.data.dataset import ClipDataset
from adamesh.errors import AdameshError
from adamesh.models.checkpoint import load_model, load_pose_model
from adamesh.models.pose import (
    CodeSampler,
    PoseConfig,
    PoseVQVAE,
    blend_weights,
    codebook_usage,
    style_distance,
    unit_steps,
)


@pytest.fixture(scope="module")
def pose_model(small_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("pose") / "pose"
    assert (
        main(
            [
                "train",
                "pose",
                "--data",
                str(small_corpus),
                "--out",
                str(out),
                "--preset",
                "tiny",
                "--frontend",
                "mel",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def loaded(pose_model):
    return load_pose_model(pose_model)


def clips_of(corpus, frontend, roles, speaker=None):
    return ClipDataset(
        corpus, roles, speakers=[speaker] if speaker else None, frontend=frontend, workers=1, progress=False
    ).clips


def head(clip):
    return clip.motion.params[:, clip.motion.space.n_expression :]


def test_training_writes_both_stages_and_the_gallery(pose_model):
    for stage, kind in (("vqvae", "pose_vq"), ("gpt", "pose_gpt")):
        for name in ("config.json", "model.safetensors", "last.safetensors", "log.txt", "loss.png"):
            assert (pose_model / stage / name).is_file(), (stage, name)
        assert json.loads((pose_model / stage / "config.json").read_text())["kind"] == kind
    with pytest.raises(AdameshError, match="does not hold an expression"):
        load_model(pose_model / "gpt", kind="expression")


def test_gallery_has_one_style_matrix_per_training_speaker(loaded):
    adapter, frontend = loaded
    assert adapter.videos == ["spk000", "spk001", "spk002"]
    assert adapter.matrices.shape == (3, frontend.n_units, adapter.vq.config.code_dim)
    assert (adapter.counts.sum(1) > 0).all()
    assert adapter.gpt.styles.weight.shape[0] == 3


def test_vqvae_reconstructs_head_motion_and_uses_its_codebook(loaded, small_corpus):
    adapter, frontend = loaded
    clips = clips_of(small_corpus, frontend, ("val",))
    errors, spread, codes = [], [], []
    for c in clips:
        pose = head(c)
        errors.append(np.abs(adapter.vq.reconstruct(pose) - pose).mean(0))
        spread.append(np.abs(pose - pose.mean(0)).mean(0))
        with torch.no_grad():
            code = adapter.vq(torch.from_numpy(adapter.vq.centre(pose))[None])[1][0]
        assert code.shape == (-(-len(pose) // adapter.downsample), adapter.vq.config.quantizers)
        codes.append(code.numpy())
    # better than the clip's own mean pose (a tiny model and codebook: no more than that)
    assert np.mean(errors) < np.mean(spread)
    for level in range(adapter.vq.config.quantizers):
        usage = codebook_usage(np.concatenate(codes)[:, level], adapter.vq.config.codebook_size)
        assert usage["perplexity"] > 2


def test_codebook_usage():
    assert codebook_usage(np.arange(8), 8) == pytest.approx(
        {"perplexity": 8.0, "dead_codes": 0, "codebook_size": 8}
    )
    u = codebook_usage(np.array([0, 0, 0, 0]), 4)
    assert u["perplexity"] == pytest.approx(1.0) and u["dead_codes"] == 3


def test_the_same_seed_gives_the_same_motion(loaded, small_corpus):
    adapter, frontend = loaded
    feats = max((c.features.features for c in clips_of(small_corpus, frontend, ("test",))), key=len)
    a = adapter.animate(feats, seed=3)
    np.testing.assert_array_equal(a, adapter.animate(feats, seed=3))
    assert a.shape == (len(feats), 6) and np.isfinite(a).all()
    assert not np.array_equal(a, adapter.animate(feats, seed=4))
    style = adapter.gpt.styles.weight[1].detach()
    assert not np.array_equal(adapter.animate(feats, style, seed=3), a)  # the style changes the motion


def test_codes_are_generated_on_one_thread_and_the_callers_threads_come_back(
    loaded, small_corpus, monkeypatch
):
    adapter, frontend = loaded
    feats = max((c.features.features for c in clips_of(small_corpus, frontend, ("test",))), key=len)
    seen, step = [], CodeSampler.next
    monkeypatch.setattr(CodeSampler, "next", lambda self: seen.append(torch.get_num_threads()) or step(self))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        adapter.animate(feats, seed=3)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(CodeSampler, "next", lambda self: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            adapter.animate(feats, seed=3)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_generation_with_the_key_value_cache_is_the_teacher_forced_model(loaded, small_corpus):
    """Each code generated step by step (cached keys and values) is the one the full causal forward
    pass over the same prefix predicts: greedy codes equal the argmax of the teacher-forced logits."""
    adapter, frontend = loaded
    gpt = adapter.gpt
    feats = np.concatenate([c.features.features for c in clips_of(small_corpus, frontend, ("test",))])
    feats = torch.from_numpy(feats[: gpt.config.context * gpt.config.downsample])
    style = gpt.styles.weight[1]
    codes = gpt.generate(feats, style, temperature=0)
    assert codes.shape == (len(feats) // gpt.config.downsample, gpt.config.quantizers) == (32, 2)
    speech = gpt.speech(feats[None])
    with torch.no_grad():
        logits = gpt(codes[None], speech, style[None])[0]  # (N, Q, K)
    np.testing.assert_array_equal(codes.numpy(), logits.argmax(-1).numpy())
    assert all(len(set(codes[:, q].tolist())) > 1 for q in range(codes.shape[1]))
    # sampled codes follow the same distributions: a sampled code is never one the model rules out
    sampled = gpt.generate(feats, style, temperature=1.0, top_k=5, seed=1)
    with torch.no_grad():
        top5 = gpt(sampled[None], speech, style[None])[0].topk(5).indices  # (N, Q, 5)
    assert all(int(c) in top5[i, q].tolist() for (i, q), c in np.ndenumerate(sampled.numpy()))


def test_cached_generation_across_windows_is_the_teacher_forced_model(loaded, small_corpus):
    """Past one window, each window is primed with the last codes of the one before: its new codes
    are the argmax of the full forward pass over that primed prefix."""
    adapter, frontend = loaded
    gpt, c = adapter.gpt, adapter.gpt.config
    feats = np.concatenate([c_.features.features for c_ in clips_of(small_corpus, frontend, ("test",))])
    feats = torch.from_numpy(feats[: int(2.5 * c.context * c.downsample)])
    style = gpt.styles.weight[0]
    codes = gpt.generate(feats, style, temperature=0)
    speech = gpt.speech(feats[None])
    overlap, start, checked = c.context // 2, 0, 0
    while start + overlap < len(codes) or start == 0:
        window = speech[:, start : start + c.context]
        own = codes[start : start + window.shape[1]]
        with torch.no_grad():
            greedy = gpt(own[None], window, style[None])[0].argmax(-1)
        first_new = 0 if start == 0 else overlap
        np.testing.assert_array_equal(own[first_new:].numpy(), greedy[first_new:].numpy())
        checked += 1
        start += c.context - overlap
    assert checked >= 3


def test_long_audio_is_generated_in_windows_that_join_continuously(loaded, small_corpus):
    adapter, frontend = loaded
    feats = np.concatenate([c.features.features for c in clips_of(small_corpus, frontend, ("test",))])
    c = adapter.gpt.config
    assert len(feats) > 2 * c.context * c.downsample  # at least three windows
    codes = adapter.gpt.generate(torch.from_numpy(feats), adapter.gpt.null_style, seed=0)
    assert len(codes) == -(-len(feats) // c.downsample)
    # the first window does not depend on what comes after it
    first = adapter.gpt.generate(
        torch.from_numpy(feats[: c.context * c.downsample]), adapter.gpt.null_style, seed=0
    )
    np.testing.assert_array_equal(codes[: c.context], first)
    # joins between windows are no jumpier than the boundaries between any two codes (a join that
    # restarted the motion would jump by a posture's size, several times the largest code step)
    pose = adapter.animate(feats, seed=0)
    step = np.abs(np.diff(pose, axis=0)).sum(1)
    boundaries = np.arange(c.downsample, len(pose), c.downsample) - 1
    joins = [c.context * c.downsample - 1]
    hop = c.context - c.context // 2
    while joins[-1] + hop * c.downsample < len(pose) - 1:
        joins.append(joins[-1] + hop * c.downsample)
    others = np.setdiff1d(boundaries, joins)
    assert step[joins].max() <= 1.5 * step[others].max()


def test_retrieval_on_a_training_video_returns_that_video(loaded, small_corpus):
    adapter, frontend = loaded
    for speaker in adapter.videos:
        clips = clips_of(small_corpus, frontend, ("train", "val"), speaker)
        result = retrieve_pose_style(
            adapter,
            [head(c) for c in clips],
            [c.features.units for c in clips],
            clips[0].motion.fps,
            method="top1",
        )
        assert result.chosen == [speaker] and result.distances[speaker] == pytest.approx(0, abs=1e-9)
        np.testing.assert_allclose(
            result.posture, np.concatenate([head(c) for c in clips]).mean(0), rtol=1e-6
        )
        index = adapter.videos.index(speaker)
        torch.testing.assert_close(result.style, adapter.gpt.styles.weight[index].detach())
        blend = retrieve_pose_style(
            adapter,
            [head(c) for c in clips],
            [c.features.units for c in clips],
            clips[0].motion.fps,
            method="blend",
            k=2,
        )
        assert blend.chosen[0] == speaker and blend.weights[0] == pytest.approx(1.0, abs=1e-3)


def test_a_short_or_empty_reference_is_refused(loaded, small_corpus):
    adapter, frontend = loaded
    clip = clips_of(small_corpus, frontend, ("test",))[0]
    for n in (0, 25):
        with pytest.raises(AdameshError, match="needs at least 2 s"):
            retrieve_pose_style(adapter, [head(clip)[:n]], [clip.features.units[:n]], clip.motion.fps)
    with pytest.raises(AdameshError, match="unknown pose retrieval"):
        retrieve_pose_style(adapter, [head(clip)], [clip.features.units], clip.motion.fps, method="mean")


def test_style_distance_and_blend_weights():
    gallery = np.zeros((3, 4, 2))
    gallery[1] += 1.0
    gallery[2] += 3.0
    counts = np.ones((3, 4))
    counts[2, :2] = 0  # video 2 never said units 0 and 1
    ref = np.full((4, 2), 0.9)
    ref_counts = np.array([5.0, 5.0, 5.0, 0.0])  # the reference never said unit 3
    d = style_distance(ref, ref_counts, gallery, counts)
    assert d == pytest.approx([1.62, 0.02, 8.82])  # over shared units only
    assert np.isinf(
        style_distance(ref, np.array([0, 0, 0, 1.0]), gallery[2:], counts[2:] * [1, 1, 1, 0])
    ).all()
    order, w = blend_weights(d, 2)
    assert list(order) == [1, 0] and w.sum() == pytest.approx(1) and w[0] > 0.95


def test_units_per_code_step_are_a_majority_vote():
    assert list(unit_steps(np.array([1, 1, 2, 1, 3, 3, 3, 0, 4]), 4, 3)) == [1, 3, 4]


def test_vqvae_shapes_for_any_length():
    torch.manual_seed(0)
    vq = PoseVQVAE(PoseConfig(hidden=16, code_dim=8, codebook_size=16, quantizers=3)).eval()
    for n in (1, 7, 8, 33):
        recon, codes, _ = vq(torch.randn(2, n, 6))
        assert recon.shape == (2, n, 6) and codes.shape == (2, -(-n // 4), 3)
        torch.testing.assert_close(vq.decode(codes, n), recon)


def test_pose_metrics_on_known_signals():
    from adamesh.eval.metrics import (
        axis_std,
        beat_alignment,
        frechet_distance,
        pose_diversity,
        pose_features,
        speech_onsets,
    )

    fps = 25.0
    t = np.arange(100) / fps
    still = np.zeros((100, 3))
    nod = np.c_[np.radians(5) * np.sin(2 * np.pi * t), np.zeros(100), np.zeros(100)]
    assert pose_diversity([still]) == 0 and pose_diversity([nod]) > pose_diversity([nod * 0.5]) > 0
    np.testing.assert_allclose(axis_std([nod]), [5 / np.sqrt(2), 0, 0], rtol=0.05)
    # the head's speed is lowest at the top and bottom of each nod (every 0.5 s from 0.25 s)
    on_pauses = np.round(np.arange(0.25, 3.5, 0.5) * fps).astype(int)
    assert beat_alignment(nod, on_pauses, fps) > 0.9
    assert beat_alignment(nod, on_pauses + 6, fps) < 0.3  # a quarter period off: mid-nod, fastest
    # loudness steps up at 1 s and 2 s: two onsets there
    sr = 16000
    audio = np.zeros(3 * sr, np.float32)
    for start in (1, 2):
        audio[start * sr : start * sr + sr // 2] = 0.3 * np.sin(2 * np.pi * 200 * np.arange(sr // 2) / sr)
    assert list(speech_onsets(audio, sr, fps)) == pytest.approx([25, 50], abs=1)
    a = pose_features(nod, fps)
    assert a.shape == (7, 9)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(x, x + [2, 0, 0]) == pytest.approx(4, rel=0.01)


def test_bench_pose_table(pose_model, small_corpus, tmp_path):
    from adamesh.eval.pose import POSE_METHODS, bench_pose

    result = bench_pose(
        str(small_corpus),
        str(pose_model),
        out=str(tmp_path),
        reference_seconds=5.0,
        codebook_sizes=(8,),
        renders=1,
        log=lambda *a: None,
    )
    rows = {r["method"]: r for r in result["rows"]}
    assert list(rows) == list(POSE_METHODS)
    assert rows["ground truth"]["fd"] == pytest.approx(0, abs=1e-6)
    for r in rows.values():
        assert np.isfinite([r["diversity_deg"], r["std_pitch"], r["fd"], r["style_err"]]).all()
        assert 0 <= r["beat_alignment"] <= 1
    assert rows["top-1"]["fd"] > 0
    (retrieved,) = result["retrieval"]  # the one held-out speaker
    assert retrieved["top1"] in ("spk000", "spk001", "spk002")
    assert [v["codebook_size"] for v in result["vq"]] == [32, 8]
    assert all(v["dead_codes"] <= v["codebook_size"] and v["perplexity"] >= 1 for v in result["vq"])
    assert "| blend |" in (tmp_path / "table.md").read_text()
    assert next(tmp_path.glob("side_by_side_*.mp4")).stat().st_size > 10_000


def test_the_motion_is_placed_on_the_posture_and_scaled_about_it(loaded, small_corpus):
    adapter, frontend = loaded
    feats = np.concatenate([c.features.features for c in clips_of(small_corpus, frontend, ("test",))])
    motion = adapter.animate(feats, seed=2)
    rest = adapter.vq.pose_mean.numpy()
    # the prior learned motion about the resting pose: PoseGPT's motion stays near it
    assert np.abs(motion.mean(0) - rest).max() < 2 * motion.std(0).max()
    np.testing.assert_allclose(adapter.place(motion), motion, atol=1e-6)
    posture = np.array([0.1, -0.05, 0.02, 0.0, 0.001, 0.0], np.float32)
    gain = np.array([2, 1, 0.5, 1, 1, 1], np.float32)
    held = adapter.place(motion, posture, gain)
    np.testing.assert_allclose(held - posture, gain * (motion - rest), atol=1e-6)
    # frame by frame: any part placed alone is that part of the whole
    np.testing.assert_allclose(adapter.place(motion[40:90], posture, gain), held[40:90], atol=1e-7)


def test_pose_style_round_trip_and_model_check(loaded, small_corpus, tmp_path):
    from adamesh.profile import PoseProfile

    adapter, frontend = loaded
    clips = clips_of(small_corpus, frontend, ("reference",))
    found = retrieve_pose_style(
        adapter,
        [head(c) for c in clips],
        [c.features.units for c in clips],
        clips[0].motion.fps,
        method="blend",
        k=2,
        features=[c.features.features for c in clips],
    )
    back = PoseProfile.load(found.save(tmp_path / "pose.safetensors"))
    torch.testing.assert_close(back.style, found.style)
    np.testing.assert_allclose(back.posture, found.posture, rtol=1e-6)
    assert found.amplitude.shape == (6,) and (found.amplitude > 0).all()
    np.testing.assert_array_equal(back.amplitude, found.amplitude)
    found.amplitude[1] = np.nan  # a damaged file is refused when read, not animated as NaN
    found.save(tmp_path / "nan.safetensors")
    with pytest.raises(AdameshError, match="amplitude holds NaN or infinite values"):
        PoseProfile.load(tmp_path / "nan.safetensors")
    found.amplitude = found.amplitude[:3]
    found.save(tmp_path / "short.safetensors")
    with pytest.raises(AdameshError, match="damaged"):
        PoseProfile.load(tmp_path / "short.safetensors")
    found.amplitude = back.amplitude
    assert back.to_dict() == found.to_dict() and sum(back.weights) == pytest.approx(1, abs=1e-3)
    back.check(adapter)
    table = adapter.gpt.styles.weight.data.clone()
    adapter.gpt.styles.weight.data[0] += 1.0  # another model's style table
    try:
        with pytest.raises(AdameshError, match="another pose model"):
            back.check(adapter)
    finally:
        adapter.gpt.styles.weight.data.copy_(table)
    (tmp_path / "bad.safetensors").write_bytes(b"nonsense")
    with pytest.raises(AdameshError, match="cannot read pose style"):
        PoseProfile.load(tmp_path / "bad.safetensors")


def test_the_reference_amplitude_is_its_motion_over_posegpts(loaded, small_corpus):
    from adamesh.adapt.pose import AMPLITUDE_LIMITS, reference_amplitude

    adapter, frontend = loaded
    clip = clips_of(small_corpus, frontend, ("test",))[0]
    feats, style, fps = clip.features.features, adapter.gpt.styles.weight[1].detach(), clip.motion.fps
    made = [adapter.animate(feats, style, seed=s) for s in range(3)]
    # twice PoseGPT's own motion (about any posture): a gain of 2 on every axis that moves
    gain = reference_amplitude(adapter, [2 * m + 0.3 for m in made], [feats], style, fps)
    np.testing.assert_allclose(gain, 2.0, rtol=1e-4)
    gain = reference_amplitude(adapter, [10 * m for m in made], [feats], style, fps)
    np.testing.assert_allclose(gain, AMPLITUDE_LIMITS[1])


def test_head_motion_augmentation_scales_mirrors_and_moves_only_real_frames():
    from adamesh.train.tasks import ROTATION_SCALE, TRANSLATION_SCALE, augment_head_motion

    torch.manual_seed(0)
    pose = torch.randn(64, 20, 6)
    mask = torch.arange(20)[None].expand(64, -1) < 15
    out = augment_head_motion(pose, mask, torch.full((6,), 0.1))
    torch.testing.assert_close(out[:, 15:], pose[:, 15:])  # padding untouched
    # each window: one scale for the rotation, one for the translation, a sign per axis and an
    # offset; recover them from two frames
    ratio = (out[:, 1, :] - out[:, 0, :]) / (pose[:, 1, :] - pose[:, 0, :])
    offset = out[:, :15] - ratio[:, None] * pose[:, :15]
    torch.testing.assert_close(offset, offset[:, :1].expand(-1, 15, -1), atol=1e-4, rtol=1e-4)
    rot, trans = ratio[:, 0].abs(), ratio[:, 3].abs()
    assert (rot >= ROTATION_SCALE[0] - 1e-4).all() and (rot <= ROTATION_SCALE[1] + 1e-4).all()
    assert (trans >= TRANSLATION_SCALE[0] - 1e-4).all() and (trans <= TRANSLATION_SCALE[1] + 1e-4).all()
    assert trans.max() > ROTATION_SCALE[1]  # the translation is scaled on its own, further
    torch.testing.assert_close(ratio[:, :3].abs(), rot[:, None].expand(-1, 3), rtol=1e-4, atol=1e-4)
    mirrored = ratio[:, 1] < 0
    assert 10 < mirrored.sum() < 54  # about half, yaw, roll and the sideways translation together
    assert (ratio[:, 0] > 0).all() and (ratio[:, 4:] > 0).all()
    assert ((ratio[:, 2] < 0) == mirrored).all() and ((ratio[:, 3] < 0) == mirrored).all()


def test_reconstruction_scores():
    from adamesh.eval.pose import reconstruction_scores

    rng = np.random.default_rng(0)
    truth = np.cumsum(rng.normal(size=(300, 3)), 0)
    perfect = reconstruction_scores(truth, truth)
    assert perfect["r"] == pytest.approx([1, 1, 1]) and perfect["error_over_spread"] == 0
    held = reconstruction_scores(truth, np.broadcast_to(truth.mean(0), truth.shape) + 0 * truth)
    assert held["error_over_spread"] == pytest.approx(1)  # holding the mean: as bad as the spread
    assert reconstruction_scores(truth, truth + 0.1 * rng.normal(size=truth.shape))["mean_r"] > 0.99


def test_bench_prior_on_a_clip_folder(pose_model, small_corpus, tmp_path):
    from adamesh.eval.pose import bench_prior

    folder = small_corpus / "clips" / "spk000"
    result = bench_prior(
        [str(folder)], str(pose_model), out=str(tmp_path), min_seconds=5, log=lambda *a: None
    )
    (row,) = result["rows"]
    assert row["speaker"] == "spk000" and row["seconds"] > 5
    assert len(row["r"]) == 3 and 0 < row["error_over_spread"] < 1  # better than holding the mean
    assert "| spk000 |" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "reconstruction.png").stat().st_size > 10_000
    with pytest.raises(AdameshError, match="has 1000 s"):
        bench_prior([str(folder)], str(pose_model), out=str(tmp_path), min_seconds=1000, log=lambda *a: None)


def test_head_motion_measures_on_known_signals():
    from adamesh.eval.metrics import head_motion_measures

    fps = 25.0
    t = np.arange(1500) / fps  # a minute
    zero = np.zeros_like(t)
    nods = head_motion_measures(np.c_[np.radians(3) * np.sin(2 * np.pi * t), zero, zero], fps)
    assert nods["nods_per_min"] == pytest.approx(60, abs=1) and nods["turns_per_min"] == 0
    assert nods["nod_share"] > 0.99 and nods["held"] < 0.1  # only the turning points are slow
    assert nods["std_deg"] == pytest.approx([3 / np.sqrt(2), 0, 0], rel=0.01)
    drift = head_motion_measures(np.c_[zero, np.radians(3) * np.sin(2 * np.pi * 0.1 * t), zero], fps)
    assert drift["slow_share"] > 0.99 and drift["held"] == 1 and drift["turns_per_min"] == 0
    # the head turns 0.2 s after each loud syllable: the lag and a strong correlation
    loud = np.zeros_like(t)
    loud[::50] = 1
    loud = np.convolve(loud, np.ones(5), "same")
    yaw = np.radians(np.cumsum(np.r_[np.zeros(5), loud[:-5]] * np.sign(np.sin(t * 8))))
    follows = head_motion_measures(np.c_[zero, yaw, zero], fps, loudness=loud)
    assert follows["speech_lag_s"] == pytest.approx(0.2) and follows["speech_r"] > 0.8
