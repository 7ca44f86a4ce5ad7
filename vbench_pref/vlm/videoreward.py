"""VideoReward (VideoAlign's VQ / MQ / TA reward model) on the current transformers Qwen2-VL classes + peft.

The published model (Hugging Face ``KlingTeam/VideoReward``, formerly ``KwaiVGI/VideoReward``) is
Qwen2-VL-2B-Instruct with three added tokens ``<|VQ_reward|>``, ``<|MQ_reward|>``, ``<|TA_reward|>``, a
LoRA on the language model and a bias-free linear ``rm_head`` read at those three tokens. Its
``checkpoint-N/model.pth`` is the PEFT-wrapped model's whole state dict as transformers 4.45 and peft 0.10
named it (``base_model.model.visual.*``, ``base_model.model.model.*``, ``...lora_A.default.weight``).

What this module reproduces of the reference (KwaiVGI/VideoAlign ``trainer.py`` ``Qwen2VLRewardModelBT``):

- the forward builds the input embeddings itself (video features scattered into the ``<|video_pad|>``
  slots) and calls the language model with ``position_ids=None``, so every M-RoPE section gets the plain
  sequential positions 0..L-1 -- not the 3-D video positions Qwen2-VL's own forward computes. The
  checkpoint was trained that way;
- ``rm_head`` is applied at the special-token positions, giving ``[B, 3, output_dim]``; ``output_dim`` 3
  keeps the diagonal (one output per token), 1 keeps the single output;
- the LoRA targets are every ``Linear``/``Embedding`` whose (4.45-era) name contains none of
  ``lora_namespan_exclude`` (``find_target_linear_names``), with r, alpha and rsLoRA from ``model_config.json``.
  The adapter is merged into the weights once at load (in float32), so scoring runs the plain model.

Frames reach the vision tower as the reference's processor (transformers 4.45 ``Qwen2VLImageProcessor``
on the float frames ``vision_process.fetch_video`` returns, ``do_rescale``) makes them: its resize is a
no-op on frames whose sides are already multiples of 28 within its pixel bounds, so the patches are
``x / 255`` (float64, then float32), normalised by the CLIP mean and std in float32, cut into
``temporal x 14 x 14`` patches in merge-window order (:func:`video_patches`).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import torch

from vbench_pref.errors import VbenchPrefError, WeightsMissingError

REWARD_TOKENS = ("<|VQ_reward|>", "<|MQ_reward|>", "<|TA_reward|>")
DIMENSIONS = ("VQ", "MQ", "TA")  # the order of the reward tokens in the prompt, hence of the outputs
PROMPT_FILE = "videoreward_prompt.txt"
PROMPT_SHA256 = "fdb6309bac618dd0c8b1b589d3a0970a974f7856eecbb355a190b2dce54af700"  # the template text alone
CHECKPOINT_FILE = "model.pth"
CONFIG_FILE = "model_config.json"
# The Qwen2-VL chat turn the reference's ``apply_chat_template`` renders around one video and one text.
CHAT_PREFIX = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
CHAT_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
VIDEO_SLOT = "<|vision_start|><|video_pad|><|vision_end|>"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Qwen/Qwen2-VL-2B-Instruct's config.json (transformers 4.45's flat layout), with the vocabulary VideoReward
# resized it to (151,657 tokens of the Qwen2-VL tokenizer + the three reward tokens).
QWEN2_VL_2B: dict[str, Any] = {
    "architectures": ["Qwen2VLForConditionalGeneration"],
    "model_type": "qwen2_vl",
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "vision_token_id": 151654,
    "image_token_id": 151655,
    "video_token_id": 151656,
    "hidden_act": "silu",
    "hidden_size": 1536,
    "initializer_range": 0.02,
    "intermediate_size": 8960,
    "max_position_embeddings": 32768,
    "max_window_layers": 28,
    "num_attention_heads": 12,
    "num_hidden_layers": 28,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": True,
    "use_cache": True,
    "use_sliding_window": False,
    "vision_config": {
        "depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3, "hidden_size": 1536,
        "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14, "temporal_patch_size": 2,
    },
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "vocab_size": 151660,
}
QWEN2_VL_PREPROCESSOR: dict[str, Any] = {
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD),
    "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
}


# ------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class RewardSettings:
    """What a VideoReward ``model_config.json`` says, limited to what inference honours."""

    output_dim: int = 1
    lora_r: int = 64
    lora_alpha: float = 128
    use_rslora: bool = False
    num_lora_modules: int = -1
    lora_exclude: tuple[str, ...] = ("lm_head", "rm_head", "embed_tokens", "visual")
    fps: float = 2.0
    max_pixels: int = 448 * 448
    means: tuple[float, float, float] = (3.6757, 1.1646, 2.8105)
    stds: tuple[float, float, float] = (2.2476, 1.3811, 2.5121)
    normalised: bool = True  # False: the file has no inference_config, the reference then reports raw values

    @classmethod
    def from_file(cls, path: Path) -> "RewardSettings":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise VbenchPrefError(f"{path}: not a readable VideoReward model_config.json ({exc})") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "model_config.json") -> "RewardSettings":
        def section(name: str) -> dict[str, Any]:
            value = data.get(name)
            if not isinstance(value, dict):
                raise VbenchPrefError(f"{where}: no {name} section; not a VideoReward model_config.json")
            return value

        data_cfg, model_cfg, lora_cfg = section("data_config"), section("model_config"), section("peft_lora_config")

        def refuse(what: str) -> VbenchPrefError:
            return VbenchPrefError(f"{where}: {what}; only the published VideoReward setup is supported")

        if not model_cfg.get("use_special_tokens") or model_cfg.get("reward_token", "special") != "special":
            raise refuse("the reward is not read at the special reward tokens")
        if data_cfg.get("prompt_template_type") != "detailed_special":
            raise refuse(f"prompt_template_type is {data_cfg.get('prompt_template_type')!r}, not 'detailed_special'")
        eval_dim = data_cfg.get("eval_dim")
        if sorted(eval_dim if isinstance(eval_dim, list) else [eval_dim]) != sorted(DIMENSIONS):
            raise refuse(f"eval_dim is {eval_dim!r}, not VQ, MQ and TA")
        if data_cfg.get("sample_type", "uniform") != "uniform" or data_cfg.get("num_frames") is not None:
            raise refuse("frames are not sampled uniformly at a frame rate (sample_type/num_frames)")
        output_dim = model_cfg.get("output_dim", 1)
        if output_dim not in (1, 3):
            raise refuse(f"output_dim is {output_dim!r} (1 or 3 expected)")
        if not lora_cfg.get("lora_enable"):
            raise refuse("lora_enable is false (the published checkpoint is PEFT-wrapped)")
        if lora_cfg.get("lora_modules_to_save"):
            raise refuse(f"lora_modules_to_save is {lora_cfg['lora_modules_to_save']!r}")
        if lora_cfg.get("lora_target_modules"):
            raise refuse(f"lora_target_modules is {lora_cfg['lora_target_modules']!r} (the training script ignores it)")
        exclude = lora_cfg.get("lora_namespan_exclude") or []
        exclude = [exclude] if isinstance(exclude, str) else list(exclude)
        fps, max_pixels = data_cfg.get("fps", 2.0), data_cfg.get("max_frame_pixels", 240 * 320)
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise refuse(f"fps is {fps!r}")
        if not (isinstance(max_pixels, int) and max_pixels >= 128 * 28 * 28):
            raise refuse(f"max_frame_pixels is {max_pixels!r}")
        inference = data.get("inference_config")
        if isinstance(inference, dict):
            try:
                means = tuple(float(inference[f"{d}_mean"]) for d in DIMENSIONS)
                stds = tuple(float(inference[f"{d}_std"]) for d in DIMENSIONS)
            except (KeyError, TypeError, ValueError):
                raise refuse("inference_config lacks a VQ/MQ/TA mean or std") from None
            if not all(math.isfinite(s) and s > 0 for s in stds):
                raise refuse("an inference_config std is not positive")
            normalised = True
        else:
            means, stds, normalised = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False
        return cls(
            output_dim=int(output_dim), lora_r=int(lora_cfg.get("lora_r", 16)),
            lora_alpha=float(lora_cfg.get("lora_alpha", 32)), use_rslora=bool(lora_cfg.get("use_rslora", False)),
            num_lora_modules=int(lora_cfg.get("num_lora_modules", -1)), lora_exclude=tuple(str(e) for e in exclude),
            fps=float(fps), max_pixels=int(max_pixels), means=means, stds=stds, normalised=normalised,  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict[str, Any]:
        """A ``model_config.json`` (the sections inference reads) that says these settings."""
        return {
            "data_config": {
                "fps": self.fps, "max_frame_pixels": self.max_pixels, "num_frames": None, "eval_dim": list(DIMENSIONS),
                "prompt_template_type": "detailed_special", "sample_type": "uniform",
                "meta_data": "", "data_dir": "",
            },
            "training_args": {},
            "model_config": {
                "model_name_or_path": "Qwen/Qwen2-VL-2B-Instruct", "output_dim": self.output_dim,
                "use_special_tokens": True, "reward_token": "special",
            },
            "peft_lora_config": {
                "lora_enable": True, "vision_lora": False, "lora_r": self.lora_r, "lora_alpha": self.lora_alpha,
                "lora_dropout": 0.05, "lora_target_modules": None, "lora_namespan_exclude": list(self.lora_exclude),
                "lora_modules_to_save": None, "lora_task_type": "CAUSAL_LM", "use_rslora": self.use_rslora,
                "num_lora_modules": self.num_lora_modules,
            },
            **({"inference_config": {
                **{f"{d}_mean": m for d, m in zip(DIMENSIONS, self.means)},
                **{f"{d}_std": s for d, s in zip(DIMENSIONS, self.stds)},
            }} if self.normalised else {}),
        }

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """(raw - mean) / std per dimension, in float64 as the reference's Python floats."""
        means = torch.tensor(self.means, dtype=torch.float64)
        stds = torch.tensor(self.stds, dtype=torch.float64)
        return (raw.double() - means) / stds


