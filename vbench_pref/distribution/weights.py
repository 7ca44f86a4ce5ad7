"""Manifest entries of the FVD feature networks' published checkpoints.

* ``i3d_pretrained_400.pt``: the Kinetics-400 I3D of Google's FVD (the tf.hub ``deepmind/i3d-kinetics-400``
  module) converted to a PyTorch state dict by VideoGPT's / TATS's ``convert_tf_pretrained.py``; the file
  cd-fvd downloads (``songweige/TATS``, ``tats/fvd/i3d_pretrained_400.pt``, ~49 MB). TATS is under the MIT
  licence; the tf.hub module it was converted from is under Apache 2.0. No sha256 of the file is published,
  so it is used unverified with its digest recorded.
* ``vit_g_hybrid_pt_1200e_ssv2_ft.pth``: VideoMAE-v2 ViT-g fine-tuned on Something-Something v2, the
  content-debiased FVD network of cd-fvd, from the Hugging Face repo ``OpenGVLab/InternVideoMAE_models``
  (checked against the hub's LFS sha256). The VideoMAE-v2 code is under the MIT licence; its authors hand
  out the weights through a request form for research use, which the entry asks the user to accept.
"""

from __future__ import annotations

from vbench_pref.weights import WeightSpec

I3D_LICENCE = "MIT (songweige/TATS); converted from the Apache-2.0 tf.hub deepmind/i3d-kinetics-400 module"
VIDEOMAE_LICENCE = "VideoMAE V2 weights: research use (OpenGVLab download terms); code MIT"
VIDEOMAE_ACCEPT = f"{VIDEOMAE_LICENCE}, https://github.com/OpenGVLab/VideoMAEv2/blob/master/docs/MODEL_ZOO.md"

I3D_WEIGHTS = WeightSpec(
    name="i3d-kinetics400-weights",
    source="https://github.com/songweige/TATS/raw/main/tats/fvd/i3d_pretrained_400.pt",
    filename="i3d_pretrained_400.pt",
    sha256=None,
    licence=I3D_LICENCE,
    env_var="VBENCH_PREF_I3D_WEIGHTS",
    description="Kinetics-400 I3D of FVD (tf.hub i3d-kinetics-400 as a PyTorch state dict, as cd-fvd loads it)",
)
VIDEOMAE_WEIGHTS = WeightSpec(
    name="videomae-v2-g-ssv2-weights",
    source="hf://OpenGVLab/InternVideoMAE_models",
    filename="mae-g/vit_g_hybrid_pt_1200e_ssv2_ft.pth",
    sha256=None,  # checked against the hub's LFS sha256 at download
    licence=VIDEOMAE_LICENCE,
    env_var="VBENCH_PREF_VIDEOMAE_WEIGHTS",
    description="VideoMAE-v2 ViT-g/14 fine-tuned on SSv2: content-debiased FVD features (cd-fvd)",
    accept_licence=VIDEOMAE_ACCEPT,
)

ALL_WEIGHTS = (I3D_WEIGHTS, VIDEOMAE_WEIGHTS)
