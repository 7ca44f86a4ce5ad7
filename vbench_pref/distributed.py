"""Several processes (``torchrun`` or ``accelerate launch``): who am I, and wait for the others.

Both launchers set RANK, WORLD_SIZE and LOCAL_RANK; the process group is initialised from them (NCCL on
GPUs, gloo on the CPU) only when there is more than one process, so a plain run needs none of this.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch

from vbench_pref.errors import VbenchPrefError


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def device(self, requested: str) -> str:
        """Each process takes its own GPU: ``cuda``/``auto`` become ``cuda:LOCAL_RANK``."""
        if self.distributed and requested in ("cuda", "auto") and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return requested

    def barrier(self) -> None:
        if not self.distributed:
            return
        import torch.distributed as dist

        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[self.local_rank])
        else:
            dist.barrier()

    def all_ok(self, ok: bool) -> bool:
        """True when every process says ok: a failure on one rank stops all of them, not just itself."""
        if not self.distributed:
            return ok
        import torch.distributed as dist

        flag = torch.tensor([0 if ok else 1], device=self._collective_device())
        dist.all_reduce(flag)
        return int(flag.item()) == 0

    def check_shared(self, folder: Path, what: str = "the output folder") -> None:
        """Refuse a folder that is not the same folder for every process (a node-local disk, or a relative
        path launched from different directories): each process would see only its own files, and the main
        process would merge a part of the work as if it were all of it."""
        if not self.distributed:
            return
        import torch.distributed as dist

        nonce = torch.tensor([secrets.randbits(62) if self.is_main else 0], device=self._collective_device())
        dist.broadcast(nonce, src=0)
        probe = Path(folder) / f".shared-check-{int(nonce.item()):x}"
        if self.is_main:
            probe.write_text(str(self.world), encoding="utf-8")
        self.barrier()
        seen = probe.is_file()
        everyone = self.all_ok(seen)
        if self.is_main:
            probe.unlink(missing_ok=True)
        if not everyone:
            raise VbenchPrefError(
                f"{what} {folder} is not one folder that every process sees: put it on a filesystem that every "
                "node mounts at the same path (a relative path is taken from each node's working directory)"
            )

    def _collective_device(self) -> torch.device:
        import torch.distributed as dist

        return torch.device(f"cuda:{self.local_rank}") if dist.get_backend() == "nccl" else torch.device("cpu")


def processes() -> Processes:
    """This process's place among the launched ones, initialising the process group on first call."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes()
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_nccl = torch.cuda.is_available() and dist.is_nccl_available()
        if use_nccl:
            torch.cuda.set_device(local_rank)
        # generation of a big batch can keep one rank busy long after another reached the barrier
        dist.init_process_group("nccl" if use_nccl else "gloo", timeout=timedelta(hours=2))
    return Processes(rank, world, local_rank)
