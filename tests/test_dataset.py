"""Clip folders (with and without a manifest), ClipDataset, WindowDataset, and the front-end benchmark."""

from __future__ import annotations

import json
import re
import time
from itertools import pairwise

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import DATA

from adamesh.audio import SAMPLE_RATE, frame_count, load_audio
from adamesh.cli import main
from adamesh.clips import scan_clips
from adamesh.data.dataset import ClipDataset, WindowDataset, compute_features
from adamesh.data.synthetic.corpus import CorpusConfig, generate_corpus
from adamesh.errors import AdameshError
from adamesh.frontends import FeatureCache, make_frontend
from adamesh.motion import ARKIT, Motion, load_motion, save_motion

LIBRIVOX = DATA / "speech" / "librivox"
TINY = CorpusConfig(speakers=3, sentences=3, heldout=1)  # spk002 is held out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    generate_corpus(out, TINY, workers=2, progress=False)
    return out


@pytest.fixture(scope="module")
def train(corpus):
    return ClipDataset(corpus, roles=("train",), frontend=make_frontend("mel"), workers=1, progress=False)


# --------------------------------------------------------------------------- a generated corpus


def test_clip_dataset_of_a_corpus(corpus, train):
    manifest = json.loads((corpus / "manifest.json").read_text())
    wanted = [c for c in manifest["clips"] if c["role"] == "train"]
    assert [c.info.id for c in train.clips] == [c["id"] for c in wanted] and len(train) == 4
    assert train.speakers == ["spk000", "spk001"] and train.speaker_index == {"spk000": 0, "spk001": 1}
    assert train.seconds == pytest.approx(sum(c["seconds"] for c in wanted), abs=0.01)
    mel = make_frontend("mel")
    for clip in train.clips:
        assert clip.info.role == "train" and clip.motion.space is ARKIT
        audio, _ = load_audio(clip.info.audio)
        assert clip.motion.n_frames == frame_count(len(audio), SAMPLE_RATE, clip.motion.fps)
        assert clip.features.features.shape == (clip.motion.n_frames, mel.dim)
        np.testing.assert_array_equal(clip.features.features, mel(audio, clip.motion.fps).features)
    assert (
        train.speaker_style("spk000")["expression_style"]
        == manifest["speakers"]["spk000"]["expression_style"]
    )
    assert train.speaker_style("nobody") == {}


def test_roles_and_speaker_filters(corpus):
    held = ClipDataset(corpus, roles=("reference", "test"), progress=False)
    assert held.speakers == ["spk002"] and {c.info.role for c in held.clips} == {"reference", "test"}
    assert all(c.features is None for c in held.clips)
    assert len(ClipDataset(corpus, roles=None, progress=False)) == 9
    one = ClipDataset(corpus, roles=("train", "val"), speakers=["spk001"], progress=False)
    assert [c.info.id for c in one.clips] == ["spk001_000", "spk001_001", "spk001_002"]
    with pytest.raises(AdameshError, match="no clips with role"):
        ClipDataset(corpus, roles=("train",), speakers=["spk002"], progress=False)
    with pytest.raises(AdameshError, match="no clips with role"):
        ClipDataset(corpus, roles=("bogus",), progress=False)


def test_features_computed_by_worker_processes_match(corpus, tmp_path):
    fe = make_frontend("mel", n_mels=24)
    wavs = sorted(corpus.rglob("*.wav"))
    cache = FeatureCache(tmp_path / "cache")
    parallel = compute_features(fe, wavs, 25.0, workers=2, cache=cache, progress=False)
    assert all(cache.path_for(fe, w, 25.0).is_file() for w in wavs)
    for w, f in zip(wavs, parallel):
        np.testing.assert_array_equal(f.features, fe(load_audio(w)[0], 25.0).features)


