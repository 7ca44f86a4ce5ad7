"""Manifest entries of the official DOVER and FAST-VQA / FasterVQA checkpoints.

Licences. DOVER's repository (VQAssessment/DOVER, formerly QualityAssessment/DOVER, where the checkpoints
are released) is under the S-Lab License 1.0: redistribution and use for non-commercial purposes only; its
Hugging Face copy (teowu/DOVER) is tagged MIT, which the repository's licence does not grant, so the DOVER
files are treated as non-commercial and downloading them asks the user to accept that licence.
FAST-VQA / FasterVQA's repository (VQAssessment/FAST-VQA-and-FasterVQA, formerly TimothyHTimothy/FAST-VQA)
is under the MIT License, and its release files carry no other terms.

Hashes. DOVER.pth's sha256 is the one ladaapp/lada pins for the same GitHub release URL
(``model_weights/checksums_sha256.txt``, commit 28db131); no published digest was found for the other
files, so they are checked against the hub's sha256 (DOVER++) or used unverified with their sha256 recorded
in run.json. Sizes are not pinned for the same reason.
"""

from __future__ import annotations

from vbench_pref.weights import WeightSpec

S_LAB_LICENCE = "S-Lab License 1.0 (non-commercial)"
S_LAB_ACCEPT = f"{S_LAB_LICENCE}, https://github.com/VQAssessment/DOVER/blob/master/LICENSE"
FAST_VQA_LICENCE = "MIT (VQAssessment/FAST-VQA-and-FasterVQA LICENSE)"

DOVER_WEIGHTS = WeightSpec(
    name="dover-weights",
    source="https://github.com/QualityAssessment/DOVER/releases/download/v0.1.0/DOVER.pth",
    filename="DOVER.pth",
    sha256="f4a42c0bbc94c94dd7409e7f40887d44c5c30314d1d09e7edf03cc35813b4838",
    licence=S_LAB_LICENCE,
    env_var="VBENCH_PREF_DOVER_WEIGHTS",
    description="DOVER: Swin-T technical + ConvNeXt-T aesthetic branches and their heads (GitHub release v0.1.0)",
    accept_licence=S_LAB_ACCEPT,
    mirrors=("https://huggingface.co/teowu/DOVER/resolve/main/DOVER.pth",),
)
DOVER_MOBILE_WEIGHTS = WeightSpec(
    name="dover-mobile-weights",
    source="https://github.com/QualityAssessment/DOVER/releases/download/v0.5.0/DOVER-Mobile.pth",
    filename="DOVER-Mobile.pth",
    sha256=None,
    licence=S_LAB_LICENCE,
    env_var="VBENCH_PREF_DOVER_MOBILE_WEIGHTS",
    description="DOVER-Mobile: ConvNeXt-femto technical and aesthetic branches (GitHub release v0.5.0)",
    accept_licence=S_LAB_ACCEPT,
)
DOVER_PLUS_PLUS_WEIGHTS = WeightSpec(
    name="dover-plus-plus-weights",
    source="hf://teowu/DOVER",
    filename="DOVER_plus_plus.pth",
    sha256=None,  # checked against the hub's LFS sha256 at download
    licence=S_LAB_LICENCE,
    env_var="VBENCH_PREF_DOVER_PLUS_PLUS_WEIGHTS",
    description="DOVER++: DOVER fine-tuned on DIVIDE-3k (published on Hugging Face only)",
    accept_licence=S_LAB_ACCEPT,
)
FAST_VQA_B_WEIGHTS = WeightSpec(
    name="fast-vqa-b-weights",
    source="https://github.com/TimothyHTimothy/FAST-VQA/releases/download/v2.0.0/FAST_VQA_B_1_4.pth",
    filename="FAST_VQA_B_1_4.pth",
    sha256=None,
    licence=FAST_VQA_LICENCE,
    env_var="VBENCH_PREF_FAST_VQA_B_WEIGHTS",
    description="FAST-VQA-B: Swin-T with gated relative position bias on 7x7 fragments, 4 clips (release v2.0.0)",
)
FASTER_VQA_WEIGHTS = WeightSpec(
    name="fastervqa-weights",
    source="https://github.com/TimothyHTimothy/FAST-VQA/releases/download/v2.0.0/FAST_VQA_3D_1_1.pth",
    filename="FAST_VQA_3D_1_1.pth",
    sha256=None,
    licence=FAST_VQA_LICENCE,
    env_var="VBENCH_PREF_FASTERVQA_WEIGHTS",
    description="FasterVQA: FAST-VQA on 8 x 4-frame temporal fragments, 1 clip (release v2.0.0)",
)

ALL_WEIGHTS = (DOVER_WEIGHTS, DOVER_MOBILE_WEIGHTS, DOVER_PLUS_PLUS_WEIGHTS, FAST_VQA_B_WEIGHTS, FASTER_VQA_WEIGHTS)