@lru_cache(maxsize=1)
def prompt_template() -> str:
    """The training prompt, checked against the published text's sha256."""
    text = resources.files("vbench_pref.vlm").joinpath("data", PROMPT_FILE).read_text(encoding="utf-8")
    template = text.split("#---\n", 1)[1]
    if hashlib.sha256(template.encode()).hexdigest() != PROMPT_SHA256:
        raise VbenchPrefError(f"vbench_pref/data/{PROMPT_FILE} was edited: it no longer holds VideoReward's training prompt")
    return template


def prompt_text(prompt: str) -> str:
    """The user text of one video (``build_prompt(prompt, eval_dim, "detailed_special")``)."""
    return prompt_template().replace("{text_prompt}", prompt)


# ------------------------------------------------------------------------------------------- key names
_LEGACY_TO_CURRENT = (("base_model.model.visual.", "base_model.model.model.visual."),
                      ("base_model.model.model.", "base_model.model.model.language_model."))


def current_key(key: str) -> str:
    """A transformers 4.45 / peft 0.10 key of the PEFT-wrapped model, named as the current classes name it."""
    for old, new in _LEGACY_TO_CURRENT:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def published_key(key: str) -> str:
    """The inverse of :func:`current_key`."""
    for old, new in reversed(_LEGACY_TO_CURRENT):
        if key.startswith(new):
            return old + key[len(new):]
    return key


