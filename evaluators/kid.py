"""KID over video frames: the unbiased squared MMD with the cubic polynomial kernel between the Inception-v3
pool3 features of the run's frames and a reference set's, averaged over random subsets as clean-fid does,
with its standard error. Unbiased at any set size, so it suits the small sets FID misleads on.
"""

from __future__ import annotations

from vbench_pref.evaluator import DistanceSpec

from ._inception_base import InceptionFeatures


class KID(InceptionFeatures):
    name = "kid"
    version = "1"
    description = "kernel Inception distance of the frames to a reference set (unbiased; lower is better)"
    distances = (DistanceSpec("kid", "kid", "unbiased MMD^2, kernel (x.y/d + 1)^3, mean over subsets"),)
    sample_size = None  # unbiased: no sample size to warn below
    reference = "GaParmar/clean-fid (kernel_distance; features: pytorch-fid's pt_inception-2015-12-05 state dict)"
