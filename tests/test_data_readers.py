"""Readers of public data layouts: VOCASET (adamesh.data.vocaset) and tracker FLAME parameters
(adamesh.data.trackers), on small files written here in each layout."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.spatial.transform import Rotation

from adamesh.audio import frame_count
from adamesh.data.trackers import read_flame_folder, read_flame_params
from adamesh.data.vocaset import read_vocaset
from adamesh.errors import AdameshError, AdameshWarning
from adamesh.motion import FLAME, load_motion, save_motion

RATE = 16000
AMP = 0.01  # metres: vertex 0 moves as AMP * sin(2 pi t) along x
SPEAKERS = ("FaceTalk_170725_00137_TA", "FaceTalk_170904_00128_TA")
DURATIONS = (1.0, 1.3, 0.85, 1.1)  # seconds; 25 fps frame counts 25, 32.5 -> 33, 21.25 -> 21, 27.5 -> 28
N_VERTS = 4


def write_wav(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(round(seconds * RATE), np.float32), RATE)
    return path


def template(speaker_index: int) -> np.ndarray:
    return np.arange(N_VERTS * 3, dtype=np.float32).reshape(N_VERTS, 3) * 0.1 + speaker_index


def analytic_vertices(t: np.ndarray, speaker_index: int) -> np.ndarray:
    """(T, V, 3): vertex 0 oscillates in x, every vertex drifts in y at 1 m/s (linear, so exactly
    interpolated), on top of the speaker's template."""
    v = np.repeat(template(speaker_index)[None], len(t), 0)
    v[:, 0, 0] += AMP * np.sin(2 * np.pi * t)
    v[:, :, 1] += t[:, None]
    return v


def make_vocaset(root: Path, with_wav=True, with_templates=True) -> dict[str, float]:
    """2 speakers x 2 sentences at 60 fps; returns clip name -> audio duration."""
    durations = {}
    for s, speaker in enumerate(SPEAKERS):
        for k in range(2):
            name, seconds = f"{speaker}_sentence{k + 1:02d}", DURATIONS[2 * s + k]
            t = np.arange(round(seconds * 60) + 1) / 60  # vertices run a little past the audio
            (root / "vertices_npy").mkdir(parents=True, exist_ok=True)
            np.save(root / "vertices_npy" / f"{name}.npy", analytic_vertices(t, s).reshape(len(t), -1))
            if with_wav:
                write_wav(root / "wav" / f"{name}.wav", seconds)
            durations[name] = seconds
    if with_templates:
        with open(root / "templates.pkl", "wb") as f:
            pickle.dump({sp: template(s) for s, sp in enumerate(SPEAKERS)}, f)
    return durations


# --------------------------------------------------------------------------- VOCASET


def test_vocaset_clips_match_audio_and_the_analytic_motion(tmp_path):
    durations = make_vocaset(tmp_path)
    clips = read_vocaset(tmp_path, fps=25)
    assert [c.name for c in clips] == sorted(durations)
    assert [c.speaker for c in clips] == [SPEAKERS[0]] * 2 + [SPEAKERS[1]] * 2
    for clip in clips:
        s = SPEAKERS.index(clip.speaker)
        n = frame_count(round(durations[clip.name] * RATE), RATE, 25)
        assert clip.vertices.shape == (n, N_VERTS, 3) and clip.vertices.dtype == np.float32
        assert clip.fps == 25.0 and clip.audio == tmp_path / "wav" / f"{clip.name}.wav"
        np.testing.assert_array_equal(clip.template, template(s))
        expected = analytic_vertices(np.arange(n) / 25, s)
        # y is linear in t, so only float32 rounding separates it from the exact timestamps
        np.testing.assert_allclose(clip.vertices[..., 1], expected[..., 1], atol=1e-6)
        # x of vertex 0 is a sine: linear interpolation errs by at most h^2/8 * max|f''|
        bound = (1 / 60) ** 2 / 8 * (2 * np.pi) ** 2 * AMP
        np.testing.assert_allclose(clip.vertices[:, 0, 0], expected[:, 0, 0], atol=bound + 1e-6)
        # every 5th frame at 25 fps is a source frame at 60 fps: exact there
        np.testing.assert_allclose(clip.vertices[::5, 0, 0], expected[::5, 0, 0], atol=1e-6)
    assert [len(c.vertices) for c in clips] == [25, 33, 21, 28]


