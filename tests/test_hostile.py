"""Hostile and clumsy input to every command, crafted by the tests themselves.

Each case ends in exactly one line `adamesh: error: ...` on stderr (progress bars aside) and exit 1,
before or after any work; no file inside the test's folder is created, changed or removed (the
named output included: it is never written, and one that existed is kept); the pickle payloads
run no code (they would create a marker file).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pickle
import re
import shutil
import stat
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from adamesh.cli import main
from adamesh.motion import ARKIT, FLAME, MAX_FRAMES
from adamesh.motion import FORMAT as MOTION_FORMAT

MARKER = "marker"  # what the pickle payloads would create in the test's folder


class Payload:
    """Unpickling this runs a shell command."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Valid inputs the crafted ones start from: a 0.4 s motion and its wav, and a glb avatar."""
    folder = tmp_path_factory.mktemp("base")
    assert main(["motion", "demo", "--out", str(folder / "m.npz"), "--seconds", "0.4"]) == 0
    assert (
        main(
            [
                "export",
                str(folder / "m.npz"),
                "--format",
                "glb",
                "--rig",
                "builtin",
                "--out",
                str(folder / "avatar.glb"),
            ]
        )
        == 0
    )
    return folder


@pytest.fixture(scope="module")
def run(small_corpus, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny expression training run stopped after one epoch (what resuming reads), and its data."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert (
        main(
            [
                "train",
                "expression",
                "--data",
                str(small_corpus),
                "--out",
                str(out),
                "--preset",
                "tiny",
                "--frontend",
                "mel",
                "--epochs",
                "1",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    return out, small_corpus


def resume(t: Path, run: tuple[Path, Path], damage) -> list[str]:
    """Resume a copy of the run after `damage(copy)`."""
    shutil.copytree(run[0], t / "run")
    damage(t / "run")
    return train(str(run[1]), "run", "--epochs", "2")


CASES: dict = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def motion(t: Path, base: Path, name: str = "m.npz") -> str:
    """A copy of the valid motion and its wav, as `name` (and the same name .wav)."""
    for suffix in (".npz", ".wav"):
        shutil.copy(base / f"m{suffix}", (t / name).with_suffix(suffix))
    return name


def render(motion_file: str, *extra: str) -> list[str]:
    return ["render", motion_file, "--out", "out.mp4", "--size", "64", *extra]


def raw_motion(path: Path, **fields) -> str:
    """A motion .npz written by hand with numpy: what adamesh's own writer would refuse."""
    values = dict(
        format=MOTION_FORMAT,
        version=1,
        space="arkit",
        channels=np.array(ARKIT.channels),
        params=np.zeros((5, ARKIT.dim), np.float32),
        fps=25.0,
        audio="",
        meta="{}",
    )
    values.update(fields)
    np.savez_compressed(path, **values)
    return path.name


def gltf(t: Path, base: Path, change, folder: str = ".") -> str:
    """The avatar as .gltf (in `folder`) + .bin, its JSON changed by `change(doc)`."""
    import pygltflib

    avatar = pygltflib.GLTF2().load(str(base / "avatar.glb"))
    (t / "avatar.bin").write_bytes(avatar.binary_blob())
    doc = json.loads(avatar.to_json())
    doc["buffers"][0]["uri"] = "avatar.bin"
    change(doc)
    (t / folder).mkdir(exist_ok=True)
    (t / folder / "avatar.gltf").write_text(json.dumps(doc))
    return f"gltf:{folder}/avatar.gltf"


def ict_zip(t: Path, files: dict) -> str:
    with zipfile.ZipFile(t / "ict.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(f"ICT-FaceKit-master/FaceXModel/{name}", data)
    return "ict.zip"


def profile(t: Path, meta: dict) -> str:
    from adamesh.profile import PROFILE_FORMAT

    save_file(
        {"x": torch.zeros(1)},
        str(t / "bad.profile"),
        metadata={"adamesh": json.dumps({"format": PROFILE_FORMAT, **meta})},
    )
    return "bad.profile"


def animate(t: Path, base: Path, *extra: str) -> list[str]:
    return ["animate", "--audio", motion(t, base).replace(".npz", ".wav"), "--out", "out.npz", *extra]


def clip_folder(t: Path, clips: int) -> str:
    """A training folder of `clips` 1 s clips (motion + wav)."""
    (t / "clips").mkdir()
    for k in range(clips):
        assert main(["motion", "demo", "--out", str(t / "clips" / f"m{k}.npz"), "--seconds", "1"]) == 0
    return "clips"


def train(data: str, out: str, *extra: str) -> list[str]:
    return [
        "train",
        "expression",
        "--data",
        data,
        "--out",
        out,
        "--preset",
        "tiny",
        "--frontend",
        "mel",
        "--workers",
        "1",
        *extra,
    ]


# --------------------------------------------------------------------------- code in data files


@case
def motion_with_a_pickle(t, base, mp):
    path = t / "evil.npz"
    np.savez(path, format=MOTION_FORMAT, params=np.array([Payload()], dtype=object))
    return render("evil.npz")


@case
def flame_pickle_running_a_command(t, base, mp):
    (t / "evil.pkl").write_bytes(pickle.dumps({"v_template": Payload(), "f": np.zeros((1, 3))}))
    return render(motion(t, base), "--rig", "flame:evil.pkl")


@case
def flame_pickle_importing_f2py(t, base, mp):
    # GLOBAL 'numpy.f2py.__main__ _reconstruct', an empty tuple, REDUCE, STOP: importing it runs f2py
    (t / "f2py.pkl").write_bytes(b"\x80\x02cnumpy.f2py.__main__\n_reconstruct\n)R.")
    return render(motion(t, base), "--rig", "flame:f2py.pkl")


@case
def flame_pickle_of_a_19_gb_bytearray(t, base, mp):
    # GLOBAL bytearray, LONG1 19 GiB, TUPLE1, REDUCE, STOP: 36 bytes
    size = (19 << 30).to_bytes(5, "little")
    (t / "bomb.pkl").write_bytes(b"\x80\x02c__builtin__\nbytearray\n\x8a\x05" + size + b"\x85R.")
    return ["rig", "info", "flame:bomb.pkl"]


@case
def flame_pickle_of_a_10_gb_array(t, base, mp):
    # {"v_template": _reconstruct(ndarray, (10**10,), "b")}: numpy reserves it untouched; a copy fills it
    size = (10**10).to_bytes(5, "little")
    array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n\x8a\x05" + size + b"\x85U\x01b\x87R"
    (t / "bomb.pkl").write_bytes(b"\x80\x02}X\n\x00\x00\x00v_template" + array + b"s.")
    return ["rig", "info", "flame:bomb.pkl"]


@case
def training_state_with_a_pickle(t, base, mp, run):
    return resume(t, run, lambda out: torch.save({"optimiser": Payload()}, out / "train_state.pt"))


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


@case
def training_state_truncated(t, base, mp, run):
    return resume(t, run, lambda out: _truncate(out / "train_state.pt", 500))


# --------------------------------------------------------------------------- small files asking for a lot


@case
def motion_whose_audio_is_etc_shadow(t, base, mp):
    return render(raw_motion(t / "shadow.npz", audio="/etc/shadow"))


@case
def motion_of_a_million_frames_in_a_small_file(t, base, mp):
    name = raw_motion(t / "huge.npz", params=np.zeros((MAX_FRAMES + 1, ARKIT.dim), np.float32))
    assert (t / name).stat().st_size < 2e6
    return render(name)


@case
def gltf_buffer_is_dev_zero(t, base, mp):
    return render(motion(t, base), "--rig", gltf(t, base, lambda d: d["buffers"][0].update(uri="/dev/zero")))


@case
def gltf_buffer_is_etc_passwd(t, base, mp):
    return render(
        motion(t, base), "--rig", gltf(t, base, lambda d: d["buffers"][0].update(uri="/etc/passwd"))
    )


@case
def gltf_buffer_outside_its_folder(t, base, mp):
    return render(
        motion(t, base), "--rig", gltf(t, base, lambda d: d["buffers"][0].update(uri="../avatar.bin"), "sub")
    )


@case
def gltf_buffer_larger_than_its_file(t, base, mp):
    return render(
        motion(t, base), "--rig", gltf(t, base, lambda d: d["buffers"][0].update(byteLength=1 << 40))
    )


@case
def gltf_accessor_of_a_billion_elements(t, base, mp):
    return render(motion(t, base), "--rig", gltf(t, base, lambda d: d["accessors"][0].update(count=10**9)))


@case
def gltf_of_300k_nodes(t, base, mp):
    return render(
        motion(t, base), "--rig", gltf(t, base, lambda d: d["nodes"].extend({} for _ in range(300_000)))
    )


@case
def gltf_node_chain_200k_deep(t, base, mp):
    def chain(doc):
        first = len(doc["nodes"])
        doc["nodes"].extend({"children": [first + k + 1]} for k in range(200_000))
        doc["nodes"].append({})
        doc["scenes"][0]["nodes"].append(first)

    return render(motion(t, base), "--rig", gltf(t, base, chain))


def damaged_glb(t: Path, base: Path, change) -> list[str]:
    """export onto the avatar glb after `change(doc, blob)` (returns the new blob, or None)."""
    from adamesh.avatar import read_glb, write_glb

    doc, blob = read_glb(base / "avatar.glb")
    blob = change(doc, bytearray(blob)) or blob
    doc["buffers"][0]["byteLength"] = len(blob)
    write_glb(doc, blob, t / "bad.glb")
    return ["export", motion(t, base), "--format", "glb", "--rig", "gltf:bad.glb", "--out", "out.glb"]


@case
def avatar_glb_cut_in_half(t, base, mp):
    data = (base / "avatar.glb").read_bytes()
    (t / "bad.glb").write_bytes(data[: len(data) // 2])
    return ["export", motion(t, base), "--format", "glb", "--rig", "gltf:bad.glb", "--out", "out.glb"]


@case
def avatar_accessor_of_2_31_elements(t, base, mp):
    return damaged_glb(t, base, lambda doc, blob: doc["accessors"][0].update(count=2**31))


@case
def avatar_accessor_of_an_unknown_component_type(t, base, mp):
    return damaged_glb(t, base, lambda doc, blob: doc["accessors"][0].update(componentType=9999))


@case
def avatar_buffer_view_with_a_stride_of_3(t, base, mp):
    return damaged_glb(t, base, lambda doc, blob: doc["bufferViews"][0].update(byteStride=3))


@case
def avatar_sparse_indices_of_a_billion(t, base, mp):
    def change(doc, blob):
        blob.extend(b"\0" * (-len(blob) % 4))
        doc["bufferViews"].append({"buffer": 0, "byteOffset": len(blob), "byteLength": 16})
        blob.extend(np.array([10**9], np.uint32).tobytes() + np.zeros(3, np.float32).tobytes())
        view = len(doc["bufferViews"]) - 1
        accessor = next(a for a in doc["accessors"] if a["type"] == "VEC3" and a["componentType"] == 5126)
        accessor["sparse"] = {
            "count": 1,
            "indices": {"bufferView": view, "componentType": 5125},
            "values": {"bufferView": view, "byteOffset": 4},
        }
        return blob

    return damaged_glb(t, base, change)


@case
def avatar_node_with_a_nan_matrix(t, base, mp):
    return damaged_glb(t, base, lambda doc, blob: doc["nodes"][0].update(matrix=[float("nan")] * 16))


@case
def gltf_with_nan_vertices(t, base, mp):
    spec = gltf(t, base, lambda d: None)
    doc = json.loads((t / spec[5:]).read_text())
    accessor = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    view = doc["bufferViews"][accessor["bufferView"]]
    blob = bytearray((t / "avatar.bin").read_bytes())
    at = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    blob[at : at + 4] = np.array([np.nan], np.float32).tobytes()
    (t / "avatar.bin").write_bytes(bytes(blob))
    return render(motion(t, base), "--rig", spec)


@case
def ict_zip_bomb(t, base, mp):
    from adamesh.rigs.ict import MAX_ENTRY_BYTES

    name = ict_zip(
        t, {"generic_neutral_mesh.obj": b"v 0 0 0\n", "vertex_indices.json": b" " * (MAX_ENTRY_BYTES + 1)}
    )
    assert (t / name).stat().st_size < 1e6
    return ["rig", "install", "ict-facekit", "--from", name, "--cache", "rigs"]


@case
def ict_zip_with_damaged_indices(t, base, mp):
    name = ict_zip(
        t, {"generic_neutral_mesh.obj": b"v 0 0 0\n", "vertex_indices.json": b'{"expressions": 3}'}
    )
    return ["rig", "install", "ict-facekit", "--from", name, "--cache", "rigs"]


@case
def ict_url_that_is_not_ict(t, base, mp):
    (t / "tmp").mkdir()
    mp.setattr("tempfile.tempdir", str(t / "tmp"))  # the downloaded copy would be left here
    with zipfile.ZipFile(t / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "hello")
    return ["rig", "install", "ict-facekit", "--from", (t / "other.zip").as_uri(), "--cache", "rigs"]


def shipped_model_profile(t: Path, header_ranks: list) -> str:
    """A profile that fits the shipped model, with a MoLoRA adapter of ranks (1, 2, 4) whose header
    claims `header_ranks`: applying it would build layers of the header's ranks first."""
    import copy

    from adamesh import api
    from adamesh.adapt.expression import AdaptConfig
    from adamesh.models.molora import adapter_state_dict, add_molora
    from adamesh.profile import ExpressionProfile, PoseProfile, Profile

    animator = api.load()
    net, spec = copy.deepcopy(animator.expression), AdaptConfig().adapter
    add_molora(net, spec)
    style = animator.expression.null_style.detach()
    expression = ExpressionProfile(
        "molora", style, adapter_state_dict(net), replace(spec, ranks=tuple(header_ranks)),
        model_id=animator.ids["expression"],
    )  # fmt: skip
    null = animator.pose.gpt.null_style.detach()
    pose = PoseProfile(null, "blend", [], [], {}, np.zeros(6, np.float32), animator.ids["pose"])
    Profile(expression, pose, {}, {}).save(t / "ranks.profile")
    return "ranks.profile"


@case
def profile_whose_ranks_ask_for_19_gb(t, base, mp):
    return animate(t, base, "--profile", shipped_model_profile(t, [100000]))


def damaged_model(t: Path, base: Path, part: str, name: str, change) -> list[str]:
    """animate with a copy of the shipped model whose `part`/`name` JSON is `change(doc)`."""
    from adamesh.api import WEIGHTS

    shutil.copytree(WEIGHTS, t / "model")
    path = t / "model" / part / name
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return animate(t, base, "--model", "model")


def _with_model(**settings):
    return lambda doc: {**doc, "model": {**doc["model"], **settings}}


@case
def model_config_with_an_unknown_setting(t, base, mp):
    return damaged_model(t, base, "expression", "config.json", _with_model(wings=2))


@case
def model_config_with_three_heads(t, base, mp):
    return damaged_model(t, base, "pose/gpt", "config.json", _with_model(heads=3))


@case
def model_config_asking_for_a_billion_wide_layers(t, base, mp):
    return damaged_model(t, base, "expression", "config.json", _with_model(d_model=2**30, ff=2**30))


@case
def model_config_with_words_for_sizes(t, base, mp):
    return damaged_model(t, base, "pose/vqvae", "config.json", _with_model(hidden="wide"))


@case
def model_config_that_is_a_list(t, base, mp):
    return damaged_model(t, base, "expression", "config.json", lambda doc: [doc])


@case
def model_frontend_without_a_name(t, base, mp):
    return damaged_model(t, base, "expression", "frontend.json", lambda doc: {"options": {}})


@case
def model_frontend_that_is_a_list(t, base, mp):
    return damaged_model(t, base, "pose/gpt", "frontend.json", lambda doc: ["whisper"])


@case
def profile_whose_header_is_a_list(t, base, mp):
    save_file({"x": torch.zeros(1)}, str(t / "list.profile"), metadata={"adamesh": "[1, 2]"})
    return animate(t, base, "--profile", "list.profile")


@case
def profile_whose_parts_are_lists(t, base, mp):
    return animate(t, base, "--profile", profile(t, {"reference": {}, "expression": [1], "pose": [2]}))


@case
def glb_avatar_whose_json_is_a_list(t, base, mp):
    text = b"[1, 2]  "
    body = len(text).to_bytes(4, "little") + b"JSON" + text
    (t / "list.glb").write_bytes(
        b"glTF" + (2).to_bytes(4, "little") + (12 + len(body)).to_bytes(4, "little") + body
    )
    return ["export", motion(t, base), "--format", "glb", "--rig", "gltf:list.glb", "--out", "out.glb"]


@case
def profile_with_nan_weights(t, base, mp):
    from safetensors import safe_open
    from safetensors.torch import load_file

    name = shipped_model_profile(t, [1, 2, 4])
    with safe_open(str(t / name), "pt") as f:
        header = f.metadata()
    tensors = load_file(str(t / name))
    key = next(k for k in tensors if k.endswith("lora_B"))
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    save_file(tensors, str(t / name), metadata=header)
    return animate(t, base, "--profile", name)


@case
def profile_with_a_blink_rate_of_1e9(t, base, mp):
    return animate(
        t, base, "--profile", profile(t, {"reference": {"blink_rate": 1e9}, "expression": {}, "pose": {}})
    )


@case
def profile_with_words_for_numbers(t, base, mp):
    return animate(t, base, "--profile", profile(t, {"reference": {"blink_rate": "often"}}))


@case
def profile_missing_its_parts(t, base, mp):
    return animate(t, base, "--profile", profile(t, {"reference": {}}))


# --------------------------------------------------------------------------- outputs


@case
def output_is_a_device(t, base, mp):
    return ["render", motion(t, base), "--out", "/dev/null", "--size", "64"]


@case
def output_under_proc(t, base, mp):
    return ["render", motion(t, base), "--out", "/proc/out.mp4", "--size", "64"]


@case
def output_is_a_fifo(t, base, mp):
    os.mkfifo(t / "out.mp4")
    return render(motion(t, base))


@case
def output_is_a_symbolic_link(t, base, mp):
    (t / "out.csv").symlink_to(t / "elsewhere.csv")
    return ["export", motion(t, base), "--format", "csv", "--out", "out.csv"]


@case
def output_is_a_folder(t, base, mp):
    (t / "out.mp4").mkdir()
    return render(motion(t, base))


@case
def output_into_a_missing_folder(t, base, mp):
    return ["render", motion(t, base), "--out", "nowhere/out.mp4", "--size", "64"]


@case
def obj_export_into_a_folder_of_other_files(t, base, mp):
    (t / "mine").mkdir()
    (t / "mine" / "notes.txt").write_text("keep me")
    return ["export", motion(t, base), "--format", "obj", "--rig", "builtin", "--out", "mine"]


@case
def stream_onto_its_speech(t, base, mp):
    wav = motion(t, base).replace(".npz", ".wav")
    return ["stream", "--fast", "--audio", wav, "--out", wav]


@case
def adapt_onto_its_reference(t, base, mp):
    # long enough to adapt to: only the check keeps the motion
    assert main(["motion", "demo", "--out", str(t / "ref.npz"), "--seconds", "2.5"]) == 0
    return ["adapt", "--reference", "ref.npz", "--out", "ref.npz"]


@case
def serve_on_an_address_that_is_not_one(t, base, mp):
    return ["serve", "--host", "999.1.1.1"]


@case
def speech_of_nan_samples(t, base, mp):
    sf.write(t / "nan.wav", np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    return ["animate", "--audio", "nan.wav", "--out", "out.npz"]


@case
def speech_that_is_dev_zero(t, base, mp):
    return ["animate", "--audio", "/dev/zero", "--out", "out.npz"]


@case
def demo_into_a_folder_of_the_users_files(t, base, mp):
    (t / "mine").mkdir()
    (t / "mine" / "thesis.tex").write_text("keep me")
    return ["demo", "--out", "mine"]


@case
def track_into_a_folder_of_the_users_files(t, base, mp):
    (t / "mine").mkdir()
    (t / "mine" / "holiday.mov").write_bytes(b"not tracked")
    return ["track", str(base / "m.wav"), "--out", "mine"]


@case
def output_name_that_is_not_utf8(t, base, mp):
    return ["motion", "demo", "--out", os.fsdecode(b"\xfc.npz"), "--seconds", "0.4"]


@case
def render_onto_a_recording_by_a_slip(t, base, mp):
    (t / "speech.wav").write_bytes((base / "m.wav").read_bytes())  # someone's recording, not an input here
    return ["render", motion(t, base), "--out", "speech.wav", "--size", "64"]


@case
def export_glb_onto_a_recording_by_a_slip(t, base, mp):
    (t / "speech.wav").write_bytes((base / "m.wav").read_bytes())
    return ["export", motion(t, base), "--format", "glb", "--out", "speech.wav"]


@case
def output_name_that_is_empty(t, base, mp):
    return ["motion", "demo", "--out", ""]


@case
def render_onto_its_motion(t, base, mp):
    return ["render", motion(t, base), "--out", "m.npz", "--size", "64"]


@case
def render_onto_its_audio(t, base, mp):
    return ["render", motion(t, base), "--audio", "m.wav", "--out", "m.wav", "--size", "64"]


@case
def export_onto_its_motion(t, base, mp):
    return ["export", motion(t, base), "--format", "npz", "--rig", "builtin", "--out", "m.npz"]


@case
def animate_rendering_onto_its_audio(t, base, mp):
    return animate(t, base, "--render", "m.wav")


@case
def animate_rendering_onto_its_motion(t, base, mp):
    return animate(t, base, "--render", "out.npz")


@case
def motion_demo_beside_a_recording_it_did_not_write(t, base, mp):
    (t / "talk.wav").write_bytes(b"someone's recording")
    return ["motion", "demo", "--out", "talk.npz", "--seconds", "0.4"]


@case
def track_a_video_without_a_face(t, base, mp):
    pytest.importorskip("mediapipe", reason="face tracking needs mediapipe (make install)")
    from adamesh.render.video import write_video

    write_video(
        t / "grey.mp4",
        iter([np.full((128, 128, 3), 128, np.uint8)] * 10),
        10,
        25.0,
        audio=str(base / "m.wav"),
        progress=False,
    )
    return ["track", "grey.mp4", "--out", "clip", "--no-overlay"]


@case
def a_file_where_the_cache_folder_should_be(t, base, mp):
    (t / "cache").write_text("not a folder")
    mp.setenv("ADAMESH_CACHE", str(t / "cache"))
    return train(clip_folder(t, 2), "model", "--epochs", "1")


@case
def bench_people_on_a_missing_folder(t, base, mp):
    return ["bench", "people", "--videos", "nowhere", "--out", "results"]


# --------------------------------------------------------------------------- damaged or odd inputs


@case
def motion_with_text_for_fps(t, base, mp):
    return render(raw_motion(t / "text.npz", fps="fast"))


@case
def motion_with_text_for_version(t, base, mp):
    return render(raw_motion(t / "text.npz", version="one"))


@case
def motion_with_nan(t, base, mp):
    params = np.zeros((5, ARKIT.dim), np.float32)
    params[2, ARKIT.channels.index("jawOpen")] = np.nan
    return render(raw_motion(t / "nan.npz", params=params))


@case
def motion_of_zero_frames(t, base, mp):
    return render(raw_motion(t / "empty.npz", params=np.zeros((0, ARKIT.dim), np.float32)))


@case
def motion_of_random_bytes(t, base, mp):
    (t / "corrupt.npz").write_bytes(np.random.default_rng(1).bytes(2000))
    return ["motion", "info", "corrupt.npz"]


@case
def motion_that_does_not_exist(t, base, mp):
    return render("missing.npz")


@case
def motion_of_one_space_on_a_rig_of_another(t, base, mp):
    return render(
        raw_motion(
            t / "flame.npz",
            space="flame",
            channels=np.array(FLAME.channels),
            params=np.zeros((5, FLAME.dim), np.float32),
        ),
        "--rig",
        "builtin",
    )


@case
def audio_at_1_hz(t, base, mp):
    sf.write(t / "one_hz.wav", np.zeros(4, np.float32), 1)
    return ["animate", "--audio", "one_hz.wav", "--out", "out.npz"]


@case
def audio_of_zero_bytes(t, base, mp):
    (t / "empty.wav").write_bytes(b"")
    return ["animate", "--audio", "empty.wav", "--out", "out.npz"]


@case
def audio_truncated(t, base, mp):
    sf.write(t / "speech.flac", np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000)
    (t / "cut.flac").write_bytes((t / "speech.flac").read_bytes()[:3000])
    return ["animate", "--audio", "cut.flac", "--out", "out.npz"]


@case
def training_folder_of_one_clip(t, base, mp):
    return train(clip_folder(t, 1), "model", "--epochs", "1")


@case
def unknown_rig(t, base, mp):
    return render(motion(t, base), "--rig", "foo")


@case
def corrupt_ict_rig_file(t, base, mp):
    (t / "rig.npz").write_bytes(b"\x00garbage, not a zip\xff" * 50)
    return render(motion(t, base), "--rig", "ict:rig.npz")


# --------------------------------------------------------------------------- arguments, refused before any work

ARGUMENTS = {
    "seconds_nan": ["motion", "demo", "--out", "m.npz", "--seconds", "nan"],
    "fps_zero": ["motion", "demo", "--out", "m.npz", "--fps", "0"],
    "antialias_negative": ["render", "m.npz", "--out", "x.mp4", "--antialias", "-1"],
    "size_in_words": ["render", "m.npz", "--out", "x.mp4", "--size", "ten"],
    "size_zero": ["render", "m.npz", "--out", "x.mp4", "--size", "0"],
    "seed_negative": ["animate", "--audio", "a.wav", "--out", "a.npz", "--seed", "-1"],
    "temperature_inf": ["animate", "--audio", "a.wav", "--out", "a.npz", "--temperature", "inf"],
    "epochs_negative": ["train", "expression", "--data", "d", "--out", "o", "--epochs", "-3"],
    "lr_nan": ["train", "expression", "--data", "d", "--out", "o", "--lr", "nan"],
    "batch_size_zero": ["train", "expression", "--data", "d", "--out", "o", "--batch-size", "0"],
    "workers_negative": ["corpus", "--out", "c", "--workers", "-1"],
    # found by tools/fuzz.py: 10^20 workers started processes until the machine ran out
    "workers_huge": ["bench", "frontends", "--workers", "99999999999999999999"],
    "workers_huge_corpus": ["corpus", "--out", "c", "--workers", "100000"],
    # found by tools/fuzz.py as internal errors (a parse error, an allocation that failed)
    "lengths_not_numbers": ["bench", "expression", "--lengths", "folder"],
    "codebooks_nan": ["bench", "pose", "--codebooks", "nan"],
    "frames_huge": ["bench", "render", "--frames", "99999999999999999999"],
    "batch_size_huge": ["train", "pose", "--data", "d", "--out", "o", "--batch-size", "99999999999999999999"],
    "speakers_huge": ["corpus", "--out", "c", "--speakers", "99999999999999999999"],
    "sentences_huge": ["corpus", "--out", "c", "--sentences", "99999999999999999999"],
    "frames_zero": ["bench", "render", "--frames", "0"],
    "audio_missing": ["animate", "--out", "a.npz"],
    "unknown_format": ["export", "m.npz", "--format", "fbx", "--out", "x.fbx"],
    "unknown_command": ["paint", "m.npz"],
}
for _name, _args in ARGUMENTS.items():
    CASES[f"argument_{_name}"] = lambda t, base, mp, _args=_args: _args


# --------------------------------------------------------------------------- the test

PROGRESS = re.compile(r"^[\w .-]*:\s+\d+%\|")  # a tqdm bar


def snapshot(folder: Path) -> dict:
    """Every entry under `folder`: its kind and, for files, a hash of the bytes; links by target."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                out[str(path.relative_to(folder))] = ("link", os.readlink(path))
            elif stat.S_ISREG(mode):
                out[str(path.relative_to(folder))] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                out[str(path.relative_to(folder))] = (stat.S_IFMT(mode), None)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input(name, base, request, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    build = CASES[name]
    extra = [request.getfixturevalue("run")] if "run" in inspect.signature(build).parameters else []
    args = build(tmp_path, base, monkeypatch, *extra)
    before = snapshot(tmp_path)
    capsys.readouterr()
    rc = main(args)
    err = capsys.readouterr().err
    lines = [line for line in re.split(r"[\r\n]", err) if line.strip() and not PROGRESS.match(line)]
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("adamesh: error: "), (rc, err)
    assert not (tmp_path / MARKER).exists(), "a pickle payload ran"
    assert snapshot(tmp_path) == before
