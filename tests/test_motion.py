"""The motion file format and the validation of motion parameters (adamesh.motion)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from adamesh.errors import AdameshError, MotionError
from adamesh.motion import (
    ARKIT,
    FLAME,
    FORMAT,
    MAX_FRAMES,
    Motion,
    limit_lip_closure,
    load_motion,
    save_motion,
)

N_ARKIT, N_FLAME = 58, 56  # 52 blendshapes + 3 rotation + 3 translation; 50 exp + 3 jaw + 3 head


def arkit_params(n_frames: int = 6, seed: int = 0) -> np.ndarray:
    """Valid random arkit parameters with values that are not round in float32."""
    rng = np.random.default_rng(seed)
    p = np.zeros((n_frames, N_ARKIT), np.float32)
    p[:, :52] = rng.uniform(0.0, 1.0, (n_frames, 52))
    p[:, 52:55] = rng.uniform(-0.5, 0.5, (n_frames, 3))
    p[:, 55:58] = rng.uniform(-0.05, 0.05, (n_frames, 3))
    return p


def flame_params(n_frames: int = 5, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.zeros((n_frames, N_FLAME), np.float32)
    p[:, :50] = rng.uniform(-3.0, 3.0, (n_frames, 50))
    p[:, 50:] = rng.uniform(-0.3, 0.3, (n_frames, 6))
    return p


def write_raw(path: Path, **fields) -> Path:
    """Write a motion .npz by hand with numpy, bypassing adamesh; a field set to None is left out."""
    data = {
        "format": np.array("adamesh.motion"),
        "version": np.array(1),
        "space": np.array("arkit"),
        "channels": np.array(ARKIT.channels),
        "params": arkit_params(4),
        "fps": np.array(25.0),
        "audio": np.array(""),
        "meta": np.array("{}"),
    }
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    with open(path, "wb") as f:
        np.savez(f, **data)
    return path


def load_error(path: Path) -> str:
    with pytest.raises(MotionError) as e:
        load_motion(path)
    return str(e.value)


# --------------------------------------------------------------------------- space definitions


def test_space_sizes_and_names():
    assert ARKIT.dim == N_ARKIT and FLAME.dim == N_FLAME
    assert ARKIT.channels[17] == "jawOpen" and ARKIT.channels[51] == "tongueOut"
    assert ARKIT.channels[52:] == ("headPitch", "headYaw", "headRoll", "headX", "headY", "headZ")
    assert FLAME.channels[0] == "exp00" and FLAME.channels[49] == "exp49"
    assert len(set(ARKIT.channels)) == N_ARKIT and len(set(FLAME.channels)) == N_FLAME


# --------------------------------------------------------------------------- round trips


def test_round_trip_keeps_everything(tmp_path):
    params = arkit_params(7)
    wav = tmp_path / "speech.wav"
    wav.write_bytes(b"RIFF")  # only the path matters here
    meta = {"producer": "test", "model": "m1", "seed": 1234, "profile": {"gain": 0.5}, "tags": ["a", "b"]}
    m = Motion(params, "arkit", fps=29.97, audio=str(wav), meta=meta)
    path = tmp_path / "m.npz"
    assert save_motion(m, path) == path
    back = load_motion(path)
    assert back.params.dtype == np.float32
    np.testing.assert_array_equal(back.params, params)  # bit-exact float32
    assert back.fps == 29.97
    assert back.space is ARKIT
    assert back.meta == meta
    assert back.audio == str(wav.resolve())
    assert back.n_frames == 7


def test_file_is_plain_numpy_with_relative_audio(tmp_path):
    folder = tmp_path / "take"
    (folder / "audio").mkdir(parents=True)
    wav = folder / "audio" / "line1.wav"
    wav.write_bytes(b"RIFF")
    params = arkit_params(3)
    Motion(params, fps=30, audio=str(wav), meta={"k": 1}).save(folder / "m.npz")
    with np.load(folder / "m.npz", allow_pickle=False) as z:
        assert str(z["format"]) == "adamesh.motion"
        assert int(z["version"]) == 1
        assert str(z["space"]) == "arkit"
        assert [str(c) for c in z["channels"]] == list(ARKIT.channels)
        assert z["params"].dtype == np.float32
        np.testing.assert_array_equal(z["params"], params)
        assert float(z["fps"]) == 30.0
        assert str(z["audio"]) == os.path.join("audio", "line1.wav")  # relative to the motion file
        assert json.loads(str(z["meta"])) == {"k": 1}


def test_audio_resolves_after_moving_the_folder(tmp_path):
    src = tmp_path / "a" / "take"
    src.mkdir(parents=True)
    wav = src / "speech.wav"
    wav.write_bytes(b"RIFF")
    Motion(arkit_params(2), audio=str(wav)).save(src / "m.npz")
    dst = tmp_path / "elsewhere" / "moved"
    dst.parent.mkdir()
    shutil.move(str(src), str(dst))
    assert not wav.exists()
    back = load_motion(dst / "m.npz")
    assert back.audio == str((dst / "speech.wav").resolve())
    assert os.path.isabs(back.audio) and os.path.isfile(back.audio)


def test_audio_in_a_sibling_folder(tmp_path):
    (tmp_path / "motions").mkdir()
    (tmp_path / "audio").mkdir()
    wav = tmp_path / "audio" / "s.wav"
    wav.write_bytes(b"RIFF")
    Motion(arkit_params(2), audio=str(wav)).save(tmp_path / "motions" / "m.npz")
    with np.load(tmp_path / "motions" / "m.npz") as z:
        assert str(z["audio"]) == os.path.join("..", "audio", "s.wav")
    assert load_motion(tmp_path / "motions" / "m.npz").audio == str(wav.resolve())


def test_no_audio_round_trips_as_none(tmp_path):
    Motion(arkit_params(2)).save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z:
        assert str(z["audio"]) == ""
    back = load_motion(tmp_path / "m.npz")
    assert back.audio is None
    assert back.meta == {}
    assert back.fps == 25.0


def test_flame_round_trip(tmp_path):
    params = flame_params(5)
    Motion(params, space="flame", fps=30.0, meta={"tracker": "EMICA"}).save(tmp_path / "f.npz")
    with np.load(tmp_path / "f.npz") as z:
        assert str(z["space"]) == "flame"
    back = load_motion(tmp_path / "f.npz")
    assert back.space is FLAME
    np.testing.assert_array_equal(back.params, params)
    assert back.fps == 30.0 and back.meta == {"tracker": "EMICA"}
    np.testing.assert_array_equal(back.channel("jawRotX"), params[:, 50])


def test_channels_in_another_order_are_reordered(tmp_path):
    params = arkit_params(5, seed=3)
    perm = np.random.default_rng(7).permutation(N_ARKIT)
    assert not np.array_equal(perm, np.arange(N_ARKIT))
    channels = np.array([ARKIT.channels[i] for i in perm])
    write_raw(tmp_path / "p.npz", channels=channels, params=params[:, perm])
    back = load_motion(tmp_path / "p.npz")
    np.testing.assert_array_equal(back.params, params)
    np.testing.assert_array_equal(back.channel("jawOpen"), params[:, 17])
    np.testing.assert_array_equal(back.channel("headYaw"), params[:, 53])


def test_hand_written_file_without_optional_fields(tmp_path):
    params = arkit_params(3)
    write_raw(tmp_path / "min.npz", params=params, version=None, audio=None, meta=None)
    back = load_motion(tmp_path / "min.npz")
    np.testing.assert_array_equal(back.params, params)
    assert back.audio is None and back.meta == {}


# --------------------------------------------------------------------------- validation in memory


def test_wrong_channel_count():
    with pytest.raises(MotionError) as e:
        Motion(np.zeros((5, 57), np.float32))
    assert "(5, 57)" in str(e.value) and "58" in str(e.value)
    with pytest.raises(MotionError, match="56"):
        Motion(np.zeros((5, N_ARKIT), np.float32), space="flame")


def test_one_dimensional_params_rejected():
    with pytest.raises(MotionError, match="shape"):
        Motion(np.zeros(N_ARKIT, np.float32))


def test_zero_frames():
    with pytest.raises(MotionError, match="zero frames"):
        Motion(np.zeros((0, N_ARKIT), np.float32))


@pytest.mark.parametrize(
    "frame, channel, value, words",
    [
        (3, "mouthPucker", np.nan, ["NaN"]),
        (2, "headX", -np.inf, ["inf"]),
        (1, "jawOpen", 1.5, ["1.5"]),
    ],
)
def test_bad_value_names_frame_and_channel(frame, channel, value, words):
    p = arkit_params(6)
    p[frame, ARKIT.channels.index(channel)] = value
    with pytest.raises(MotionError) as e:
        Motion(p)
    msg = str(e.value)
    for word in words + [f"frame {frame}", f"'{channel}'"]:
        assert word in msg, (word, msg)


def test_negative_weight_rejected_and_rotation_limit():
    p = arkit_params(3)
    p[0, ARKIT.channels.index("eyeBlinkLeft")] = -0.2
    with pytest.raises(MotionError, match="eyeBlinkLeft"):
        Motion(p)
    p = arkit_params(3)
    p[0, ARKIT.channels.index("headYaw")] = 4.0  # more than pi radians
    with pytest.raises(MotionError, match="headYaw"):
        Motion(p)


def test_tiny_overshoot_is_clipped_not_rejected():
    p = arkit_params(2)
    p[0, 17] = 1.00005  # within the 1e-4 tolerance
    assert Motion(p).params[0, 17] == np.float32(1.0)


def test_non_numeric_params_rejected():
    with pytest.raises(MotionError, match="numbers"):
        Motion(np.full((2, N_ARKIT), "x"))


def test_bad_space_name():
    with pytest.raises(MotionError) as e:
        Motion(arkit_params(2), space="arkti")
    assert "'arkti'" in str(e.value) and "arkit" in str(e.value) and "flame" in str(e.value)


@pytest.mark.parametrize("fps", [0, -25.0, float("nan"), float("inf"), 5000])
def test_bad_fps(fps):
    with pytest.raises(MotionError, match="fps"):
        Motion(arkit_params(2), fps=fps)


def test_motion_error_is_an_adamesh_error():
    assert issubclass(MotionError, AdameshError)


# --------------------------------------------------------------------------- validation on load


def test_load_missing_file(tmp_path):
    msg = load_error(tmp_path / "nope.npz")
    assert "does not exist" in msg and "nope.npz" in msg


def test_load_corrupt_file(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(np.random.default_rng(0).bytes(500))
    msg = load_error(path)
    assert "junk.npz" in msg and "not a readable motion file" in msg


def test_load_text_file(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("frame,jawOpen\n0,0.5\n")
    assert "not a readable motion file" in load_error(path)


def test_load_folder_is_not_a_file(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    assert "does not exist" in load_error(tmp_path / "dir.npz")


def test_load_wrong_format_tag(tmp_path):
    msg = load_error(write_raw(tmp_path / "w.npz", format=np.array("someone.else")))
    assert "'someone.else'" in msg and "adamesh.motion" in msg and "w.npz" in msg


def test_load_other_npz(tmp_path):
    path = tmp_path / "verts.npz"
    np.savez(path, vertices=np.zeros((2, 3, 3)))
    msg = load_error(path)
    assert "not an adamesh motion file" in msg and "format" in msg and "params" in msg


def test_load_newer_version(tmp_path):
    assert "version 2" in load_error(write_raw(tmp_path / "v.npz", version=np.array(2)))


def test_load_channel_count_mismatch(tmp_path):
    msg = load_error(write_raw(tmp_path / "c.npz", params=np.zeros((4, 57), np.float32)))
    assert "(4, 57)" in msg and "58" in msg


def test_load_zero_frames(tmp_path):
    msg = load_error(write_raw(tmp_path / "z.npz", params=np.zeros((0, N_ARKIT), np.float32)))
    assert "zero frames" in msg and "z.npz" in msg


def test_load_nan_names_frame_and_channel(tmp_path):
    p = arkit_params(5)
    p[4, ARKIT.channels.index("cheekPuff")] = np.nan
    msg = load_error(write_raw(tmp_path / "n.npz", params=p))
    assert "frame 4" in msg and "'cheekPuff'" in msg and "n.npz" in msg


def test_load_nan_frame_and_channel_refer_to_the_file_order_or_space_order(tmp_path):
    # channels permuted in the file: the message must still name the right channel
    p = arkit_params(3)
    p[1, ARKIT.channels.index("browInnerUp")] = np.inf
    perm = np.roll(np.arange(N_ARKIT), 5)
    msg = load_error(write_raw(tmp_path / "n.npz", params=p[:, perm],
                               channels=np.array([ARKIT.channels[i] for i in perm])))  # fmt: skip
    assert "'browInnerUp'" in msg and "frame 1" in msg


def test_load_out_of_range(tmp_path):
    p = arkit_params(3)
    p[2, ARKIT.channels.index("jawOpen")] = 1.5
    msg = load_error(write_raw(tmp_path / "r.npz", params=p))
    assert "'jawOpen'" in msg and "1.5" in msg


def test_load_unknown_channel_name(tmp_path):
    channels = list(ARKIT.channels)
    channels[channels.index("jawOpen")] = "jawOpened"
    msg = load_error(write_raw(tmp_path / "u.npz", channels=np.array(channels)))
    assert "jawOpened" in msg and "unknown channel" in msg


def test_load_missing_channel(tmp_path):
    keep = [i for i, c in enumerate(ARKIT.channels) if c != "mouthRollLower"]
    msg = load_error(write_raw(tmp_path / "m.npz", channels=np.array([ARKIT.channels[i] for i in keep]),
                               params=arkit_params(4)[:, keep]))  # fmt: skip
    assert "mouthRollLower" in msg and "missing" in msg


def test_load_duplicate_channel(tmp_path):
    channels = np.array(list(ARKIT.channels) + ["jawOpen"])
    msg = load_error(write_raw(tmp_path / "d.npz", channels=channels, params=np.zeros((4, 59), np.float32)))
    assert "duplicate" in msg


def test_load_bad_space_name(tmp_path):
    msg = load_error(write_raw(tmp_path / "s.npz", space=np.array("blendshapes")))
    assert "'blendshapes'" in msg and "unknown space" in msg


def test_load_flame_channels_in_arkit_file_rejected(tmp_path):
    msg = load_error(write_raw(tmp_path / "s.npz", space=np.array("arkit"), channels=np.array(FLAME.channels),
                               params=flame_params(3)))  # fmt: skip
    assert "exp00" in msg


@pytest.mark.parametrize("fps", [0.0, -30.0])
def test_load_bad_fps(tmp_path, fps):
    msg = load_error(write_raw(tmp_path / "f.npz", fps=np.array(fps)))
    assert "fps" in msg and "f.npz" in msg


def test_load_bad_meta(tmp_path):
    assert "meta" in load_error(write_raw(tmp_path / "j.npz", meta=np.array("{not json")))


def test_load_refuses_pickles(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, format=np.array("adamesh.motion"), params=np.array([{"a": 1}], dtype=object))
    assert "pickled.npz" in load_error(path)


# --------------------------------------------------------------------------- atomic saving


def test_save_needs_npz_suffix(tmp_path):
    with pytest.raises(MotionError, match="npz"):
        save_motion(Motion(arkit_params(2)), tmp_path / "m.csv")
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_folder_creates_nothing(tmp_path):
    target = tmp_path / "not" / "here" / "m.npz"
    with pytest.raises(AdameshError) as e:
        save_motion(Motion(arkit_params(2)), target)
    assert "does not exist" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = arkit_params(3, seed=10)
    save_motion(Motion(old, meta={"v": "old"}), path)
    old_bytes = path.read_bytes()

    def broken_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip")  # write something, then fail like a full disk would
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError):
        save_motion(Motion(arkit_params(5, seed=11), meta={"v": "new"}), path)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no .partial left behind
    back = load_motion(path)
    np.testing.assert_array_equal(back.params, old)
    assert back.meta == {"v": "old"}


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def broken_savez(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(RuntimeError):
        save_motion(Motion(arkit_params(2)), tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_save_overwrites_and_file_is_readable_by_others(tmp_path):
    path = tmp_path / "m.npz"
    save_motion(Motion(arkit_params(2, seed=1)), path)
    new = arkit_params(4, seed=2)
    save_motion(Motion(new), path)
    np.testing.assert_array_equal(load_motion(path).params, new)
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_limit_lip_closure_is_the_nearest_pair_with_closure_within_the_jaw():
    rng = np.random.default_rng(0)
    jaw, close = rng.uniform(0, 1, 500), rng.uniform(0, 1, 500)
    j, c = limit_lip_closure(jaw, close)
    assert np.all(c <= j)
    ok = close <= jaw
    np.testing.assert_array_equal(j[ok], jaw[ok])
    np.testing.assert_array_equal(c[ok], close[ok])
    # every changed pair is the closest allowed point: no point of a fine grid of allowed pairs is nearer
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 201), np.linspace(0, 1, 201)), -1).reshape(-1, 2)
    grid = grid[grid[:, 1] <= grid[:, 0]]
    for k in np.nonzero(~ok)[0][:50]:
        nearest = np.sqrt(((grid - (jaw[k], close[k])) ** 2).sum(1)).min()
        assert np.hypot(j[k] - jaw[k], c[k] - close[k]) <= nearest + 1e-9


def test_motion_files_that_would_unpack_to_gigabytes_are_refused(tmp_path):
    """A small compressed file may declare any number of frames; the headers are read first."""
    path = tmp_path / "huge.npz"
    zeros = np.zeros((MAX_FRAMES + 1, len(ARKIT.channels)), np.float32)
    np.savez_compressed(
        path, format=FORMAT, space="arkit", channels=np.array(ARKIT.channels), params=zeros, fps=25.0
    )
    assert path.stat().st_size < 1e6
    with pytest.raises(MotionError, match=f"{MAX_FRAMES + 1:,} frames; at most"):
        load_motion(path)


def test_motion_files_with_text_for_numbers_are_refused(tmp_path):
    path = tmp_path / "text.npz"
    np.savez(
        path,
        format=FORMAT,
        space="arkit",
        channels=np.array(ARKIT.channels),
        params=np.zeros((3, len(ARKIT.channels)), np.float32),
        fps="fast",
    )
    with pytest.raises(MotionError, match="version and fps must be numbers"):
        load_motion(path)