def _legacy_module_name(name: str) -> str:
    """A module name of the current (unwrapped) model as transformers 4.45 named it (``model.visual.x`` -> ``visual.x``)."""
    return published_key("base_model.model." + name)[len("base_model.model."):]


# ------------------------------------------------------------------------------------------- model
def qwen2_vl_config(config: dict[str, Any], attn: str = "sdpa") -> Any:
    from transformers import Qwen2VLConfig

    cfg = Qwen2VLConfig(**{k: v for k, v in config.items() if k not in ("architectures", "model_type")})
    cfg._attn_implementation = attn  # noqa: SLF001 - how transformers picks the attention kernels
    for sub in (cfg.text_config, cfg.vision_config):
        sub._attn_implementation = attn  # noqa: SLF001
    return cfg


@lru_cache(maxsize=1)
def reward_model_class() -> type:
    """``Qwen2VLForConditionalGeneration`` plus the bias-free ``rm_head`` (built on first use: transformers is heavy)."""
    from transformers import Qwen2VLForConditionalGeneration

    class VideoRewardQwen2VL(Qwen2VLForConditionalGeneration):
        def __init__(self, config: Any, output_dim: int = 1) -> None:
            super().__init__(config)
            self.output_dim = output_dim
            self.rm_head = torch.nn.Linear(config.text_config.hidden_size, output_dim, bias=False)
            self.post_init()

    return VideoRewardQwen2VL


