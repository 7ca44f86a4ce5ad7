"""FID over video frames: the Fréchet distance between the Inception-v3 pool3 features of the run's frames and
a reference set's (``--reference``), as clean-fid computes it ("clean" resize) or as pytorch-fid does.

Every frame of every video is an image (``-O fid.stride=N`` / ``max_frames`` thin them out); the statistics are
fitted over all frames, the bootstrap resamples whole videos. Image FID is reported with 50,000 images;
fewer frames bias it upward (see the run's warning).
"""

from __future__ import annotations

from vbench_pref.evaluator import DistanceSpec

from ._inception_base import InceptionFeatures


class FID(InceptionFeatures):
    name = "fid"
    version = "1"
    description = "Fréchet Inception distance of the frames to a reference set (lower is better)"
    distances = (DistanceSpec("fid", "frechet", "Fréchet distance of Inception-v3 pool3 features, per frame"),)
    sample_size = 50000
    reference = "GaParmar/clean-fid (mode clean; features: pytorch-fid's pt_inception-2015-12-05 state dict)"
