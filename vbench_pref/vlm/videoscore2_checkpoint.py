"""VideoScore2-layout checkpoints without the published weights: tiny test folders and random models.

A random Qwen2.5-VL never writes ``visual quality: N ...``, so nothing after generation would run. These
checkpoints are random except for a scripted answer: three added tokens for the labels
(``"visual quality: "``, ``"text-to-video alignment: "``, ``"physical/common-sense consistency: "``) and
embedding/``lm_head`` directions that make each step's most likely token follow a fixed chain
(end of the prompt -> label -> digit -> next label ... -> ``<|im_end|>``). Everything else stays random,
and the digits' logits keep a random, video-dependent part on top of their scripted margin, so the soft
scores differ from video to video while greedy decoding still writes the expected digits.

``write_tiny_checkpoint`` writes such a model in the published on-disk layout (config.json in the 4.x form,
sharded safetensors with the 4.x tensor names ``visual.*`` / ``model.*`` / ``lm_head.*``, generation,
preprocessor and chat-template configs, tokenizer files) and returns the ``-O`` options that load it;
``random_videoscore2`` builds one in memory at tiny or full size for ``weights=random``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from vbench_pref.atomic import atomic_write_text
from vbench_pref.tiny_qwen import QWEN_VL_CHAT_TEMPLATE, build_tiny_qwen_tokenizer
from vbench_pref.vlm.videoscore2 import DIMENSIONS, Sampling, VideoScore2, published_config, tiny_config

__all__ = ["LABEL_TOKENS", "tiny_tokenizer", "script_answers", "write_tiny_checkpoint", "random_videoscore2",
           "published_names", "TINY_ANSWERS"]

LABEL_TOKENS = tuple(label + " " for _, label in DIMENSIONS)
TINY_ANSWERS = (3, 4, 2)
# Qwen2.5-VL-Instruct's image/video processor settings (preprocessor_config.json)
PREPROCESSOR = {
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor",
}
# what the tiny checkpoints' generation_config.json holds: a repetition penalty and a top-p that cuts, so
# the reference's processors matter in tests (Qwen's own file sets top_k=1, which makes every soft score
# an integer)
TINY_GENERATION = {"repetition_penalty": 1.05, "top_p": 0.95, "temperature": 0.7, "do_sample": True}


def tiny_tokenizer() -> Any:
    """The tiny Qwen tokenizer (Qwen2's own split, so every transformers version reads the same tokens) with
    the three label strings as (non-special) added tokens."""
    tokenizer = build_tiny_qwen_tokenizer()
    tokenizer.add_tokens(list(LABEL_TOKENS))
    return tokenizer


def _token_ids(tokenizer: Any) -> dict[str, int]:
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ("bos_token_id", "<|endoftext|>"), ("eos_token_id", "<|im_end|>"), ("vision_start_token_id", "<|vision_start|>"),
        ("vision_end_token_id", "<|vision_end|>"), ("vision_token_id", "<|vision_pad|>"),
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"))}
    return ids


def _model_from(config: dict[str, Any], seed: int, dtype: torch.dtype = torch.float32) -> Any:
    """Random weights (seeded), built directly in ``dtype`` so a full-size model never exists in float32."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:  # the config classes edit nested dicts in place: give them a copy
        model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**json.loads(json.dumps(config))))
    finally:
        torch.set_default_dtype(default)
    return model.to(dtype).eval()


@torch.no_grad()
def script_answers(model: Any, tokenizer: Any, answers: tuple[int, int, int] = TINY_ANSWERS, seed: int = 0,
                   strength: float = 12.0, margins: tuple[float, float, float] = (2.0, 2.5, 2.0),
                   spread: float = 2.0, embed_scale: float = 1.0) -> None:
    """Wire the answer chain into the embeddings and ``lm_head`` (in place); see the module docstring.

    The chain's tokens get orthogonal embedding directions (the first hidden units); ``lm_head`` maps each
    direction to its successor with logit ``strength``, and at an answer step gives the other digits
    ``strength - margin``. The digits' rows also read the remaining hidden units with weights of scale
    ``spread``, the video-dependent part. ``embed_scale`` sets the chain embeddings' norm against what the
    random layers add to the residual stream (larger for deep models, whose random layers add more).
    """
    if len(set(answers)) != 3 or not all(1 <= a <= 5 for a in answers):
        raise ValueError(f"answers must be three different digits 1-5, got {answers}")
    ids = lambda text: tokenizer.convert_tokens_to_ids(text)  # noqa: E731 - a local shorthand
    newline = tokenizer.encode("\n", add_special_tokens=False)[0]
    digits = [tokenizer.encode(str(d), add_special_tokens=False)[0] for d in range(1, 6)]
    labels = [ids(t) for t in LABEL_TOKENS]
    answer = [digits[a - 1] for a in answers]
    chain = [newline, labels[0], answer[0], labels[1], answer[1], labels[2], answer[2], ids("<|im_end|>")]
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    hidden = embed.shape[1]
    width = len(chain) - 1
    if hidden < width + 4:
        raise ValueError(f"hidden size {hidden} is too small to script the answer")
    norm_gain = math.sqrt(hidden)  # RMSNorm of a unit vector
    embed[chain[:-1]] = 0.0
    head[:, :width] = 0.0
    for k, token in enumerate(chain[:-1]):
        embed[token, k] = embed_scale
        head[chain[k + 1], k] = strength / norm_gain
    for step, margin in zip((1, 3, 5), margins):  # the label steps, whose successor is a digit
        for digit in digits:
            if digit != chain[step + 1]:
                head[digit, step] = (strength - margin) / norm_gain
    generator = torch.Generator().manual_seed(seed + 1)
    head[digits, width:] = spread * torch.randn(len(digits), hidden - width, generator=generator) / norm_gain