def build_model(config: dict[str, Any], output_dim: int, attn: str = "sdpa", empty: bool = False) -> Any:
    """The unwrapped reward model; ``empty``: parameters on the meta device (buffers real), for loading."""
    cls = reward_model_class()
    cfg = qwen2_vl_config(config, attn)
    if not empty:
        return cls(cfg, output_dim=output_dim).eval()
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        model = cls(cfg, output_dim=output_dim)
    return model.eval()


def lora_targets(model: torch.nn.Module, settings: RewardSettings) -> list[str]:
    """``find_target_linear_names``: Linear/Embedding modules whose 4.45-era name has no excluded substring."""
    names = [
        name for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding))
        and not any(word in _legacy_module_name(name) for word in settings.lora_exclude)
    ]
    return names[-settings.num_lora_modules:] if settings.num_lora_modules > 0 else names


def wrap_lora(model: torch.nn.Module, settings: RewardSettings) -> Any:
    """The PEFT-wrapped model the checkpoint is a state dict of."""
    from peft import LoraConfig, get_peft_model

    targets = lora_targets(model, settings)
    if not targets:
        raise VbenchPrefError("model_config.json's lora_namespan_exclude leaves no module for the LoRA")
    # task_type only picks peft's wrapper class (its forward is not used here); the weights do not depend on it
    config = LoraConfig(target_modules=targets, r=settings.lora_r, lora_alpha=settings.lora_alpha,
                        lora_dropout=0.0, use_rslora=settings.use_rslora, bias="none")
    with warnings.catch_warnings():  # peft asks transformers a deprecated question about checkpointing
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def expected_shapes(config: dict[str, Any], settings: RewardSettings) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the PEFT-wrapped model's state dict, in the published (4.45-era) names."""
    wrapped = wrap_lora(build_model(config, settings.output_dim, empty=True), settings)
    return {published_key(k): tuple(v.shape) for k, v in wrapped.state_dict().items()}


def _describe_mismatch(expected: dict[str, tuple[int, ...]], got: dict[str, torch.Tensor]) -> str | None:
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k} {tuple(got[k].shape)} (expected {expected[k]})" for k in expected
              if k in got and tuple(got[k].shape) != expected[k]]
    parts = []
    for what, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            shown = ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")
            parts.append(f"{len(items)} {what}: {shown}")
    return "; ".join(parts) or None


def load_reward_model(checkpoint: Path, config: dict[str, Any], settings: RewardSettings, attn: str = "sdpa") -> Any:
    """Read ``checkpoint`` (weights only), load it strictly into the PEFT-wrapped model, merge the LoRA in float32."""
    from vbench_pref.torchload import load_weights_only

    state = load_weights_only(checkpoint, "VideoReward checkpoint")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VbenchPrefError(f"{checkpoint}: not a state dict of tensors")
    wrapped = wrap_lora(build_model(config, settings.output_dim, attn, empty=True), settings)
    expected = {k: tuple(v.shape) for k, v in wrapped.state_dict().items()}
    current = {current_key(k): v for k, v in state.items()}
    problem = _describe_mismatch(expected, current)
    if problem is not None:
        named = {published_key(k): v for k, v in expected.items()}
        problem = _describe_mismatch(named, state)
        raise VbenchPrefError(f"{checkpoint} does not fit VideoReward's architecture ({problem})")
    wrapped.load_state_dict(current, strict=True, assign=True)
    del state, current
    wrapped = wrapped.float()
    # the published lm_head and embed_tokens are separate tensors (the file holds both); neither is re-tied
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no longer tied after merging.*", category=UserWarning)
        return wrapped.merge_and_unload().eval()


def random_reward_model(config: dict[str, Any], output_dim: int, seed: int = 0, attn: str = "sdpa") -> Any:
    """Randomly initialised weights (seeded): for smoke tests, benchmarks and the GPU check."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(config, output_dim, attn)


# ------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Preprocessor:
    """The base model's ``preprocessor_config.json`` values the video patches depend on."""

    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessor":
        return cls(int(data.get("patch_size", 14)), int(data.get("temporal_patch_size", 2)),
                   int(data.get("merge_size", 2)), tuple(map(float, data.get("image_mean", CLIP_MEAN))),  # type: ignore[arg-type]
                   tuple(map(float, data.get("image_std", CLIP_STD))))  # type: ignore[arg-type]


