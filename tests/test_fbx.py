"""FBX export through Blender's bpy (an environment of its own: `make fbx`), checked by importing
the file back into Blender. Skipped when no Python with bpy is found."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adamesh.errors import AdameshError
from adamesh.export import BLENDER_PYTHON, blender_python, export
from adamesh.testmotion import demo_motion

ROOT = Path(__file__).resolve().parents[1]


def test_make_fbx_environment_is_found_without_the_variable(monkeypatch):
    monkeypatch.delenv(BLENDER_PYTHON, raising=False)
    local = ROOT / ".venv-fbx" / "bin" / "python"
    if not local.is_file():
        pytest.skip("no .venv-fbx in this clone (`make fbx` makes it)")
    assert blender_python() in (str(local), sys.executable)


@pytest.fixture
def blender():
    if blender_python() is None:
        pytest.skip(f"no Python with Blender's bpy: run `make fbx`, or set {BLENDER_PYTHON}")
    return blender_python()


def _inspect(python: str, fbx: Path, fps: int) -> dict:
    run = subprocess.run([python, str(ROOT / "tests" / "blender_inspect.py"), str(fbx), str(fps)],
                         capture_output=True, text=True, check=True, timeout=300)  # fmt: skip
    return json.loads(next(line for line in run.stdout.splitlines() if line.startswith("REPORT "))[7:])


def test_blender_reads_back_52_animated_shape_keys_and_the_head(blender, builtin, tmp_path):
    motion, _ = demo_motion(2.0)
    out = export(motion, "fbx", tmp_path / "clip.fbx", builtin)
    report = _inspect(blender, out, 25)["objects"]
    face = next(o for o in report.values() if o.get("shape_keys"))
    assert len(face["shape_keys"]) == 52 and len(face["animated"]) == 52
    # the curves hold the motion's weights at its frames (0, 5, ..., 45)
    np.testing.assert_allclose(face["animated"]["jawOpen"], motion.channel("jawOpen")[0:50:5], atol=2e-3)
    assert any(o["rotation_curves"] == 3 for o in report.values())  # the head turns
    assert out.stat().st_size < 20e6


def test_without_bpy_the_error_says_what_to_install(builtin, tmp_path, monkeypatch):
    monkeypatch.setenv(BLENDER_PYTHON, str(tmp_path / "no-such-python"))
    with pytest.raises(AdameshError, match="make fbx"):
        export(demo_motion(0.4)[0], "fbx", tmp_path / "clip.fbx", builtin)
    assert not (tmp_path / "clip.fbx").exists()


def test_an_avatar_with_clips_of_its_own_is_refused(builtin, tmp_path):
    avatar = export(demo_motion(0.4)[0], "glb", tmp_path / "avatar.glb", builtin)  # holds a clip, "speech"
    with pytest.raises(AdameshError, match="animations of its own"):
        export(demo_motion(0.4)[0], "fbx", tmp_path / "clip.fbx", f"gltf:{avatar}")
