"""Tiny Qwen-VL tokenizers for tests and CPU benchmarks: the real special tokens and chat template, a toy vocabulary.

The Qwen-VL reward models' behaviour depends on a handful of special tokens (``<|im_start|>``,
``<|vision_start|>``, ``<|video_pad|>``...) and on the chat template that places the video and the text;
the rest of the 151k-token vocabulary only changes which ids ordinary words get. A byte-level BPE trained
on a few sentences, with those special tokens at the same positions relative to each other, is enough to
exercise the real loading and scoring code without downloading the real tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["QWEN_VL_CHAT_TEMPLATE", "QWEN_VL_SPECIAL_TOKENS", "build_tiny_qwen_tokenizer"]

# Qwen2-VL-Instruct's chat template (identical in Qwen2.5-VL-Instruct): a default system turn, the vision
# placeholders where the content items are, and the assistant turn opened by add_generation_prompt.
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# In Qwen's order (ids 151643... in the real vocabulary; here they follow the toy vocabulary).
QWEN_VL_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)

QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

_CORPUS = (
    "You are a helpful assistant. Please evaluate the visual quality, motion quality and text alignment "
    "of a generated video: a cat walks on the grass, the camera pans left, a red car drives in the rain. "
    "Rate from 0 to 10 or from 1 to 5. visual quality: 3; text-to-video alignment: 4, "
    "physical/common-sense consistency: 5. 0 1 2 3 4 5 6 7 8 9 10"
)


def build_tiny_qwen_tokenizer(extra_special_tokens: tuple[str, ...] = (), vocab_size: int = 400) -> Any:
    """A ``Qwen2TokenizerFast`` with Qwen's special tokens and chat template over a toy byte-level BPE.

    ``extra_special_tokens`` are added after Qwen's (as VideoAlign adds its reward tokens).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    core = Tokenizer(models.BPE())
    # Qwen2's own pre-tokenizer (its tokenizer.json): the split regex (digits one by one), then byte-level.
    # transformers >= 5 imposes it on any Qwen2 tokenizer it loads, older versions read it from the file,
    # so with it the tiny tokenizer splits text the same way whichever version loads it.
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    core.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        errors="replace",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_VL_SPECIAL_TOKENS)})
    if extra_special_tokens:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": list(extra_special_tokens)}, replace_extra_special_tokens=False
        )
    tokenizer.chat_template = QWEN_VL_CHAT_TEMPLATE
    return tokenizer


def save_tiny_qwen_tokenizer(folder: str | Path, extra_special_tokens: tuple[str, ...] = ()) -> Path:
    """Write the tiny tokenizer in the Hugging Face layout (tokenizer.json, tokenizer_config.json...)."""
    folder = Path(folder)
    build_tiny_qwen_tokenizer(extra_special_tokens).save_pretrained(folder)
    return folder
