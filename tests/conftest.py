"""Shared fixtures. Tests that need ../shared/data skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("ADAMESH_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
ICT_SOURCE = SHARED / "data" / "ict-facekit"


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
    from adamesh.data.corpus import CorpusConfig, generate_corpus

    out = tmp_path_factory.mktemp("corpus")
    generate_corpus(out, CorpusConfig(**SMALL_CORPUS), workers=2, progress=False)
    return out