def test_vocaset_speaker_filter_and_unknown_speaker(tmp_path):
    make_vocaset(tmp_path)
    clips = read_vocaset(tmp_path, speakers=[SPEAKERS[1]])
    assert {c.speaker for c in clips} == {SPEAKERS[1]} and len(clips) == 2
    with pytest.raises(AdameshError, match="no VOCASET speaker FaceTalk_nobody.*found FaceTalk_170725"):
        read_vocaset(tmp_path, speakers=["FaceTalk_nobody"])


def test_vocaset_without_wav_or_templates(tmp_path):
    make_vocaset(tmp_path, with_wav=False, with_templates=False)
    with pytest.warns(AdameshWarning, match="4 of 4 VOCASET clips have no wav"):
        clips = read_vocaset(tmp_path, fps=30)
    assert all(c.audio is None and c.template is None for c in clips)
    # without audio: round(T * fps / source_fps), here T = 61 frames at 60 fps -> 30.5 -> 31
    assert len(clips[0].vertices) == 31
    y = clips[0].vertices[:, 0, 1] - template(0)[0, 1]
    np.testing.assert_allclose(y, np.minimum(np.arange(31) / 30, 1.0), atol=1e-6)  # last frame held


def test_vocaset_errors(tmp_path):
    with pytest.raises(AdameshError, match="does not exist"):
        read_vocaset(tmp_path / "absent")
    with pytest.raises(AdameshError, match="no vertices_npy folder"):
        read_vocaset(tmp_path)

    make_vocaset(tmp_path)
    bad = tmp_path / "vertices_npy" / f"{SPEAKERS[0]}_sentence03.npy"
    np.save(bad, np.zeros((10, 10), np.float32))
    with pytest.raises(
        AdameshError, match=r"sentence03.npy: shape \(10, 10\); expected \(frames, 3 x vertices\)"
    ):
        read_vocaset(tmp_path)
    bad.unlink()

    with open(tmp_path / "templates.pkl", "wb") as f:
        pickle.dump({SPEAKERS[0]: np.zeros((N_VERTS, 2))}, f)
    with pytest.raises(AdameshError, match=r"templates.pkl: .* has shape \(4, 2\); expected \(vertices, 3\)"):
        read_vocaset(tmp_path)
    with open(tmp_path / "templates.pkl", "wb") as f:
        pickle.dump({SPEAKERS[0]: np.zeros((N_VERTS + 1, 3))}, f)
    with pytest.raises(AdameshError, match=r"has shape \(5, 3\) but .* has 4 vertices"):
        read_vocaset(tmp_path)


class _Exploit:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickles_cannot_run_code(tmp_path):
    make_vocaset(tmp_path)
    with open(tmp_path / "templates.pkl", "wb") as f:
        pickle.dump({SPEAKERS[0]: _Exploit()}, f)
    with pytest.raises(AdameshError, match="getcwd object; only numpy arrays are accepted"):
        read_vocaset(tmp_path)


# --------------------------------------------------------------------------- trackers


def test_tracker_pickles_name_numpy_exactly_and_ask_for_no_more_than_they_hold(tmp_path):
    # GLOBAL numpy.f2py.__main__ _reconstruct: importing that module runs f2py (and exits)
    (tmp_path / "f2py.pkl").write_bytes(b"\x80\x02cnumpy.f2py.__main__\n_reconstruct\n)R.")
    with pytest.raises(AdameshError, match="numpy.f2py.__main__._reconstruct object"):
        read_flame_params(tmp_path / "f2py.pkl")
    # {"exp": _reconstruct(ndarray, (10**10,), "b")}: 10 GB that numpy reserves without filling
    size = (10**10).to_bytes(5, "little")
    array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n\x8a\x05" + size + b"\x85U\x01b\x87R"
    (tmp_path / "big.pkl").write_bytes(b"\x80\x02}X\x03\x00\x00\x00exp" + array + b"s.")
    with pytest.raises(AdameshError, match="array of 10,000,000,000 bytes"):
        read_flame_params(tmp_path / "big.pkl")


def tracker_arrays(n=20, n_exp=50, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "exp": rng.uniform(-2, 2, (n, n_exp)),
        "pose": rng.uniform(-0.3, 0.3, (n, 6)),
        "shape": rng.normal(size=(n, 100)),
        "cam": rng.normal(size=(n, 3)),
    }


