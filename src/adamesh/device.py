"""Where the networks run: `--device auto|cpu|cuda`, and under torchrun each process its own GPU."""

from __future__ import annotations

import contextlib
import os

import torch

from adamesh.errors import AdameshError

DEVICES = ("auto", "cpu", "cuda")


@contextlib.contextmanager
def single_thread():
    """PyTorch on one CPU thread inside the block, the caller's count put back after it. For work
    done in many small steps (PoseGPT's codes, a stream's steps): waking a second thread for every
    small matrix costs more than it saves (animation on 2 cores: 23x real time with two threads
    for PoseGPT, 47x with one; docs/numbers.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def resolve_device(spec: str = "auto") -> torch.device:
    """auto: the process's CUDA GPU if PyTorch sees one, else the CPU. Under torchrun the GPU is the
    one of the process's LOCAL_RANK."""
    if spec not in DEVICES:
        raise AdameshError(f"unknown device {spec!r}; choose one of {', '.join(DEVICES)}")
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise AdameshError(
            "--device cuda: PyTorch sees no CUDA GPU here (a CPU build of torch, or no "
            "driver); use --device cpu"
        )
    index = int(os.environ.get("LOCAL_RANK", "0"))
    if index >= torch.cuda.device_count():
        raise AdameshError(
            f"process {index} of torchrun has no GPU of its own ({torch.cuda.device_count()} "
            "visible); start at most one process per GPU"
        )
    return torch.device("cuda", index)


def start_distributed(device: torch.device) -> bool:
    """Join the process group when launched by torchrun (NCCL between GPUs, gloo between CPU
    processes); returns whether training is distributed."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True