def test_degraded_copies_of_the_training_audio(corpus, monkeypatch):
    from adamesh.data.augment import training_variant
    from adamesh.train.tasks import ExpressionWindows

    aug = ClipDataset(
        corpus, roles=("train",), frontend=make_frontend("mel"), workers=2, progress=False, augment=2
    )
    mel = make_frontend("mel")
    for clip in aug.clips:
        assert len(clip.variants) == 2
        audio, _ = load_audio(clip.info.audio)
        for k, variant in enumerate(clip.variants, 1):
            assert variant.features.shape == clip.features.features.shape
            degraded = training_variant(audio, FeatureCache.audio_hash(clip.info.audio), k)
            np.testing.assert_array_equal(variant.features, mel(degraded, clip.motion.fps).features)
        assert not np.allclose(clip.variants[0].features, clip.features.features)
        assert not np.allclose(clip.variants[0].features, clip.variants[1].features)
    # read back from the cache: nothing is degraded or computed a second time
    monkeypatch.setattr("adamesh.data.augment.random_degradation", lambda *a: pytest.fail("degraded again"))
    again = ClipDataset(
        corpus, roles=("train",), frontend=make_frontend("mel"), workers=1, progress=False, augment=2
    )
    np.testing.assert_array_equal(again.clips[1].variants[1].features, aug.clips[1].variants[1].features)
    # training windows hear every copy; fixed (validation) windows only the clean audio
    windows = ExpressionWindows(aug, ARKIT.n_expression, window=50, hop=50, reference_frames=20)
    k, s = windows.windows.index[0]
    copies = [aug.clips[k].features, *aug.clips[k].variants]
    torch.manual_seed(0)
    heard = set()
    for _ in range(30):
        got = windows[0]["features"].numpy()[:10]
        heard.add(next(j for j, c in enumerate(copies) if np.array_equal(got, c.features[s : s + 10])))
    assert heard == {0, 1, 2}
    fixed = ExpressionWindows(aug, ARKIT.n_expression, window=50, hop=50, reference_frames=20, fixed=True)
    assert all(
        np.array_equal(fixed[0]["features"].numpy()[:10], copies[0].features[s : s + 10]) for _ in range(5)
    )


def test_windows_cover_every_clip(train):
    windows = WindowDataset(train, window=30, hop=20)
    for k, clip in enumerate(train.clips):
        n = clip.motion.n_frames
        starts = [s for c, s in windows.index if c == k]
        assert starts[0] == 0 and starts[-1] == n - 30  # the last window is flush with the clip end
        assert all(b - a <= 20 for a, b in pairwise(starts))  # no gaps
        covered = np.zeros(n, bool)
        for s in starts:
            covered[s : s + 30] = True
        assert covered.all()
    item = windows[1]
    k, s = windows.index[1]
    clip = train.clips[k]
    np.testing.assert_array_equal(item["features"].numpy(), clip.features.features[s : s + 30])
    np.testing.assert_array_equal(item["params"].numpy(), clip.motion.params[s : s + 30])
    np.testing.assert_array_equal(item["units"].numpy(), clip.features.units[s : s + 30])
    assert item["mask"].all() and item["speaker"].item() == train.speaker_index[clip.info.speaker]


def test_short_clips_are_padded_and_masked(train):
    longest = max(c.motion.n_frames for c in train.clips)
    windows = WindowDataset(train, window=longest + 7, hop=10)
    assert len(windows) == len(train)  # one window per clip
    for i, (k, s) in enumerate(windows.index):
        clip, item = train.clips[k], windows[i]
        n = clip.motion.n_frames
        assert s == 0 and item["mask"].sum().item() == n and item["mask"][:n].all()
        assert item["params"].shape == (longest + 7, ARKIT.dim)
        np.testing.assert_array_equal(item["params"][:n].numpy(), clip.motion.params)
        assert not item["params"][n:].any() and not item["features"][n:].any() and not item["units"][n:].any()