def save_pickle(path: Path, data) -> Path:
    with open(path, "wb") as f:
        pickle.dump(data, f)
    return path


def test_deca_npz_lands_in_the_right_channels(tmp_path):
    data = tracker_arrays()
    np.savez(tmp_path / "clip.npz", **data)
    m = read_flame_params(tmp_path / "clip.npz", fps=25)  # no fps key, no source_fps: taken as 25
    assert m.space is FLAME and m.fps == 25.0 and m.n_frames == 20 and m.audio is None
    np.testing.assert_allclose(m.params[:, :50], data["exp"], atol=1e-6)
    for i, axis in enumerate("XYZ"):
        np.testing.assert_allclose(m.channel(f"headRot{axis}"), data["pose"][:, i], atol=1e-6)
        np.testing.assert_allclose(m.channel(f"jawRot{axis}"), data["pose"][:, 3 + i], atol=1e-6)
    np.testing.assert_allclose(m.meta["shape"], data["shape"].mean(0), atol=1e-9)
    assert m.meta["source"] == str(tmp_path / "clip.npz")


def test_split_pose_in_a_numpy_saved_dict(tmp_path):
    data = tracker_arrays()
    split = {
        "expression": data["exp"],
        "jaw_pose": data["pose"][:, 3:],
        "head_pose": data["pose"][:, :3],
        "shape": data["shape"][0],
        "speaker": "M003",
    }
    np.save(tmp_path / "clip.npy", split)
    m = read_flame_params(tmp_path / "clip.npy")
    np.testing.assert_allclose(m.params[:, 50:53], data["pose"][:, 3:], atol=1e-6)
    np.testing.assert_allclose(m.params[:, 53:56], data["pose"][:, :3], atol=1e-6)
    assert m.meta["speaker"] == "M003" and len(m.meta["shape"]) == 100


