"""FVD feature extractors (Kinetics-400 I3D, VideoMAE-v2 ViT-g): videos/s of preprocessing + network, batched.

The networks are the full-size ones with random weights (speed depends on shapes, not values; nothing is
downloaded), fed synthetic uint8 clips of 16 frames straight through ``preprocess_*`` and the module, in
batches of ``--batch-size`` videos, after one warm-up batch. With ``--cdfvd-repo`` (a checkout of
songweige/content-debiased-fvd) the same clips also go through cd-fvd's own preprocessing and model classes
(``cdfvd/third_party``) on the same machine, and the ratio is printed.

    python3 benchmarks/distribution_features.py                       # CPU: I3D 8 videos, VideoMAE 2
    python3 benchmarks/distribution_features.py --cdfvd-repo /path/content-debiased-fvd
    python3 benchmarks/distribution_features.py --device cuda --videos 256 --batch-size 32
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from vbench_pref.distribution import i3d, videomae

Extractor = tuple[Callable[[torch.Tensor], torch.Tensor], torch.nn.Module]


def ours(name: str, device: str) -> Extractor:
    if name == "i3d":
        return i3d.preprocess_i3d, i3d.random_i3d(device=device)
    return videomae.preprocess_videomae, videomae.random_videomae("full", device=device)


def reference(name: str, device: str, repo: Path) -> Extractor:
    """cd-fvd's own preprocessing and network class, random weights (its loaders would download)."""
    sys.path.insert(0, str(repo))
    if name == "i3d":
        from cdfvd.third_party.i3d.pytorch_i3d import InceptionI3d
        from cdfvd.third_party.i3d.utils import preprocess_i3d

        return lambda clips: preprocess_i3d(clips.numpy()), InceptionI3d(400, in_channels=3).to(device).eval()
    from cdfvd.third_party.VideoMAEv2.utils import preprocess_videomae
    from cdfvd.third_party.VideoMAEv2.videomaev2_finetune import vit_giant_patch14_224

    model = vit_giant_patch14_224(img_size=224, pretrained=False, num_classes=174, all_frames=16, tubelet_size=2,
                                  drop_path_rate=0.3, use_mean_pooling=True).to(device).eval()
    model.forward = model.forward_features  # what cd-fvd calls
    return lambda clips: preprocess_videomae(clips.numpy()), model


def videos_per_s(extractor: Extractor, clips: torch.Tensor, batch_size: int, device: str) -> dict[str, float]:
    preprocess, model = extractor
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.no_grad():
        model(preprocess(clips[:batch_size]).to(device))  # warm-up: allocator, kernels
        sync()
        start = time.perf_counter()
        for i in range(0, len(clips), batch_size):
            features = model(preprocess(clips[i:i + batch_size]).to(device))
            features.cpu()
        sync()
    seconds = time.perf_counter() - start
    return {"videos_per_s": len(clips) / seconds, "s_per_video": seconds / len(clips), "dim": features.shape[-1]}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--extractors", nargs="+", choices=["i3d", "videomae"], default=["i3d", "videomae"])
    parser.add_argument("--videos", type=int, help="videos per extractor (default: I3D 8, VideoMAE 2 on CPU)")
    parser.add_argument("--batch-size", type=int, help="videos per forward pass (default: I3D 4, VideoMAE 1 on CPU)")
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--cdfvd-repo", type=Path, help="a songweige/content-debiased-fvd checkout, to time it too")
    args = parser.parse_args(argv)
    gpu = args.device.startswith("cuda")
    print(f"full-size networks, random weights, {args.device} ({torch.get_num_threads()} threads), float32, "
          f"uint8 clips of 16 frames at {args.height}x{args.width}")
    for name in args.extractors:
        n = args.videos or (8 if name == "i3d" or gpu else 2)
        batch = args.batch_size or (4 if name == "i3d" else 1) * (8 if gpu else 1)
        clips = torch.randint(0, 256, (n, 16, args.height, args.width, 3), dtype=torch.uint8,
                              generator=torch.Generator().manual_seed(0))
        figures: dict[str, Any] = videos_per_s(ours(name, args.device), clips, batch, args.device)
        line = (f"  {name:<9} {figures['videos_per_s']:.3f} videos/s = {figures['s_per_video']:.2f} s/video "
                f"({n} videos, batch {batch}, {figures['dim']}-d features)")
        if args.cdfvd_repo:
            ref = videos_per_s(reference(name, args.device, args.cdfvd_repo), clips, batch, args.device)
            line += f"; cd-fvd here {ref['s_per_video']:.2f} s/video ({ref['s_per_video'] / figures['s_per_video']:.2f}x ours)"
        print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
