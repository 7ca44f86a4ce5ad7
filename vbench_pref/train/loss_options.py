"""The loss family's names and hyper-parameters, without torch: the CLI builds its options from these."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

# the keys of vbench_pref.train.losses.LOSSES, in order (checked there)
LOSS_NAMES = ("sft", "dpo", "videodpo", "pgdpo", "pgdpo-ars", "pgdpo-ipr", "ipo", "slic", "dpop", "dpo-cm", "sdpo")


@dataclass(frozen=True)
class LossOptions:
    """Hyper-parameters of the loss family (defaults: the PG-DPO paper's, where it gives one)."""

    beta: float = 100.0
    k1: float = 10.0
    k2: float = 10.0
    eps: float = 1e-6
    ipr: str = "reward"
    detach_weights: bool = True
    videodpo_exponent: float = 0.0
    slic_delta: float = 1.0
    slic_sft_weight: float = 0.0
    slic_margin: str = "policy"
    dpop_lambda: float = 50.0
    cm_mask_below: float = 0.1
    cm_clip: float = 1.0
    sdpo_clip_min: float = 0.0
    sdpo_clip_max: float = 1.0

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        if self.eps <= 0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        if self.ipr not in IPR_MODES:
            raise ValueError(f"ipr must be one of {', '.join(IPR_MODES)}, got {self.ipr!r}")
        if self.slic_margin not in SLIC_MARGINS:
            raise ValueError(f"slic_margin must be one of {', '.join(SLIC_MARGINS)}, got {self.slic_margin!r}")
        if self.cm_clip <= 0:
            raise ValueError(f"cm_clip must be positive, got {self.cm_clip}")
        if not 0 <= self.sdpo_clip_min <= self.sdpo_clip_max:
            raise ValueError(
                f"need 0 <= sdpo_clip_min <= sdpo_clip_max, got {self.sdpo_clip_min} and {self.sdpo_clip_max}"
            )

    def with_overrides(self, **overrides: object) -> "LossOptions":
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in overrides.items() if k in known and v is not None})


IPR_MODES = ("reward", "anchor")
SLIC_MARGINS = ("policy", "reference")