def video_patches(frames: torch.Tensor, pre: Preprocessor) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """``pixel_values_videos`` and ``(t, h, w)`` of one video (uint8 frames, T x H x W x 3)."""
    count, height, width, _ = frames.shape
    p, m, tp = pre.patch_size, pre.merge_size, pre.temporal_patch_size
    if count % tp or height % (p * m) or width % (p * m):
        raise VbenchPrefError(f"video frames {count}x{height}x{width} do not fit {tp}x{p * m}x{p * m} patches")
    # the reference's rescale multiplies in float64 and casts to float32; its normalise runs in float32
    x = (frames.permute(0, 3, 1, 2).double() * (1 / 255)).float()
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1)
    x = (x - mean) / std
    t, h, w = count // tp, height // p, width // p
    x = x.reshape(t, tp, 3, h // m, m, p, w // m, m, p).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(t * h * w, 3 * tp * p * p).contiguous(), (t, h, w)


class PromptEncoder:
    """Token ids of the reference's chat turn around one video and the training prompt."""

    def __init__(self, tokenizer: Any, video_token: str = "<|video_pad|>") -> None:
        self.tokenizer = tokenizer
        ids = tokenizer.convert_tokens_to_ids([*REWARD_TOKENS, video_token])
        if any(i is None or i == tokenizer.unk_token_id for i in ids):
            raise VbenchPrefError(f"the tokenizer lacks {', '.join(REWARD_TOKENS)} or {video_token}")
        self.reward_ids, self.video_id = tuple(ids[:3]), ids[3]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._turns: dict[str, list[int]] = {}  # prompt -> ids of its turn (videos of one prompt share it)

    def ids(self, prompt: str, video_tokens: int) -> list[int]:
        """The ids of the whole turn with ``video_tokens`` video placeholders (the processor's expansion)."""
        if prompt not in self._turns:
            if len(self._turns) > 1024:
                self._turns.clear()
            text = CHAT_PREFIX + VIDEO_SLOT + prompt_text(prompt) + CHAT_SUFFIX
            self._turns[prompt] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = self._turns[prompt]
        at = ids.index(self.video_id)
        out = ids[:at] + [self.video_id] * video_tokens + ids[at + 1:]
        if [out.count(i) for i in self.reward_ids] != [1, 1, 1]:
            raise VbenchPrefError("the prompt does not hold each reward token once (the video's prompt contains one?)")
        return out


def reward_forward(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixels: torch.Tensor,
                   grid_thw: torch.Tensor, reward_ids: Sequence[int], video_id: int) -> torch.Tensor:
    """Raw rewards ``[B, 3]`` (VQ, MQ, TA), as ``Qwen2VLRewardModelBT.forward`` computes them."""
    inner = model.model
    embeds = inner.get_input_embeddings()(input_ids)
    visual = inner.visual
    features = visual(pixels.to(visual.get_dtype()), grid_thw=grid_thw).pooler_output
    slots = (input_ids == video_id).unsqueeze(-1).expand_as(embeds)
    embeds = embeds.masked_scatter(slots, features.to(embeds.dtype))
    # position_ids=None: sequential positions in every M-RoPE section, as the checkpoint was trained
    hidden = inner.language_model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for token in reward_ids:
        special |= input_ids == token
    picked = model.rm_head(hidden[special]).view(input_ids.shape[0], 3, -1)
    if picked.shape[-1] == 3:
        picked = picked.diagonal(dim1=1, dim2=2)
    return picked.reshape(input_ids.shape[0], -1)


def right_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask, as the reference's processor pads (``padding_side="right"``)."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, :len(seq)] = 1
    return ids, mask


# ------------------------------------------------------------------------------------------- tokenizer
def load_tokenizer(folders: Sequence[Path], base_folder: Path) -> Any:
    """The first of ``folders`` that exists (VideoReward's trainer saves the tokenizer, reward tokens included,
    to ``checkpoint-N/tokenizer``), else the base model's tokenizer plus the reward tokens, added as the
    reference's ``create_model_and_processor`` adds them (``add_special_tokens``: they get the next ids)."""
    from transformers import AutoTokenizer

    folder = next((f for f in folders if f.is_dir()), None)
    source = folder or base_folder
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True, padding_side="right")
    except Exception as exc:  # noqa: BLE001 - any unreadable tokenizer folder is one line
        raise VbenchPrefError(f"{source}: cannot read the tokenizer ({type(exc).__name__}: {_first_line(exc)})") from None
    if folder is None:
        tokenizer.add_special_tokens({"additional_special_tokens": list(REWARD_TOKENS)})
    return tokenizer


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


