"""Training under torchrun: two CPU processes (gloo), the data split between them, one writer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from adamesh.models.checkpoint import load_model

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this python")
def test_torchrun_trains_on_two_cpu_processes_and_only_rank_0_writes(small_corpus, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        str(TORCHRUN),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "adamesh",
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
        "2",
        "--workers",
        "1",
        "--device",
        "cpu",
    ]
    run = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
    )
    text = run.stdout + run.stderr
    assert run.returncode == 0, text[-3000:]
    # both processes ran the loop, each on its share of the windows
    batches = {}
    for rank in (0, 1):  # the two processes' output can share a line
        found = re.search(rf"rank {rank} of 2: (\d+) batches an epoch", text)
        assert found, text[-3000:]
        batches[rank] = int(found.group(1))
    assert batches[0] == batches[1] > 0
    # one writer: every epoch logged once, no leftover partial files
    epochs = [line.split()[1] for line in (out / "log.txt").read_text().splitlines()]
    assert epochs == ["1", "2"]
    assert not [
        p.name
        for p in out.iterdir()
        if ".partial" in p.name or p.name.startswith(".") and p.name != ".adamesh-output"
    ]
    model, frontend, config = load_model(out)
    assert config["kind"] == "expression"
    feats = torch.from_numpy(np.random.default_rng(0).normal(size=(40, frontend.dim)).astype(np.float32))
    assert torch.isfinite(model.predict(feats)).all()
