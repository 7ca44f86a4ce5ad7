"""RAFT plumbing shared by the flow-based evaluators: options, weights, loading and batched pair flows."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterator, Sequence

import torch

from vbench_pref.errors import ScoreError
from vbench_pref.evaluator import Evaluator, SharedModels
from vbench_pref.flow import (
    build_raft,
    check_raft_config,
    flow_between,
    raft_input_size,
    raft_missing_weights,
    raft_weight_spec,
    to_raft_frames,
)

PairFlows = tuple[list[tuple[int, int]], torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"]


class RaftEvaluator(Evaluator):
    """Base of evaluators that run torchvision RAFT on consecutive frame pairs (options: raft_options)."""

    weights = (raft_weight_spec("raft_large"),)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        check_raft_config(self.name, self.config)
        self._model: torch.nn.Module | None = None
        self._provenance: dict[str, Any] | None = None

    @property
    def uses_random_weights(self) -> bool:
        return self.config["weights"] == "random"

    def missing_weights(self) -> str | None:
        return raft_missing_weights(self.config["model"], self.config["weights"], self.name)

    def load(
        self,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        shared: SharedModels | None = None,
    ) -> None:
        super().load(device, dtype, shared)
        self._model, self._provenance = build_raft(self.config["model"], self.config["weights"], self.name)

    def device_models(self) -> tuple[Any, ...]:
        return (self._model,)

    def weight_provenance(self) -> list[dict[str, Any]]:
        return [dict(self._provenance)] if self._provenance else []

    def pair_flows(
        self, videos: Sequence[str], clips: Sequence[torch.Tensor], backward: bool
    ) -> Iterator[PairFlows]:
        """RAFT flow of every consecutive pair of every clip, in mini-batches of ``pair_batch`` pairs.

        Pairs of equal RAFT input size share forward passes, whichever video they come from. Yields
        ``(pairs, a, b, forward, backward_or_None)`` with ``pairs`` the (clip index, t) of each row and
        ``a``/``b`` the RAFT-sized frames t and t+1 in [0, 1].
        """
        if self._model is None:
            raise RuntimeError(f"{self.name}: call load() before score()")
        max_side = int(self.config["max_side"])
        groups: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        for i, (video, frames) in enumerate(zip(videos, clips)):
            n = int(frames.shape[0])
            if n < 2:
                raise ScoreError(f"{self.name}: needs at least 2 frames, {video} has {n}")
            size = raft_input_size(int(frames.shape[1]), int(frames.shape[2]), max_side)
            groups[size].extend((i, t) for t in range(n - 1))
        step = int(self.config["pair_batch"])
        iters = int(self.config["iters"])
        for size, pairs in groups.items():
            for start in range(0, len(pairs), step):
                chunk = pairs[start : start + step]
                two = [to_raft_frames(clips[i][t : t + 2].to(self.device), size) for i, t in chunk]
                a = torch.stack([c[0] for c in two])
                b = torch.stack([c[1] for c in two])
                if backward:  # one pass gives both directions
                    flows = flow_between(self._model, torch.cat([a, b]), torch.cat([b, a]), iters)
                    yield chunk, a, b, flows[: len(chunk)], flows[len(chunk) :]
                else:
                    yield chunk, a, b, flow_between(self._model, a, b, iters), None