def published_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers 5 tensor names -> the published checkpoint's (transformers 4.x: ``visual.*``, ``model.*``)."""
    renamed = {}
    for name, tensor in state.items():
        if name.startswith("model.visual."):
            name = name[len("model."):]
        elif name.startswith("model.language_model."):
            name = "model." + name[len("model.language_model."):]
        renamed[name] = tensor
    return renamed


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_tiny_checkpoint(folder: str | Path, answers: tuple[int, int, int] = TINY_ANSWERS, seed: int = 0,
                          generation: dict[str, Any] | None = None) -> dict[str, str]:
    """Write a tiny scripted VideoScore2 in the published layout; return the ``-O`` options that load it."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    token_ids = _token_ids(tokenizer)
    config = tiny_config(len(tokenizer), token_ids)
    model = _model_from(config, seed)
    script_answers(model, tokenizer, answers, seed)
    state = published_names({k: v.contiguous() for k, v in model.state_dict().items()})
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": [n for n in names if n.startswith("visual.")],
              "model-00002-of-00002.safetensors": [n for n in names if not n.startswith("visual.")]}
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(folder / shard), metadata={"format": "pt"})
        weight_map.update({k: shard for k in keys})
    total = sum(t.numel() * t.element_size() for t in state.values())
    _write_json(folder / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    _write_json(folder / "config.json", {**config, "transformers_version": "4.49.0"})
    _write_json(folder / "generation_config.json", {
        "bos_token_id": token_ids["bos_token_id"], "pad_token_id": token_ids["bos_token_id"],
        "eos_token_id": [token_ids["eos_token_id"], token_ids["bos_token_id"]],
        **(TINY_GENERATION if generation is None else generation), "transformers_version": "4.49.0",
    })
    _write_json(folder / "preprocessor_config.json", PREPROCESSOR)
    _write_json(folder / "chat_template.json", {"chat_template": QWEN_VL_CHAT_TEMPLATE})
    tokenizer.save_pretrained(folder)
    _published_tokenizer_config(folder / "tokenizer_config.json")
    return {"weights": str(folder)}


def _published_tokenizer_config(path: Path) -> None:
    """transformers 5 writes the special tokens as ``extra_special_tokens``; the published (4.x) files, which
    4.x cannot read otherwise, call them ``additional_special_tokens``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data.get("extra_special_tokens"), list):
        data["additional_special_tokens"] = data.pop("extra_special_tokens")
    data.pop("backend", None)
    _write_json(path, data)


def _processor(tokenizer: Any) -> Any:
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    settings = {k: v for k, v in PREPROCESSOR.items() if k not in ("image_processor_type", "processor_class")}
    return Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**settings),
                               video_processor=Qwen2VLVideoProcessor(**settings),
                               tokenizer=tokenizer, chat_template=QWEN_VL_CHAT_TEMPLATE)


def random_videoscore2(size: str, seed: int = 0, dtype: torch.dtype = torch.float32) -> VideoScore2:
    """``weights=random``: the architecture at ``tiny`` or ``full`` (published) size, random but for the scripted
    answer, with the tiny tokenizer's vocabulary; built on the CPU."""
    tokenizer = tiny_tokenizer()
    token_ids = _token_ids(tokenizer)
    if size == "tiny":
        config = tiny_config(len(tokenizer), token_ids)
    elif size == "full":
        config = published_config(len(tokenizer), token_ids)
    else:
        raise ValueError(f"random_size must be tiny or full, got {size!r}")
    model = _model_from(config, seed, dtype)
    # deep random stacks add a residual of norm ~sqrt(hidden) per layer: the chain must stand out of it
    script_answers(model, tokenizer, TINY_ANSWERS, seed, embed_scale=1.0 if size == "tiny" else 4.0 * config["hidden_size"])
    eos = [token_ids["eos_token_id"], token_ids["bos_token_id"]]
    sampling = Sampling(repetition_penalty=TINY_GENERATION["repetition_penalty"], top_k=50, top_p=TINY_GENERATION["top_p"])
    return VideoScore2(model, _processor(tokenizer), sampling, eos, token_ids["bos_token_id"])
