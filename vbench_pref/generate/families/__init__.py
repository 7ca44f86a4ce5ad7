"""Pipeline families, one module each; ``family_of`` finds the one a loaded pipeline belongs to."""

from __future__ import annotations

from typing import Any

from vbench_pref.errors import VbenchPrefError
from vbench_pref.generate.families import animatediff, cogvideox, unet3d, wan
from vbench_pref.generate.families.base import GenerationSettings, ModelFamily

FAMILIES: dict[str, ModelFamily] = {
    family.name: family for family in (wan.FAMILY, cogvideox.FAMILY, unet3d.FAMILY, animatediff.FAMILY)
}


def family_named(pipeline_class: str) -> ModelFamily | None:
    """The family a pipeline class name (as in model_index.json's ``_class_name``) belongs to, if any."""
    return next((family for family in FAMILIES.values() if pipeline_class in family.pipelines), None)


def family_of(pipeline: Any) -> ModelFamily:
    """The family of a loaded pipeline, by its class; an unsupported class is a one-line error."""
    name = type(pipeline).__name__
    family = family_named(name)
    if family is not None:
        return family
    supported = ", ".join(p for f in FAMILIES.values() for p in f.pipelines)
    raise VbenchPrefError(f"{name} is not a supported video pipeline (supported: {supported})")


__all__ = ["FAMILIES", "GenerationSettings", "ModelFamily", "family_named", "family_of"]