# ------------------------------------------------------------------------------------------- tiny checkpoint
def tiny_config(tokenizer: Any) -> dict[str, Any]:
    """A Qwen2-VL config a few kB large with the real patch, merge and temporal sizes and the tokenizer's ids."""
    ids = dict(zip(("bos", "eos", "vs", "ve", "vp", "img", "vid"), tokenizer.convert_tokens_to_ids(
        ["<|endoftext|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",
         "<|video_pad|>"])))
    return {
        **QWEN2_VL_2B,
        "bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "vision_start_token_id": ids["vs"],
        "vision_end_token_id": ids["ve"], "vision_token_id": ids["vp"], "image_token_id": ids["img"],
        "video_token_id": ids["vid"],
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "max_window_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": len(tokenizer),
        "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 2]},
        "vision_config": {**QWEN2_VL_2B["vision_config"], "depth": 2, "embed_dim": 32, "num_heads": 2,
                          "mlp_ratio": 2, "hidden_size": 32},
    }


def write_tiny_videoreward(folder: str | Path, seed: int = 0, step: int = 7,
                           settings: RewardSettings | None = None) -> dict[str, str]:
    """A random tiny VideoReward in the published layout under ``folder``; returns the ``-O`` options loading it.

    ``folder/VideoReward``: ``checkpoint-<step>/model.pth`` (the PEFT-wrapped state dict under transformers
    4.45 / peft 0.10 names, LoRA B non-zero so the merge matters) and ``checkpoint-<step>/tokenizer/`` (with
    the reward tokens), and ``model_config.json``. ``folder/base``: the base model's ``config.json``, ``preprocessor_config.json``,
    tokenizer files and chat template, with ``model.safetensors`` so transformers can load it too.
    """
    from vbench_pref.tiny_qwen import QWEN_VL_CHAT_TEMPLATE, build_tiny_qwen_tokenizer

    settings = settings or RewardSettings(lora_r=4, lora_alpha=8)
    root = Path(folder)
    reward, base = root / "VideoReward", root / "base"
    (reward / f"checkpoint-{step}").mkdir(parents=True, exist_ok=True)
    base.mkdir(parents=True, exist_ok=True)
    base_tokenizer = build_tiny_qwen_tokenizer()
    base_tokenizer.save_pretrained(base)
    (base / "chat_template.json").write_text(json.dumps({"chat_template": QWEN_VL_CHAT_TEMPLATE}), encoding="utf-8")
    (base / "preprocessor_config.json").write_text(json.dumps(QWEN2_VL_PREPROCESSOR, indent=2), encoding="utf-8")
    tokenizer = build_tiny_qwen_tokenizer(REWARD_TOKENS)
    tokenizer.save_pretrained(reward / f"checkpoint-{step}" / "tokenizer")  # where VideoAlign's trainer saves it
    config = tiny_config(tokenizer)
    base_config = {**config, "vocab_size": len(base_tokenizer)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        build_model(base_config, 1).save_pretrained(base)  # the base weights (the checkpoint replaces all of them)
        model = build_model(config, settings.output_dim)
        with torch.no_grad():
            model.rm_head.weight.normal_(0, 1.0)
        wrapped = wrap_lora(model, settings)
        with torch.no_grad():
            for name, param in wrapped.named_parameters():
                if "lora_" in name:
                    param.normal_(0, 0.2)
    state = {published_key(k): v.detach().clone().contiguous() for k, v in wrapped.state_dict().items()}
    torch.save(state, reward / f"checkpoint-{step}" / CHECKPOINT_FILE)
    # the flat 4.45-era layout the published base config has (written after save_pretrained's own)
    (base / "config.json").write_text(json.dumps(base_config, indent=2), encoding="utf-8")
    (reward / CONFIG_FILE).write_text(json.dumps(settings.to_dict(), indent=4), encoding="utf-8")
    return {"weights": str(reward), "base": str(base)}
