"""One training spec per generation family; ``training_spec`` picks the one for a loaded model."""

from __future__ import annotations

from vbench_pref.errors import VbenchPrefError
from vbench_pref.generate.models import LoadedModel
from vbench_pref.train.models import animatediff, cogvideox, unet3d, wan
from vbench_pref.train.models.base import Conditions, NoisedLatents, TrainingSpec

SPECS: dict[str, TrainingSpec] = {
    spec.family: spec for spec in (wan.SPEC, cogvideox.SPEC, unet3d.SPEC, animatediff.SPEC)
}


def training_spec(loaded: LoadedModel) -> TrainingSpec:
    """The spec of ``loaded``'s family; image-to-video pipelines and families without one are refused."""
    if loaded.image_to_video:
        raise VbenchPrefError(
            "training image-to-video models is not supported yet; use the text-to-video pipeline of the family"
        )
    spec = SPECS.get(loaded.family.name)
    if spec is None:
        raise VbenchPrefError(
            f"training {loaded.family.name} models is not supported (trainable families: {', '.join(SPECS)})"
        )
    return spec


__all__ = ["SPECS", "Conditions", "NoisedLatents", "TrainingSpec", "training_spec"]
