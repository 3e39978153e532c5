"""Data-parallel training under torchrun (or any launcher that sets RANK/WORLD_SIZE).

``torchrun --nproc-per-node N --no-python vid2reid train ...`` starts N processes; each reads
its place from the environment (:func:`from_env`). :func:`init` joins them in one process
group: NCCL when training on GPUs (one per process, ``cuda:LOCAL_RANK``), gloo on CPU.
vid2reid.train then computes the pseudo-labels once per epoch on rank 0 and shares them with
:func:`broadcast`, splits every global batch among the processes, averages the gradients
with DistributedDataParallel, and lets rank 0 alone write the run folder.
"""

from __future__ import annotations

import datetime
import io
import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from vid2reid.errors import ConfigError

TIMEOUT_S = 3600  # how long a rank waits for the others (rank 0 clusters while they wait)


@dataclass(frozen=True)
class Dist:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """More than one process trains together."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """This process writes the run folder."""
        return self.rank == 0


def from_env(env: dict[str, str] | None = None) -> Dist:
    """RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them; one process when unset."""
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1") or 1)
        rank = int(env.get("RANK", "0") or 0)
        local = int(env.get("LOCAL_RANK", str(rank)) or 0)
    except ValueError:
        raise ConfigError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers, got "
                          f"{env.get('RANK')!r}/{env.get('WORLD_SIZE')!r}/"
                          f"{env.get('LOCAL_RANK')!r}") from None
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK {rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE {world})")
    return Dist(rank, world, local)


def init(dist: Dist, device: torch.device) -> tuple[torch.device, bool]:
    """Join the process group (NCCL for CUDA, else gloo) and pick this rank's device.

    Returns the device (``cuda:LOCAL_RANK`` for a CUDA run) and whether this call created
    the group (then :func:`shutdown` should end it). One process: nothing to do.
    """
    if not dist.active:
        return device, False
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if tdist.is_initialized():
        return device, False
    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        raise ConfigError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set; start "
                          "the processes with torchrun")
    tdist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                             timeout=datetime.timedelta(seconds=TIMEOUT_S))
    return device, True


def shutdown(created: bool) -> None:
    """End the process group if :func:`init` created it."""
    if created and tdist.is_initialized():
        tdist.destroy_process_group()


def broadcast(obj: object, dist: Dist, device: torch.device | str = "cpu") -> object:
    """Rank 0's ``obj`` on every rank (any picklable object; tensors land on ``device``).

    Serialized with ``torch.save`` so that tensors inside (an epoch's plan) are loaded onto
    this rank's own device, not rank 0's.
    """
    if not dist.active:
        return obj
    box: list = [None]
    if dist.main:
        buf = io.BytesIO()
        torch.save(obj, buf)
        box[0] = buf.getvalue()
    tdist.broadcast_object_list(box, src=0)
    if dist.main:
        return obj
    return torch.load(io.BytesIO(box[0]), map_location=device, weights_only=False)


def all_sum(values: list[float], dist: Dist, device: torch.device | str = "cpu") -> list[float]:
    """Element-wise sums of ``values`` over all ranks."""
    if not dist.active:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    tdist.all_reduce(t)
    return [float(v) for v in t.cpu()]


def batch_share(idx, dist: Dist):
    """This rank's part of one global batch ``idx`` and its share of the batch.

    The parts partition the batch (sizes differ by at most one); a batch smaller than the
    number of processes is given whole to every rank (share 1/world), so that every rank
    always has windows to train on.
    """
    import numpy as np

    if not dist.active:
        return idx, 1.0
    if len(idx) < dist.world:
        return idx, 1.0 / dist.world
    mine = np.array_split(idx, dist.world)[dist.rank]
    return mine, len(mine) / len(idx)
