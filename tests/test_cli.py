"""The `adamesh` command: outputs of the happy paths, and error messages that say what to do.
The table of hostile and clumsy inputs is test_hostile.py."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from adamesh.cli import main
from adamesh.motion import ARKIT, FLAME, Motion, load_motion

DEMO_SECONDS, DEMO_FPS = 0.4, 25.0
DEMO_FRAMES = 10  # 0.4 s at 25 fps


def write_raw(path: Path, params: np.ndarray, space: str = "arkit") -> Path:
    """A motion .npz written by hand with numpy, without adamesh's validation."""
    channels = ARKIT.channels if space == "arkit" else FLAME.channels
    with open(path, "wb") as f:
        np.savez(f, format=np.array("adamesh.motion"), version=np.array(1), space=np.array(space),
                 channels=np.array(channels), params=np.asarray(params), fps=np.array(25.0),
                 audio=np.array(""), meta=np.array("{}"))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo motion (0.4 s) and its wav, written once by `adamesh motion demo`."""
    folder = tmp_path_factory.mktemp("demo")
    out = folder / "demo.npz"
    assert main(["motion", "demo", "--out", str(out), "--seconds", str(DEMO_SECONDS)]) == 0
    return out


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    corrupt = folder / "corrupt.npz"
    corrupt.write_bytes(np.random.default_rng(1).bytes(2000))
    nan = np.zeros((5, ARKIT.dim), np.float32)
    nan[2, ARKIT.channels.index("jawOpen")] = np.nan
    flame = folder / "flame.npz"
    Motion(np.zeros((5, FLAME.dim), np.float32), space="flame").save(flame)
    rig = folder / "corrupt_rig.npz"
    rig.write_bytes(b"\x00garbage, not a zip\xff" * 50)
    return {
        "missing": folder / "missing.npz",
        "corrupt": corrupt,
        "nan": write_raw(folder / "nan.npz", nan),
        "empty": write_raw(folder / "empty.npz", np.zeros((0, ARKIT.dim), np.float32)),
        "flame": flame,
        "corrupt_rig": rig,
    }


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def assert_one_error(capsys, rc: int, *needles: str) -> str:
    """Exit 1 and exactly one stderr line 'adamesh: error: ...' containing each needle."""
    err = capsys.readouterr().err
    assert rc == 1, err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    assert lines[0].startswith("adamesh: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# --------------------------------------------------------------------------- motion


def test_motion_demo_writes_motion_and_wav(demo, capsys):
    import soundfile as sf

    wav = demo.with_suffix(".wav")
    assert demo.is_file() and wav.is_file()
    assert sorted(p.name for p in demo.parent.iterdir()) == ["demo.npz", "demo.wav"]
    m = load_motion(demo)
    assert m.n_frames == DEMO_FRAMES and m.fps == DEMO_FPS and m.space is ARKIT
    assert m.audio == str(wav.resolve())
    assert m.channel("jawOpen").max() > 0.05  # the demo talks
    info = sf.info(str(wav))
    assert info.samplerate == 16000 and info.channels == 1
    assert abs(info.frames / info.samplerate - DEMO_SECONDS) < 1e-3


def test_motion_info_prints_frames(demo, capsys):
    assert main(["motion", "info", str(demo)]) == 0
    out = capsys.readouterr().out
    assert f"{DEMO_FRAMES} frames" in out
    assert "25 fps" in out and "space arkit" in out
    assert "demo.wav" in out and "jawOpen=" in out


def test_motion_info_of_bad_file(bad_inputs, capsys):
    assert_one_error(capsys, main(["motion", "info", str(bad_inputs["nan"])]), "'jawOpen'", "frame 2")


def test_motion_demo_keeps_a_recording_it_did_not_write(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("talk.wav").write_bytes(b"someone's recording")
    assert_one_error(capsys, main(["motion", "demo", "--out", "talk.npz"]), "talk.wav already exists")
    assert Path("talk.wav").read_bytes() == b"someone's recording" and not Path("talk.npz").exists()
    assert main(["motion", "demo", "--out", "demo.npz", "--seconds", "0.4"]) == 0
    assert main(["motion", "demo", "--out", "demo.npz", "--seconds", "0.4"]) == 0  # its own wav: rewritten


def test_motion_demo_bad_seconds(tmp_path, capsys):
    rc = main(["motion", "demo", "--out", str(tmp_path / "d.npz"), "--seconds", "0"])
    assert_one_error(capsys, rc, "--seconds")
    assert listing(tmp_path) == []


def test_motion_demo_into_missing_folder(tmp_path, capsys):
    rc = main(["motion", "demo", "--out", str(tmp_path / "no" / "d.npz"), "--seconds", "0.2"])
    assert_one_error(capsys, rc, "does not exist")
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------- render errors


RENDER_ERRORS = {
    # case: (motion key, extra args, words the message must contain)
    "missing motion": ("missing", [], ["missing.npz", "does not exist"]),
    "corrupt motion": ("corrupt", [], ["corrupt.npz", "not a readable motion file"]),
    "nan motion": ("nan", [], ["nan.npz", "NaN", "frame 2", "'jawOpen'"]),
    "zero frames": ("empty", [], ["empty.npz", "zero frames"]),
    "space mismatch": ("flame", ["--rig", "builtin"], ["flame", "arkit"]),
    "missing flame rig": (
        "demo",
        ["--rig", "flame:/nonexistent.pkl"],
        ["/nonexistent.pkl", "does not exist"],
    ),
    "corrupt ict rig": ("demo", ["--rig", "ict:CORRUPT_RIG"], ["corrupt_rig.npz"]),
    "unknown rig": ("demo", ["--rig", "foo"], ["'foo'", "builtin"]),
}


@pytest.mark.parametrize("case", list(RENDER_ERRORS))
def test_render_error(case, demo, bad_inputs, tmp_path, capsys):
    key, extra, needles = RENDER_ERRORS[case]
    motion = demo if key == "demo" else bad_inputs[key]
    extra = [a.replace("CORRUPT_RIG", str(bad_inputs["corrupt_rig"])) for a in extra]
    out = tmp_path / "out.mp4"
    rc = main(["render", str(motion), "--out", str(out), "--size", "64", *extra])
    assert_one_error(capsys, rc, *needles)
    assert listing(tmp_path) == []  # no output, no hidden .partial file


def test_render_into_missing_folder(demo, tmp_path, capsys):
    out = tmp_path / "nowhere" / "out.mp4"
    rc = main(["render", str(demo), "--out", str(out), "--size", "64"])
    assert_one_error(capsys, rc, "does not exist", "nowhere")
    assert listing(tmp_path) == []


def test_render_into_read_only_folder(demo, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user (root) who can write to read-only folders")
        rc = main(["render", str(demo), "--out", str(ro / "out.mp4"), "--size", "64"])
        assert_one_error(capsys, rc, "not writable")
        assert listing(ro) == []
    finally:
        ro.chmod(0o755)


def test_render_to_a_directory_path(demo, tmp_path, capsys):
    (tmp_path / "out.mp4").mkdir()
    rc = main(["render", str(demo), "--out", str(tmp_path / "out.mp4"), "--size", "64"])
    assert_one_error(capsys, rc, "directory")
    assert listing(tmp_path) == ["out.mp4"] and listing(tmp_path / "out.mp4") == []


def test_export_never_replaces_a_folder_of_other_files(demo, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    args = ["export", str(demo), "--format", "obj", "--rig", "builtin", "--out", str(folder)]
    assert_one_error(capsys, main(args), "did not write", "choose a new folder")
    assert listing(folder) == ["notes.txt"]
    out = tmp_path / "frames"
    assert main(args[:-1] + [str(out)]) == 0
    assert main(args[:-1] + [str(out)]) == 0  # its own earlier output is replaced
    assert ".adamesh-output" in listing(out) and len(listing(out)) > 2


def _render_until_partial(motion: Path, out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "adamesh", "render", str(motion), "--out", str(out), "--size", "128"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not list(out.parent.glob(".out.partial-*")):
        assert proc.poll() is None and time.time() < deadline, (
            proc.stderr.read() if proc.poll() is not None else "slow"
        )
        time.sleep(0.05)
    return proc


def test_killed_renders_leave_no_partial_file(tmp_path):
    motion = tmp_path / "long.npz"
    assert main(["motion", "demo", "--out", str(motion), "--seconds", "30"]) == 0
    out = tmp_path / "out.mp4"
    proc = _render_until_partial(motion, out)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143 and proc.stderr.read().endswith("adamesh: terminated\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.npz", "long.wav"]
    proc = _render_until_partial(motion, out)
    proc.kill()  # SIGKILL: nothing runs, the partial file stays ...
    proc.wait(60)
    assert len(list(tmp_path.glob(".out.partial-*"))) == 1
    motion_short = tmp_path / "short.npz"
    assert main(["motion", "demo", "--out", str(motion_short), "--seconds", "0.4"]) == 0
    assert main(["render", str(motion_short), "--out", str(out), "--size", "64"]) == 0
    assert not list(tmp_path.glob(".out.partial-*"))  # ... until the next run writes that output


def test_render_missing_audio(tmp_path, capsys):
    m = Motion(np.zeros((3, ARKIT.dim), np.float32), audio=str(tmp_path / "gone.wav"))
    (tmp_path / "in").mkdir()
    m.save(tmp_path / "in" / "m.npz")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc = main(["render", str(tmp_path / "in" / "m.npz"), "--out", str(out_dir / "x.mp4"), "--size", "64"])
    assert_one_error(capsys, rc, "gone.wav")
    assert listing(out_dir) == []


def test_failed_render_keeps_existing_output(bad_inputs, tmp_path, capsys):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"an earlier good video")
    rc = main(["render", str(bad_inputs["nan"]), "--out", str(out), "--size", "64"])
    assert_one_error(capsys, rc, "NaN")
    assert out.read_bytes() == b"an earlier good video"
    assert listing(tmp_path) == ["keep.mp4"]


def test_render_failing_midway_keeps_existing_output(demo, tmp_path, capsys):
    """An odd frame size fails inside the encoder, after the temporary file exists."""
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"an earlier good video")
    rc = main(["render", str(demo), "--out", str(out), "--size", "63"])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "adamesh: error: --size 63 must be even" in err
    assert "Traceback" not in err
    assert out.read_bytes() == b"an earlier good video"
    assert listing(tmp_path) == ["keep.mp4"]


def test_render_failing_midway_prints_one_clean_line(demo, tmp_path, capsys):
    rc = main(["render", str(demo), "--out", str(tmp_path / "x.mp4"), "--size", "63"])
    assert_one_error(capsys, rc, "even")


def test_render_size_zero_is_a_user_error(demo, tmp_path, capsys):
    rc = main(["render", str(demo), "--out", str(tmp_path / "x.mp4"), "--size", "0"])
    assert_one_error(capsys, rc, "size")
    assert listing(tmp_path) == []


def test_error_exit_code_of_the_real_command(tmp_path):
    out = tmp_path / "x.mp4"
    missing = tmp_path / "missing.npz"
    cmd = [sys.executable, "-m", "adamesh", "render", str(missing), "--out", str(out), "--size", "64"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("adamesh: error: ") and "missing.npz" in lines[0]
    assert "Traceback" not in p.stderr
    assert p.stdout == ""
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------- render success


def test_render_small_video(demo, tmp_path, capsys):
    import av

    out = tmp_path / "x.mp4"
    rc = main(["render", str(demo), "--out", str(out), "--size", "64"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"{DEMO_FRAMES} frames" in captured.out and "with audio" in captured.out
    assert listing(tmp_path) == ["x.mp4"]
    with av.open(str(out)) as box:
        video = [s for s in box.streams if s.type == "video"]
        audio = [s for s in box.streams if s.type == "audio"]
        assert len(video) == 1 and len(audio) == 1
        assert video[0].codec_context.name == "h264"
        assert audio[0].codec_context.name == "aac"
        assert (video[0].codec_context.width, video[0].codec_context.height) == (64, 64)
        duration = box.duration / av.time_base
        assert abs(duration - DEMO_SECONDS) < 0.05
        frames = list(box.decode(video=0))
    assert len(frames) == DEMO_FRAMES
    img = frames[0].to_ndarray(format="rgb24")
    assert img.shape == (64, 64, 3) and img.std() > 5  # a face on a background, not a blank frame


# --------------------------------------------------------------------------- export


def test_export_csv_of_flame_motion_refused(bad_inputs, tmp_path, capsys):
    out = tmp_path / "x.csv"
    rc = main(["export", str(bad_inputs["flame"]), "--format", "csv", "--out", str(out)])
    assert_one_error(capsys, rc, "flame", "arkit")
    assert listing(tmp_path) == []


def test_export_csv(demo, tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert main(["export", str(demo), "--format", "csv", "--out", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert len(rows) == 1 + DEMO_FRAMES
    header = rows[0].split(",")
    assert header[:2] == ["Timecode", "BlendShapeCount"] and len(header) == 2 + 52 + 9
    assert rows[1].split(",")[0] == "00:00:00:00.000" and rows[1].split(",")[1] == "61"
    assert listing(tmp_path) == ["x.csv"]


def test_export_bad_motion_keeps_existing_output(bad_inputs, tmp_path, capsys):
    out = tmp_path / "x.csv"
    out.write_text("old,csv\n")
    rc = main(["export", str(bad_inputs["corrupt"]), "--format", "csv", "--out", str(out)])
    assert_one_error(capsys, rc, "corrupt.npz")
    assert out.read_text() == "old,csv\n"
    assert listing(tmp_path) == ["x.csv"]


def test_export_unknown_format_is_a_usage_error(demo, tmp_path, capsys):
    rc = main(["export", str(demo), "--format", "usd", "--out", str(tmp_path / "x.usd")])
    assert_one_error(capsys, rc, "invalid choice: 'usd'", "adamesh export --help")
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------- rig


def test_rig_show_contact_sheet(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "sheet.png"
    assert main(["rig", "show", "builtin", "--out", str(out), "--tile", "64"]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size == (8 * 64, 7 * 64)  # 53 tiles (neutral + 52 shapes), 8 columns
    assert listing(tmp_path) == ["sheet.png"]


def test_rig_show_unknown_rig(tmp_path, capsys):
    rc = main(["rig", "show", "foo", "--out", str(tmp_path / "s.png"), "--tile", "64"])
    assert_one_error(capsys, rc, "'foo'")
    assert listing(tmp_path) == []


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("adamesh ")


def test_a_killed_writer_nobody_has_reaped_counts_as_gone():
    """A process killed with its parent stays a zombie until someone reaps it; its partial files
    are orphans all the same."""
    from adamesh.fileio import _running

    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.time() + 10
        while Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
            assert time.time() < deadline
            time.sleep(0.01)
        assert not _running(pid) and _running(os.getpid())
    finally:
        os.waitpid(pid, 0)


def _sigterm_disposition(_):
    return signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, os.environ.get("POOL_INIT")


def test_pool_workers_die_on_sigterm_whatever_the_command_installed():
    """Python runs a SIGTERM handler only between bytecodes, so a worker that inherited one and got
    SIGTERM just before blocking on the pool's queue would never die, and Pool.terminate would wait
    for it for ever (it hung a test run): the workers get the default action back."""
    from adamesh.cli import _terminate
    from adamesh.fileio import worker_pool

    # the command's own handler: a worker still starting when the pool ends dies by it
    previous = signal.signal(signal.SIGTERM, functools.partial(_terminate, os.getpid()))
    try:
        with worker_pool(2, os.environ.__setitem__, ("POOL_INIT", "ran")) as pool:
            assert pool.map(_sigterm_disposition, range(4)) == [(True, "ran")] * 4
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_help_imports_no_torch():
    # `adamesh --help` starts in a fraction of a second because nothing imports torch for it
    code = "import sys, runpy; sys.argv = ['adamesh', '--help']\ntry: runpy.run_module('adamesh', run_name='__main__')\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_a_reader_that_stops_reading_is_not_an_error(tmp_path):
    """`adamesh motion info X | head -1`: the pipe closes before the output is written."""
    import subprocess
    import sys

    assert main(["motion", "demo", "--out", str(tmp_path / "m.npz"), "--seconds", "0.4"]) == 0
    run = subprocess.Popen(
        [sys.executable, "-m", "adamesh", "motion", "info", str(tmp_path / "m.npz")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    run.stdout.close()  # the reader is gone before the first line
    err = run.stderr.read().decode()
    assert run.wait(timeout=120) == 0 and err == "", err


def test_export_uses_the_builtin_head_when_no_rig_is_named(tmp_path):
    from adamesh.avatar import read_glb

    assert main(["motion", "demo", "--out", str(tmp_path / "m.npz"), "--seconds", "0.4"]) == 0
    assert main(["export", str(tmp_path / "m.npz"), "--format", "glb", "--out", str(tmp_path / "m.glb")]) == 0
    doc = read_glb(tmp_path / "m.glb")[0]
    assert len(doc["meshes"][0]["extras"]["targetNames"]) == 52 and doc["animations"][0]["name"] == "speech"


def test_a_full_disk_names_the_file_it_could_not_write(tmp_path, monkeypatch, capsys):
    import errno

    import adamesh.export

    assert main(["motion", "demo", "--out", str(tmp_path / "m.npz"), "--seconds", "0.4"]) == 0

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")  # as a library's write says it: no path

    monkeypatch.setattr(adamesh.export.csv, "writer", full)
    capsys.readouterr()
    out = tmp_path / "m.csv"
    assert main(["export", str(tmp_path / "m.npz"), "--format", "csv", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"cannot use {out}: No space left on device" in err and not out.exists()


def test_a_library_failing_on_a_full_disk_is_reported_as_a_full_disk(tmp_path, monkeypatch):
    """soundfile says "System error." and safetensors "I/O error" when the disk fills: with little
    space left the failure is named for what it is, and no partial file stays."""
    import shutil
    from collections import namedtuple

    from adamesh.errors import AdameshError
    from adamesh.fileio import atomic_output

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 30, (1 << 30) - 4096, 4096))
    with pytest.raises(AdameshError, match=r"cannot write .*x\.wav: its device is full \(4 KB free\)"):
        with atomic_output(tmp_path / "x.wav") as tmp:
            tmp.write_bytes(b"RIFF")
            raise RuntimeError("System error.")
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_may_hold_an_earlier_runs_outputs_and_partials(tmp_path):
    from adamesh.demo import OUTPUTS
    from adamesh.errors import AdameshError
    from adamesh.fileio import check_output_folder

    for name in ("report.md", "clips", "generic.npz", ".side_by_side.partial-99999-x.mp4"):
        (tmp_path / name).touch()
    assert check_output_folder(tmp_path, OUTPUTS, "the demo's") == tmp_path
    (tmp_path / "thesis.tex").touch()
    with pytest.raises(AdameshError, match=r"holds files that are not the demo's \(thesis.tex\)"):
        check_output_folder(tmp_path, OUTPUTS, "the demo's")
