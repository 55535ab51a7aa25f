"""Shared fixtures. Tests that need the development data (../shared/data beside the checkout, or
$ADAMESH_DATA) skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(os.environ.get("ADAMESH_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
os.environ["ADAMESH_DATA"] = str(DATA)  # the benchmarks' default folders, for commands run here
ICT_SOURCE = DATA / "ict-facekit"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache: each test session gets its own."""
    monkeypatch.setenv("ADAMESH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def ict_file(tmp_path_factory) -> Path:
    """The ICT-FaceKit rig imported once per session from ../shared/data/ict-facekit."""
    if not (ICT_SOURCE / "FaceXModel" / "generic_neutral_mesh.obj").is_file():
        pytest.skip(f"ICT-FaceKit not found at {ICT_SOURCE} (../shared/data is absent)")
    from adamesh.rigs.ict import install_ict

    return install_ict(ICT_SOURCE, tmp_path_factory.mktemp("ict") / "ict-facekit.npz")


@pytest.fixture(scope="session")
def ict_rig(ict_file):
    from adamesh.rigs.ict import load_ict

    return load_ict(ict_file)


@pytest.fixture(scope="session")
def builtin():
    from adamesh.rigs import load_rig

    return load_rig("builtin")


SMALL_CORPUS = dict(speakers=4, sentences=6, heldout=1, reference_seconds=6.0)  # spk003 is held out


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """A 4-speaker corpus (3 training speakers, 1 held out) shared by the model tests."""
    from adamesh.data.synthetic.corpus import CorpusConfig, generate_corpus

    out = tmp_path_factory.mktemp("corpus")
    generate_corpus(out, CorpusConfig(**SMALL_CORPUS), workers=2, progress=False)
    return out


# Tests over 10 s on 2 cores (pytest --durations): `make test` leaves them out, `make test-all` runs them.
SLOW = {
    "test_expression.py::test_training_killed_by_a_signal_resumes_where_an_unstopped_run_ends",
    "test_hostile.py::test_hostile_input[gltf_of_300k_nodes]",
    "test_hostile.py::test_hostile_input[gltf_node_chain_200k_deep]",
    "test_tracking.py::test_bench_video_on_two_grid_clips",
    "test_bench_people.py::test_bench_people_end_to_end",
    "test_api.py::test_cli_adapt_animate_and_bad_inputs",
    "test_gltf_rig.py::test_files_with_too_many_nodes_are_refused_at_once",
    "test_api.py::test_reference_length_rules",
    "test_pose.py::test_bench_pose_table",
    "test_expression.py::test_bench_expression_table",
    "test_distributed.py::test_torchrun_trains_on_two_cpu_processes_and_only_rank_0_writes",
    *(
        f"test_avatar.py::test_a_third_party_avatar_comes_back_whole_with_the_speech_on_it[{a}]"
        for a in ("rpm_brunette-Head", "vroid_perfect_sync-Head", "facecap-grp_transform")
    ),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.split("/")[-1] in SLOW:
            item.add_marker(pytest.mark.slow)