def test_extra_expression_coefficients_are_dropped_with_a_warning_only_if_used(tmp_path):
    data = tracker_arrays(n_exp=100)
    save_pickle(tmp_path / "used.pkl", data)
    with pytest.warns(AdameshWarning, match="non-zero expression coefficients beyond the first 50"):
        m = read_flame_params(tmp_path / "used.pkl")
    np.testing.assert_allclose(m.params[:, :50], data["exp"][:, :50], atol=1e-6)

    data["exp"][:, 50:] = 0
    save_pickle(tmp_path / "unused.pkl", data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_flame_params(tmp_path / "unused.pkl")


def test_resampling_slerps_rotations_and_interpolates_expression(tmp_path):
    src_fps, n = 30.0, 30  # one second
    t = np.arange(n) / src_fps

    # A constant-rate turn about y applied to a tilted head: a geodesic, which slerp reproduces
    # exactly and linear interpolation of axis-angle does not.
    def head(t):
        return (
            Rotation.from_rotvec(np.outer(t, [0, 2.0, 0])) * Rotation.from_rotvec([1.0, 0, 0])
        ).as_rotvec()

    exp = np.zeros((n, 50))
    exp[:, 0], exp[:, 1] = np.sin(2 * np.pi * t), t
    pose = np.concatenate([head(t), np.zeros((n, 3))], 1)
    np.savez(tmp_path / "clip.npz", exp=exp, pose=pose, fps=src_fps)

    m = read_flame_params(tmp_path / "clip.npz", fps=25)  # source rate from the file's fps key
    assert m.n_frames == 25 and m.meta["source_fps"] == 30.0
    t25 = np.arange(25) / 25
    np.testing.assert_allclose(m.params[:, 53:56], head(t25), atol=1e-6)
    linear = np.stack([np.interp(t25, t, pose[:, i]) for i in range(3)], 1)
    assert np.abs(linear - head(t25)).max() > 1e-4  # 100 x the tolerance: slerp, not linear, passes
    np.testing.assert_allclose(m.channel("exp01"), t25, atol=1e-6)
    bound = (1 / 30) ** 2 / 8 * (2 * np.pi) ** 2
    np.testing.assert_allclose(m.channel("exp00"), np.sin(2 * np.pi * t25), atol=bound)


def test_audio_sets_the_frame_count(tmp_path):
    np.savez(tmp_path / "clip.npz", **tracker_arrays(n=30))  # 30 frames at 30 fps: 1 s
    wav = write_wav(tmp_path / "speech.wav", 1.1)
    m = read_flame_params(tmp_path / "clip.npz", fps=25, source_fps=30, audio=wav)
    assert m.n_frames == frame_count(round(1.1 * RATE), RATE, 25) == 28 and m.audio == str(wav)
    with pytest.raises(AdameshError, match="audio file .* does not exist"):
        read_flame_params(tmp_path / "clip.npz", audio=tmp_path / "absent.wav")


def test_folder_pairs_wavs_and_speakers_and_round_trips(tmp_path):
    root = tmp_path / "tracked"
    (root / "M003").mkdir(parents=True)
    np.savez(root / "M003" / "a.npz", **tracker_arrays(n=25, seed=1))
    wav = write_wav(root / "M003" / "a.wav", 1.0)
    (root / "W009").mkdir()
    save_pickle(root / "W009" / "b.pkl", {**tracker_arrays(n=10, seed=2), "speaker": "W009_take2"})

    a, b = read_flame_folder(root, fps=25)
    assert a.audio == str(wav) and a.n_frames == 25 and a.meta["speaker"] == "M003"
    assert b.audio is None and b.n_frames == 10 and b.meta["speaker"] == "W009_take2"

    loaded = load_motion(save_motion(a, tmp_path / "a.npz"))
    np.testing.assert_array_equal(loaded.params, a.params)
    assert loaded.space is FLAME and loaded.fps == 25.0 and loaded.meta == a.meta
    assert Path(loaded.audio) == wav.resolve()


def test_folder_warns_once_for_dropped_coefficients(tmp_path):
    for k in range(3):
        save_pickle(tmp_path / f"c{k}.pkl", tracker_arrays(n_exp=100, seed=k))
    with pytest.warns(AdameshWarning) as record:
        read_flame_folder(tmp_path)
    assert len(record) == 1 and str(record[0].message).startswith("3 of 3 tracker files")


def tracker_error(tmp_path, **arrays) -> str:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(AdameshError) as e:
        read_flame_params(tmp_path / "bad.npz")
    return str(e.value)


def test_tracker_errors_say_what_is_wrong(tmp_path):
    d = tracker_arrays()
    msg = tracker_error(tmp_path, expr=d["exp"], pose=d["pose"])
    assert "no key exp or expression or exp_params or expcode" in msg and "keys found: expr, pose" in msg
    msg = tracker_error(tmp_path, exp=d["exp"], cam=d["cam"])
    assert "no key pose, posecode, or jaw_pose with global_pose or head_pose" in msg
    assert "keys found: exp, cam" in msg
    msg = tracker_error(tmp_path, exp=d["exp"], jaw_pose=d["pose"][:, 3:])
    assert "no key global_pose or head_pose" in msg
    msg = tracker_error(tmp_path, exp=d["exp"], pose=d["pose"][:15])
    assert "expression has 20 frames but the pose 15" in msg
    msg = tracker_error(tmp_path, exp=d["exp"], pose=d["pose"][:, :3])
    assert "'pose' has shape (20, 3) (float64); expected (frames, 6)" in msg
    msg = tracker_error(tmp_path, exp=d["exp"][:, :10], pose=d["pose"])
    assert "expression has 10 coefficients; the flame space needs 50" in msg
    nan = d["exp"].copy()
    nan[7, 3] = np.nan
    msg = tracker_error(tmp_path, exp=nan, pose=d["pose"])
    assert "'exp' has 1 NaN/inf values (first at frame 7)" in msg
    msg = tracker_error(tmp_path, exp=d["exp"], pose=d["pose"], shape=d["shape"][:5])
    assert "'shape' has shape (5, 100); expected (S,) or (20 frames, S)" in msg

    np.save(tmp_path / "plain.npy", d["exp"])
    with pytest.raises(AdameshError, match="holds a plain float64 array, expected a dict"):
        read_flame_params(tmp_path / "plain.npy")
    save_pickle(tmp_path / "torch_like.pkl", {"exp": _Exploit()})
    with pytest.raises(AdameshError, match="only numpy arrays are accepted"):
        read_flame_params(tmp_path / "torch_like.pkl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdameshError, match="holds no tracker files"):
        read_flame_folder(tmp_path / "empty")