def test_data_loader_batches(train):
    windows = WindowDataset(train, window=40, hop=40)
    batch = next(iter(torch.utils.data.DataLoader(windows, batch_size=3, shuffle=False)))
    assert batch["features"].shape == (3, 40, 160) and batch["features"].dtype == torch.float32
    assert batch["params"].shape == (3, 40, ARKIT.dim) and batch["params"].dtype == torch.float32
    assert batch["units"].shape == (3, 40) and batch["units"].dtype == torch.int64
    assert batch["mask"].shape == (3, 40) and batch["mask"].dtype == torch.bool
    assert batch["speaker"].shape == (3,) and set(batch["speaker"].tolist()) <= {0, 1}


def test_windows_need_features(corpus):
    with pytest.raises(AdameshError, match="front-end"):
        WindowDataset(ClipDataset(corpus, progress=False))


# --------------------------------------------------------------------------- a folder without manifest


def write_clip(path, seconds, speaker=None, audio=True, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    n = round(seconds * SAMPLE_RATE)
    wav = path.with_suffix(".wav")
    if audio:
        sf.write(wav, np.random.default_rng(seed).normal(0, 0.05, n), SAMPLE_RATE, subtype="PCM_16")
    frames = frame_count(n, SAMPLE_RATE, 25)
    params = np.random.default_rng(seed).uniform(0, 0.5, (frames, ARKIT.dim)).astype(np.float32)
    meta = {"speaker": speaker} if speaker else {}
    save_motion(Motion(params, ARKIT, 25.0, audio=str(wav) if audio else None, meta=meta), path)
    return path


def test_folder_without_manifest(tmp_path):
    root = tmp_path / "mine"
    write_clip(root / "alice" / "a1.npz", 1.3)
    write_clip(root / "session2" / "b1.npz", 0.9, speaker="bob", seed=1)
    infos, manifest = scan_clips(root)
    assert manifest == {}
    assert [(c.id, c.speaker, c.role) for c in infos] == [("a1", "alice", "train"), ("b1", "bob", "train")]
    assert infos[0].audio == (root / "alice" / "a1.wav").resolve()
    assert infos[1].motion == root / "session2" / "b1.npz"
    ds = ClipDataset(root, frontend=make_frontend("mel", n_mels=20), workers=1, progress=False)
    assert ds.speakers == ["alice", "bob"]
    for clip in ds.clips:
        assert len(clip.features) == clip.motion.n_frames
    # the folder moves: audio paths are stored relative to the motion files
    moved = tmp_path / "moved"
    root.rename(moved)
    assert scan_clips(moved)[0][0].audio == (moved / "alice" / "a1.wav").resolve()


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(AdameshError, match="does not exist"):
        scan_clips(tmp_path / "nothing")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("no clips here")
    with pytest.raises(AdameshError, match="no motion files"):
        scan_clips(tmp_path / "empty")
    with pytest.raises(AdameshError, match="no motion files"):
        ClipDataset(tmp_path / "empty", progress=False)


def test_damaged_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text('{"clips": [{"id": "x"}]}')
    with pytest.raises(AdameshError, match="damaged"):
        scan_clips(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(AdameshError, match="damaged"):
        scan_clips(tmp_path)


@pytest.mark.parametrize("how", ["never had audio", "audio deleted"])
def test_clips_without_audio_cannot_give_features(tmp_path, how):
    write_clip(tmp_path / "carol" / "c1.npz", 1.0)
    write_clip(tmp_path / "carol" / "c2.npz", 1.0, audio=how == "audio deleted", seed=2)
    if how == "audio deleted":
        (tmp_path / "carol" / "c2.wav").unlink()
    assert len(ClipDataset(tmp_path, progress=False)) == 2  # motion alone is fine
    with pytest.raises(AdameshError, match=r"1 clips have no audio file \(first: c2\)"):
        ClipDataset(tmp_path, frontend=make_frontend("mel"), progress=False)


def test_role_from_motion_meta(tmp_path):
    path = write_clip(tmp_path / "dave" / "d1.npz", 0.5)
    m = load_motion(path)
    m.meta["role"] = "val"
    save_motion(m, path)
    write_clip(tmp_path / "dave" / "d2.npz", 0.5, seed=3)
    assert [c.role for c in scan_clips(tmp_path)[0]] == ["val", "train"]
    assert [c.info.id for c in ClipDataset(tmp_path, roles=("val",), progress=False).clips] == ["d1"]


def test_hold_out_validates_from_folders_without_a_val_role(tmp_path, corpus):
    for k in range(5):
        write_clip(tmp_path / "erin" / f"e{k}.npz", 0.3, seed=k)
    assert [c.role for c in scan_clips(tmp_path, hold_out=2)[0]] == ["val", "train", "val", "train", "val"]
    manifest_roles = [c["role"] for c in json.loads((corpus / "manifest.json").read_text())["clips"]]
    assert [c.role for c in scan_clips(corpus, hold_out=2)[0]] == manifest_roles  # has val clips: unchanged


def test_a_single_clip_trains_nothing_and_says_why(tmp_path):
    write_clip(tmp_path / "one" / "e0.npz", 0.3)
    assert [c.role for c in scan_clips(tmp_path / "one", hold_out=20)[0]] == ["train"]  # not held out
    with pytest.raises(AdameshError, match="no clips with role val; training needs at least two clips"):
        ClipDataset(
            tmp_path / "one", ("val",), frontend=make_frontend("mel"), workers=1, progress=False, hold_out=20
        )


def test_clips_of_several_folders(tmp_path, corpus):
    real = tmp_path / "tracked"
    for k in range(3):
        write_clip(real / f"r{k}.npz", 0.4, speaker="s1", seed=k)
    mel = make_frontend("mel")
    train = ClipDataset([corpus, real], ("train",), frontend=mel, workers=1, progress=False, hold_out=20)
    val = ClipDataset([corpus, real], ("val",), frontend=mel, workers=1, progress=False, hold_out=20)
    assert train.roots == [corpus, real]
    assert train.speakers == ["s1", "spk000", "spk001"]
    assert [c.info.id for c in train.clips if c.info.speaker == "s1"] == ["r1", "r2"]
    assert "r0" in [c.info.id for c in val.clips] and "spk000" in val.speakers  # each folder validates
    assert (
        train.speaker_style("spk001")
        == json.loads((corpus / "manifest.json").read_text())["speakers"]["spk001"]
    )
    other = tmp_path / "other_rate"
    other.mkdir()
    m = load_motion(real / "r0.npz")
    save_motion(Motion(m.params, ARKIT, 30.0, audio=m.audio, meta=m.meta), other / "x.npz")
    with pytest.raises(AdameshError, match="mix motion spaces or frame rates"):
        ClipDataset([real, other], progress=False)


# --------------------------------------------------------------------------- front-end benchmark


def test_bench_frontends(corpus, capsys):
    if not (LIBRIVOX / "transcription").is_file():
        pytest.skip(f"LibriVox speech not found at {LIBRIVOX} (../shared/data is absent)")
    t0 = time.perf_counter()
    rc = main(
        [
            "bench",
            "frontends",
            "--corpus",
            str(corpus),
            "--speech",
            str(LIBRIVOX),
            "--units",
            "16",
            "--workers",
            "1",
        ]
    )
    elapsed = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert rc == 0, out
    assert elapsed < 60
    n_wavs = len(list(LIBRIVOX.glob("*.wav")))
    assert re.search(rf"{n_wavs} real clips .* {n_wavs} with forced-aligned transcripts", out), out
    chance = float(re.search(r"always SIL = ([0-9.]+)", out).group(1))
    assert 0 < chance < 0.3
    rows = {}
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] in ("phonetic", "mel"):
            rows[fields[0]] = [float(x) for x in fields[1:]]
    assert set(rows) == {"phonetic", "mel"}
    dim, units, _, acc_real, vis_real, nmi, rtf = rows["phonetic"]
    assert dim == 123 and units == 40
    assert acc_real > chance and vis_real >= acc_real and 0 < nmi < 1 and 0 < rtf < 1
    assert rows["mel"][0] == 160 and rows["mel"][1] == 16
    for row in rows.values():
        assert all(0 <= x <= 1 for x in row[2:5])
