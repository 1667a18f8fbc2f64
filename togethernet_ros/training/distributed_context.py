"""torchrun / DistributedDataParallel set-up (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, validates and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when running under torchrun with more than one process."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (no-op when single-process)."""
        if self.distributed:
            dist.barrier()


class DeviceSetupError(ValueError):
    """The configured device cannot run this process (no GPU, too few GPUs, a bad name)."""


def resolve_device(name: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; a bad name or a missing GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise DeviceSetupError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceSetupError(f"device {name!r} requested but no CUDA GPU is available")
    return device


def init_distributed(device_name: str = "auto") -> DistributedContext:
    """Join the torchrun process group when WORLD_SIZE > 1; otherwise a single-process context.

    Under torchrun each process uses GPU ``LOCAL_RANK`` (the index in ``device`` is ignored).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        index = local_rank if world_size > 1 else (device.index or 0)
        visible = torch.cuda.device_count()
        if index >= visible:
            # torch would only say "invalid device ordinal" from deep inside CUDA.
            if world_size > 1:
                raise DeviceSetupError(
                    f"process {rank} (local rank {local_rank}) needs GPU {index} but "
                    f"{visible} GPU(s) are visible: start at most {visible} processes per "
                    "node (torchrun --nproc_per_node) or set device=cpu"
                )
            raise DeviceSetupError(
                f"device {device_name!r} requested but {visible} GPU(s) are visible"
            )
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, local_rank, device)


def shutdown_distributed() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
