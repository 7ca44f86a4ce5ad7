"""VideoAlign: VideoReward's visual quality (VQ), motion quality (MQ) and text alignment (TA) of a video.

The PG-DPO paper picks its chosen/rejected pairs by VideoAlign's Overall and reports VQ, MQ and TA in
Table 1. The model (Qwen2-VL-2B-Instruct + a merged LoRA + a linear head read at three special tokens) is
built on the current transformers and peft in ``vbench_pref.vlm.videoreward``; its settings (LoRA, output size,
frame rate, pixel budget, normalisation) come from the checkpoint's ``model_config.json``.

Scores are z-scores, unbounded: ``(raw - mean) / std`` with the means and stds of the reference's
``inference_config`` (VQ 3.6757/2.2476, MQ 1.1646/1.3811, TA 2.8105/2.5121 in the published file), as
``VideoVLMRewardInference.reward(use_norm=True)`` returns them and as the paper reports them; ``overall``
is their sum. The raw head outputs are kept as ``vq_raw``, ``mq_raw``, ``ta_raw`` (columns rather than an
option: the model computes both at once, and a pair picked by one can be checked against the other).

Frames: 2 fps by the container's average frame rate (4-768 frames, an even count, indices by float32
``linspace``), bicubic antialiased resize on uint8 to sides that are multiples of 28 within
[100,352, 200,704] px -- VideoAlign's ``vision_process.py`` with the published file's ``fps`` and
``max_frame_pixels``. A video whose metadata states a wrong frame rate gets a different frame count,
as in the reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vbench_pref import weights as weight_files
from vbench_pref.errors import VbenchPrefError, WeightsMissingError
from vbench_pref.evaluator import Evaluator, Option, ScoreSpec, SharedModels, VideoSample
from vbench_pref.qwen_vision import QwenVideoRule
from vbench_pref.video import FrameSpec
from vbench_pref.vlm.visual_token_batches import token_batches
from vbench_pref.weights import WeightSpec

PRECISIONS = ("reference", "run", "float32")
REWARD_REPO = "hf://KlingTeam/VideoReward"
BASE_REPO = "hf://Qwen/Qwen2-VL-2B-Instruct"
CHECKPOINT = WeightSpec(
    name="videoreward",
    source=REWARD_REPO,
    filename="checkpoint-11352/model.pth",
    sha256="48375908e6112de9f0248402db156a23b480709a6960b091c598c6f4c88d21b9",
    size_bytes=5_031_072_529,
    licence="MIT (KwaiVGI/VideoAlign LICENSE)",
    env_var="VBENCH_PREF_VIDEOREWARD_WEIGHTS",
    description="VideoReward: the PEFT-wrapped Qwen2-VL-2B reward model's state dict (bf16; snapshot b8e421fe)",
)
REWARD_CONFIG = WeightSpec(
    name="videoreward-config",
    source=REWARD_REPO,
    filename="model_config.json",
    sha256=None,
    licence=CHECKPOINT.licence,
    description="VideoReward's settings: LoRA, output size, fps, pixel budget, score normalisation",
)
BASE_FILES = tuple(
    WeightSpec(
        name=f"qwen2-vl-2b-{filename.split('.')[0].replace('_', '-')}",
        source=BASE_REPO,
        filename=filename,
        sha256=None,
        licence="Apache-2.0 (Qwen/Qwen2-VL-2B-Instruct)",
        description=f"Qwen2-VL-2B-Instruct {what} (the base of VideoReward; its weights are not needed)",
    )
    for filename, what in (
        ("config.json", "architecture"),
        ("preprocessor_config.json", "patch sizes and pixel mean/std"),
        ("tokenizer.json", "tokenizer"),
        ("tokenizer_config.json", "tokenizer settings"),
    )
)
DEFAULT_RULE = QwenVideoRule(fps=2.0, max_pixels=448 * 448, nframes_rounding="round")


def videoalign_frame_spec(rule: QwenVideoRule = DEFAULT_RULE) -> FrameSpec:
    return FrameSpec(sampling="qwen", resize="qwen", qwen=rule, pixels="uint8")


class VideoAlign(Evaluator):
    name = "videoalign"
    version = "1"
    description = "VideoReward (VideoAlign) visual quality, motion quality and text alignment z-scores, and their sum"
    scores = (
        ScoreSpec("vq", True, description="visual quality, normalised (z-score; the paper's Table 1 VQ)"),
        ScoreSpec("mq", True, description="motion quality, normalised (z-score; Table 1 MQ)"),
        ScoreSpec("ta", True, description="text alignment, normalised (z-score; Table 1 TA)"),
        ScoreSpec("overall", True, description="VQ + MQ + TA normalised: the paper's pair-picking reward"),
        ScoreSpec("vq_raw", True, description="visual quality, the head's raw output"),
        ScoreSpec("mq_raw", True, description="motion quality, the head's raw output"),
        ScoreSpec("ta_raw", True, description="text alignment, the head's raw output"),
    )
    primary_score = "overall"  # `pairs --reward videoalign`: the paper picks pairs by Overall
    frames = videoalign_frame_spec()
    needs_prompt = True
    weights = (CHECKPOINT, REWARD_CONFIG, *BASE_FILES)
    reference = "KwaiVGI/VideoAlign:inference.py (VideoVLMRewardInference.reward, use_norm=True)"
    options = (
        Option("weights", "official",
               "'official' (the manifest files, see `vbench-pref weights list`), a local VideoReward folder "
               "(model_config.json + checkpoint-N/model.pth; the highest N), or 'random' (untrained, smoke tests "
               "only; scores are labelled)"),
        Option("base", "official", "Qwen2-VL-2B-Instruct's config, preprocessor and tokenizer: 'official' (the hub "
               "cache) or a local folder"),
        Option("random_size", "tiny", "architecture of weights=random: 'tiny' (a few kB) or 'full' (Qwen2-VL-2B's "
               "sizes with a toy vocabulary)", ("tiny", "full")),
        Option("precision", "reference",
               "reference: bf16 weights on CUDA and float32 on the CPU, as VideoAlign runs; run: the run's --dtype; "
               "float32: always float32", PRECISIONS),
        Option("batch_tokens", 16384, "token budget of one forward pass: videos are batched while batch size x "
               "longest sequence (video + prompt tokens) stays within it"),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if int(self.config["batch_tokens"]) < 1:
            raise VbenchPrefError("videoalign: batch_tokens must be at least 1")
        self._spec = self.frames
        self.model: Any = None
        self.settings: Any = None
        self.encoder: Any = None
        self.preprocessor: Any = None
        self.compute_dtype = torch.float32
        self._weights: list[dict[str, Any]] = []

    # --- the card's runtime side ---
    def frame_spec(self) -> FrameSpec:
        return self._spec

    @property
    def uses_random_weights(self) -> bool:
        return self.config["weights"] == "random"

    def required_weights(self) -> tuple[WeightSpec, ...]:
        needed: list[WeightSpec] = []
        if self.config["weights"] == "official":
            needed += [CHECKPOINT, REWARD_CONFIG]
        if self.config["weights"] != "random" and self.config["base"] == "official":
            needed += list(BASE_FILES)
        return tuple(needed)

    def residency_key(self) -> str:
        c = self.config
        return f"videoalign:{c['weights']}:{c['base']}:{c['random_size']}:{c['precision']}"

    def missing_weights(self) -> str | None:
        weights, base = str(self.config["weights"]), str(self.config["base"])
        try:
            if weights not in ("official", "random"):
                _reward_files(Path(weights))
            if weights != "random" and base != "official":
                _base_folder(Path(base))
            missing = [spec for spec in self.required_weights() if weight_files.locate(spec) is None]
        except VbenchPrefError as exc:
            return str(exc)
        if not missing:
            return None
        offline = weight_files.offline_variable()
        first = missing[0]
        more = f" and {len(missing) - 1} more file(s)" if len(missing) > 1 else ""
        state = f"not on disk and cannot be downloaded: offline ({offline} is set)" if offline else "not on disk"
        # `pull videoalign` fetches every file of the default options; name the entries when fewer are missing
        names = "videoalign" if len(missing) == len(self.weights) else " ".join(spec.name for spec in missing)
        pull = f"`vbench-pref weights pull {names}`"
        how = f"unset {offline} and run {pull}" if offline else f"run {pull}"
        return (f"videoalign: {first.filename} ({first.source}){more} {'are' if more else 'is'} {state}; {how}, or pass "
                "-O videoalign.weights=/path/to/VideoReward and -O videoalign.base=/path/to/Qwen2-VL-2B-Instruct")

    # --- loading ---
    def load(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
             shared: SharedModels | None = None) -> None:
        from vbench_pref.vlm import videoreward as vr
        from vbench_pref.tiny_qwen import build_tiny_qwen_tokenizer

        super().load(device, dtype, shared)
        self._weights = []
        self.compute_dtype = self._compute_dtype()
        if self.config["weights"] == "random":
            tokenizer = build_tiny_qwen_tokenizer(vr.REWARD_TOKENS)
            config = vr.tiny_config(tokenizer)
            if self.config["random_size"] == "full":
                config = {**vr.QWEN2_VL_2B, **{k: v for k, v in config.items() if k.endswith("token_id")},
                          "vocab_size": len(tokenizer)}
            self.settings = vr.RewardSettings()
            self.preprocessor = vr.Preprocessor()
            self.model = vr.random_reward_model(config, self.settings.output_dim)
            self._weights.append({"option": "weights", "weights": "random", "size": self.config["random_size"]})
        else:
            checkpoint, config_file = self._reward_paths()
            base = self._base_path()
            self.settings = vr.RewardSettings.from_file(config_file)
            tokenizer = vr.load_tokenizer([checkpoint.parent / "tokenizer", config_file.parent / "tokenizer"], base)
            config = _read_json(base / "config.json")
            if "vision_config" not in config:
                raise VbenchPrefError(f"{base / 'config.json'}: not a Qwen2-VL config (no vision_config)")
            # the reference resizes the embeddings to the tokenizer
            config["vocab_size"] = len(tokenizer)
            if isinstance(config.get("text_config"), dict):  # a config saved by transformers >= 4.5x
                config["text_config"]["vocab_size"] = len(tokenizer)
            self.preprocessor = vr.Preprocessor.from_dict(_read_json(base / "preprocessor_config.json"))
            if self.preprocessor.patch_size != config["vision_config"].get("patch_size", 14):
                raise VbenchPrefError(f"{base}: preprocessor and model patch sizes differ")
            self.model = vr.load_reward_model(checkpoint, config, self.settings)
        self.encoder = vr.PromptEncoder(tokenizer)
        self.video_token_id = int(self.model.config.video_token_id)
        if self.encoder.video_id != self.video_token_id:
            raise VbenchPrefError("videoalign: the tokenizer's <|video_pad|> id differs from the model config's video_token_id")
        rule = QwenVideoRule(fps=self.settings.fps, max_pixels=self.settings.max_pixels, nframes_rounding="round")
        self._spec = videoalign_frame_spec(rule)
        self.model.to(self.compute_dtype)

    def _compute_dtype(self) -> torch.dtype:
        precision = self.config["precision"]
        if precision == "float32":
            return torch.float32
        if precision == "run":
            return self.dtype
        return torch.bfloat16 if self.device.type == "cuda" else torch.float32

    def _reward_paths(self) -> tuple[Path, Path]:
        value = str(self.config["weights"])
        if value == "official":
            checkpoint = weight_files.resolve(CHECKPOINT, None, evaluator=self.name, option="weights")
            config = weight_files.resolve(REWARD_CONFIG, None, evaluator=self.name, option="weights")
            self._weights += [{"option": "weights", **checkpoint.provenance()},
                              {"option": "weights", **config.provenance()}]
            return checkpoint.path, config.path
        folder, checkpoint = _reward_files(Path(value))
        sha256 = weight_files.file_digests(checkpoint)["sha256"]
        self._weights.append({
            "option": "weights", "weights": "local", "file": str(checkpoint), "sha256": sha256,
            "verified_by": "manifest sha256" if sha256 == CHECKPOINT.sha256 else "unverified (not the published checkpoint)",
        })
        return checkpoint, folder / "model_config.json"

    def _base_path(self) -> Path:
        value = str(self.config["base"])
        if value != "official":
            return _base_folder(Path(value))
        resolved = [weight_files.resolve(spec, None, evaluator=self.name, option="base") for spec in BASE_FILES]
        self._weights += [{"option": "base", **r.provenance()} for r in resolved]
        folders = {r.path.parent for r in resolved}
        if len(folders) != 1:
            raise VbenchPrefError("videoalign: the base model's files are in different hub snapshots; pull them again")
        return folders.pop()

    def device_models(self) -> tuple[Any, ...]:
        return (self.model,)

    def weight_provenance(self) -> list[dict[str, Any]]:
        return list(self._weights)

    def provenance(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"compute_dtype": str(self.compute_dtype).replace("torch.", "")}
        if self.settings is not None:
            extra["normalisation"] = {"means": list(self.settings.means), "stds": list(self.settings.stds),
                                      "from_file": self.settings.normalised}
        return {**super().provenance(), **extra}

    # --- scoring ---
    def score(self, batch: Sequence[VideoSample]) -> dict[str, np.ndarray]:
        from vbench_pref.vlm import videoreward as vr

        if self.model is None:
            raise RuntimeError("videoalign: call load() before score()")
        missing = [s.video for s in batch if not s.prompt]
        if missing:
            raise VbenchPrefError(f"videoalign needs a prompt; {missing[0]} has none")
        inputs = []
        for sample in batch:
            pixels, grid = vr.video_patches(torch.as_tensor(sample.frames), self.preprocessor)
            tokens = grid[0] * grid[1] * grid[2] // self.preprocessor.merge_size ** 2
            inputs.append((pixels, grid, self.encoder.ids(str(sample.prompt), tokens)))
        raw = torch.empty((len(inputs), len(vr.DIMENSIONS)), dtype=torch.float64)
        for group in token_batches([len(ids) for _, _, ids in inputs], int(self.config["batch_tokens"])):
            raw[group] = self._forward([inputs[i] for i in group])
        if not torch.isfinite(raw).all():
            raise VbenchPrefError("videoalign: non-finite reward (NaN or inf in the model output)")
        normalised = self.settings.normalise(raw)
        out = {name: normalised[:, i].numpy() for i, name in enumerate(("vq", "mq", "ta"))}
        out["overall"] = normalised.sum(dim=1).numpy()
        out.update({f"{name}_raw": raw[:, i].numpy() for i, name in enumerate(("vq", "mq", "ta"))})
        return out

    def _forward(self, group: list[tuple[torch.Tensor, tuple[int, int, int], list[int]]]) -> torch.Tensor:
        from vbench_pref.vlm import videoreward as vr

        ids, mask = vr.right_pad([ids for _, _, ids in group], self.encoder.pad_id)
        pixels = torch.cat([p for p, _, _ in group])
        grid = torch.tensor([g for _, g, _ in group], dtype=torch.long)
        with torch.inference_mode():
            raw = vr.reward_forward(self.model, ids.to(self.device), mask.to(self.device), pixels.to(self.device),
                                    grid.to(self.device), self.encoder.reward_ids, self.video_token_id)
        return raw.float().cpu().double()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsMissingError(f"videoalign: {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise VbenchPrefError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise VbenchPrefError(f"{path}: not a JSON object")
    return data


def _reward_files(path: Path) -> tuple[Path, Path]:
    """(folder, checkpoint) of a local VideoReward folder: the highest ``checkpoint-N/model.pth``, as the
    reference's ``load_model_from_checkpoint`` picks it; a ``model.pth`` given directly is used as it is."""
    path = path.expanduser()
    if path.is_file():
        folder = path.parent.parent if path.parent.name.startswith("checkpoint-") else path.parent
        checkpoint = path
    elif path.is_dir():
        folder = path
        steps = [(int(p.name.split("-")[-1]), p) for p in path.glob("checkpoint-*")
                 if p.name.split("-")[-1].isdigit() and (p / "model.pth").is_file()]
        if not steps:
            raise WeightsMissingError(f"videoalign: {path} holds no checkpoint-N/model.pth (a VideoReward folder)")
        checkpoint = max(steps)[1] / "model.pth"
    else:
        raise WeightsMissingError(f"videoalign: weights folder {path} does not exist")
    if not (folder / "model_config.json").is_file():
        raise WeightsMissingError(f"videoalign: {folder} has no model_config.json beside its checkpoint-N folders")
    return folder, checkpoint


def _base_folder(path: Path) -> Path:
    path = path.expanduser()
    missing = [name for name in ("config.json", "preprocessor_config.json") if not (path / name).is_file()]
    if missing:
        raise WeightsMissingError(f"videoalign: base folder {path} has no {' or '.join(missing)} (Qwen2-VL-2B-Instruct)")
    return path
