"""Who am I in the job: rank discovery for torchrun, srun and submitit, and the process group.

Order (design §5): torchrun's RANK / LOCAL_RANK / WORLD_SIZE, else (inside an srun step) Slurm's SLURM_PROCID /
SLURM_LOCALID / SLURM_STEP_NUM_TASKS with the node from SLURM_NODEID and the master address from the first host
of the job's node list, else a single process. The public baseline took RANK from SLURM_LOCALID, which is
wrong on more than one node.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ego4d_lta.base.errors import UserError


@dataclass(frozen=True)
class WorldInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    node: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    launcher: str = "single"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        host = os.environ.get("SLURMD_NODENAME") or socket.gethostname()  # Slurm's node name (virtual nodes too)
        return f"rank {self.rank}/{self.world_size} local {self.local_rank} node {self.node} host {host}"


def job_hosts(nodelist: str) -> list[str]:
    """A Slurm node list expanded as `scontrol show hostnames` does: `r6i[3-4]n[0-1]` -> r6i3n0 r6i3n1 r6i4n0 ...

    By submitit's public `SlurmJobEnvironment.hostnames` (submitit is a dependency already, used by `launch`; its
    `helpers.TorchDistributedEnvironment` takes the master address from the same property), which reads
    SLURM_JOB_NODELIST: set to `nodelist` for the call. It handles several bracket groups in one name, suffixes
    after a bracket and zero padding; `scontrol` is not on every node and refuses a suffix after a bracket.
    """
    from submitit.slurm.slurm import SlurmJobEnvironment, SlurmParseException

    nodelist, hosts = nodelist.strip(), []
    if nodelist:  # an empty list would give this machine's name
        with _environ("SLURM_JOB_NODELIST", nodelist):
            try:
                hosts = list(SlurmJobEnvironment().hostnames)
            except SlurmParseException:
                hosts = []
    if not hosts or not all(hosts):
        raise UserError(f"SLURM_JOB_NODELIST={nodelist!r}: not a Slurm node list (e.g. gpu[01-04],cpu1)")
    return hosts


@contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """`os.environ[name]` is `value` inside the block and as it was after it."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list (the master address): `gpu[003-005,9],cpu1` -> `gpu003`."""
    return job_hosts(nodelist)[0]


def world_info_from_env(env: Mapping[str, str] | None = None) -> WorldInfo:
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return WorldInfo(
            rank=int(env["RANK"]),
            local_rank=int(env.get("LOCAL_RANK", 0)),
            world_size=int(env["WORLD_SIZE"]),
            node=int(env.get("GROUP_RANK", env.get("SLURM_NODEID", 0))),
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(env.get("MASTER_PORT", 29500)),
            launcher="torchrun",
        )
    if "SLURM_PROCID" in env and "SLURM_STEP_NUM_TASKS" in env:  # a task of an srun step (not the batch script)
        job = int(env.get("SLURM_JOB_ID", "0") or 0)
        nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or "127.0.0.1"
        return WorldInfo(
            rank=int(env["SLURM_PROCID"]),
            local_rank=int(env.get("SLURM_LOCALID", 0)),
            world_size=int(env["SLURM_STEP_NUM_TASKS"]),
            node=int(env.get("SLURM_NODEID", 0)),
            master_addr=env.get("MASTER_ADDR") or first_host(nodelist),
            master_port=int(env.get("MASTER_PORT") or 20000 + job % 20000),
            launcher="slurm",
        )
    return WorldInfo()


def setup(info: WorldInfo, device: torch.device) -> None:
    """Join the process group (NCCL for GPU tensors, gloo for CPU ones); nothing for a single process."""
    if device.type == "cuda":
        torch.cuda.set_device(device)  # object collectives use the current device
    if info.world_size == 1 or dist.is_initialized():
        return
    os.environ.setdefault("MASTER_ADDR", info.master_addr)
    os.environ.setdefault("MASTER_PORT", str(info.master_port))
    backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=info.rank, world_size=info.world_size)


def device_for(info: WorldInfo, name: str = "auto") -> torch.device:
    """This process's device: its local GPU when there are GPUs (and `name` allows), else the CPU."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if name not in ("auto", "cuda") and not name.startswith("cuda:"):
        raise UserError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine")
    if name.startswith("cuda:"):
        return torch.device(name)
    return torch.device("cuda", info.local_rank % torch.cuda.device_count())


def all_gather_objects(obj: object) -> list[object]:
    """Every process's `obj`, in rank order (just `[obj]` without a process group)."""
    if not dist.is_initialized():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: object) -> object:
    """Rank 0's `obj` on every process."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
