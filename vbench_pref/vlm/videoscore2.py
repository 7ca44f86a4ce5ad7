"""VideoScore2 (TIGER-Lab/VideoScore2): a Qwen2.5-VL-7B that writes its verdict, read back as three soft scores.

The reference (TIGER-AI-Lab/VideoScore2 ``vs2_inference.py``, transformers 4.53.2, qwen-vl-utils) asks the
model the query in ``data/videoscore2_query.txt`` about a video sampled at 2 fps, lets it write (a rationale,
then ``visual quality: N; text-to-video alignment: N, physical/common-sense consistency: N``), and for each
dimension:

1. finds the first ``<label>:`` in the generated text and the first digit after it, and the generated token
   that ends exactly at that digit (the decoded prefix equals the text up to the digit);
2. reads the distribution the sampler drew that token from -- ``generate``'s ``scores``, i.e. the logits
   after the checkpoint's generation-config processors (repetition penalty) and warpers (temperature 0.7,
   its top-k and top-p) -- at that step;
3. over the tokens ``"1"`` .. ``"5"``: ``best = argmax p``, soft score ``= best * max p / sum p``, rounded
   to 4 decimals.

A verdict that does not parse, or a label whose digit cannot be placed on a token, has no score: the
video fails with that reason (errors.csv), never a silent NaN.

Decoding. The reference samples (``do_sample=True``, temperature 0.7), so the same video scores differently
run to run. Here the default is greedy: each token is the most likely one under the same processors
(repetition penalty; temperature and truncation do not move the argmax), i.e. the mode of the reference's
sampler, and the soft scores are read from the distribution the reference's sampler would have used at
those steps (temperature 0.7 and the checkpoint's top-k/top-p). ``decoding="sample"`` samples as the
reference does, each video on its own with a seed derived from the run seed and the video, so a sampled
run is reproducible and independent of batching.

Frames: qwen-vl-utils' rule (floor to an even count at 2 fps between 4 and 768 frames; sides multiples of
28 within 128-768 merged patches per frame and 90% of a 128k-token video budget), resized once by the
shared engine; the processor only normalises them (no resize, no re-sampling). The reference passes
``fps=2.0`` to the processor whatever rate the frames were actually sampled at, so every temporal patch
spans ``2 / 2.0 = 1`` second of M-RoPE time (``second_per_grid_ts``), and positions follow the trained rule
(``vbench_pref.vlm.mrope``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Sequence

import numpy as np
import torch

from vbench_pref.errors import VbenchPrefError, WeightsMissingError
from vbench_pref.qwen_vision import QwenVideoRule
from vbench_pref.vlm.visual_token_batches import qwen_visual_tokens, token_batches

__all__ = [
    "VIDEOSCORE2_RULE", "DIMENSIONS", "REFERENCE_TEMPERATURE", "Sampling", "Verdict", "VideoScore2",
    "query_text", "parse_verdict", "answer_token_index", "soft_score", "published_config", "tiny_config",
    "missing_files",
]

# qwen-vl-utils 0.0.11-0.0.14 (fetch_video / smart_nframes): VIDEO_MIN_TOKEN_NUM 128, VIDEO_MAX_TOKEN_NUM 768,
# MODEL_SEQ_LEN 128000 * 0.9 as the whole video's pixel budget, floor to an even frame count.
VIDEOSCORE2_RULE = QwenVideoRule(
    fps=2.0, min_frames=4, max_frames=768, frame_factor=2, nframes_rounding="floor", factor=28,
    min_pixels=128 * 28 * 28, max_pixels=768 * 28 * 28, total_pixels=128000 * 28 * 28 * 0.9, max_ratio=200.0,
)
REFERENCE_TEMPERATURE = 0.7
REFERENCE_MAX_NEW_TOKENS = 1024
# (score name, the label the reference searches for)
DIMENSIONS = (
    ("visual_quality", "visual quality:"),
    ("text_alignment", "text-to-video alignment:"),
    ("physical_consistency", "physical/common-sense consistency:"),
)
_VERDICT = re.compile(
    r"visual quality:\s*(\d+).*?text-to-video alignment:\s*(\d+).*?physical/common-sense consistency:\s*(\d+)",
    re.DOTALL | re.IGNORECASE,
)
_SCORE_DIGITS = ("1", "2", "3", "4", "5")
# transformers 4.53's GenerationConfig defaults for the fields the reference's generate() reads
_PINNED_DEFAULTS = {"repetition_penalty": 1.0, "top_k": 50, "top_p": 1.0}
# generation-config fields that would add a processor the reference would apply and we do not reproduce
_UNSUPPORTED = {
    "min_p": None, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "no_repeat_ngram_size": 0,
    "encoder_repetition_penalty": 1.0, "bad_words_ids": None, "min_length": 0, "min_new_tokens": None,
    "suppress_tokens": None, "begin_suppress_tokens": None, "sequence_bias": None, "forced_bos_token_id": None,
    "forced_eos_token_id": None, "exponential_decay_length_penalty": None,
}


def query_text(prompt: str) -> str:
    """The user turn for one video's prompt (the template's indentation and spacing are part of it)."""
    source = resources.files("vbench_pref.vlm").joinpath("data/videoscore2_query.txt").read_text(encoding="utf-8")
    return Template(source).substitute(t2v_prompt=prompt)


# --------------------------------------------------------------------------------------------- the verdict
@dataclass
class Verdict:
    """What the model wrote about one video and the scores read from it (``error`` when there are none)."""

    text: str
    scores: dict[str, float] = field(default_factory=dict)
    hard: tuple[int, int, int] | None = None
    error: str | None = None


def parse_verdict(text: str) -> tuple[int, int, int] | None:
    """The three integers of the verdict line, as the reference's regular expression reads them."""
    match = _VERDICT.search(text)
    return None if match is None else (int(match.group(1)), int(match.group(2)), int(match.group(3)))


def answer_token_index(tokenizer: Any, token_ids: Sequence[int], label: str) -> int:
    """The generated token that ends at the first digit after ``label`` (case-insensitive); -1 if none does.

    The reference's rule: decode the whole generation, find the label and the first digit after it, then
    the first prefix of tokens that decodes to exactly the text up to and including that digit. A digit
    merged into a longer token ends no prefix, so it has no index.
    """
    text = tokenizer.decode(list(token_ids), skip_special_tokens=False)
    found = re.search(re.escape(label), text, flags=re.IGNORECASE)
    if found is None:
        return -1
    digit = re.search(r"\d", text[found.end():])
    if digit is None:
        return -1
    target = text[: found.end() + digit.start() + 1]
    for i in range(len(token_ids)):
        prefix = tokenizer.decode(list(token_ids[: i + 1]), skip_special_tokens=False)
        if prefix == target:
            return i
        if len(prefix) > len(target) and prefix.startswith(target):
            return -1  # later prefixes only extend this one
    return -1


def soft_score(scores: torch.Tensor, digit_ids: Sequence[int | None]) -> float | None:
    """``best * max p / sum p`` over the tokens "1".."5" of one processed-logits row, to 4 decimals.

    ``digit_ids[k]`` is the token of ``k + 1`` (None when that digit is not a single token: skipped, as the
    reference skips it). None when no digit has any probability (all cut by top-k/top-p).
    """
    logp = torch.log_softmax(scores.float(), dim=-1)
    pairs = [(value + 1, float(np.exp(logp[tid].item()))) for value, tid in enumerate(digit_ids) if tid is not None]
    if not pairs:
        return None
    probs = [p for _, p in pairs]
    total = sum(probs)
    if total <= 0:
        return None
    best_prob = max(probs)
    best = pairs[probs.index(best_prob)][0]
    return round(best * (best_prob / total), 4)


# --------------------------------------------------------------------------------------------- decoding
@dataclass(frozen=True)
class Sampling:
    """The processors of the reference's ``generate``: the checkpoint's generation config, temperature 0.7."""

    repetition_penalty: float = 1.0
    temperature: float = REFERENCE_TEMPERATURE
    top_k: int | None = 50
    top_p: float = 1.0

    @classmethod
    def from_folder(cls, folder: Path | None, temperature: float = REFERENCE_TEMPERATURE) -> "Sampling":
        """Read ``generation_config.json`` (transformers 4.53's defaults for absent fields)."""
        values: dict[str, Any] = dict(_PINNED_DEFAULTS)
        path = None if folder is None else folder / "generation_config.json"
        if path is not None and path.is_file():
            data = _read_json(path)
            odd = sorted(k for k, default in _UNSUPPORTED.items() if data.get(k, default) not in (default, [], {}))
            if odd:
                raise VbenchPrefError(
                    f"{path}: generation settings {', '.join(odd)} are not reproduced by this evaluator; remove them "
                    "from the file to score as the reference with the remaining settings"
                )
            for key in _PINNED_DEFAULTS:
                if data.get(key) is not None:
                    values[key] = data[key]
        top_k = values["top_k"]
        return cls(float(values["repetition_penalty"]), float(temperature), None if not top_k else int(top_k),
                   float(values["top_p"]))

    def processors(self) -> Any:
        """Processors that also apply when decoding greedily (the repetition penalty)."""
        from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

        steps = LogitsProcessorList()
        if self.repetition_penalty != 1.0:
            steps.append(RepetitionPenaltyLogitsProcessor(penalty=self.repetition_penalty))
        return steps

    def warpers(self) -> Any:
        """Temperature, top-k, top-p: in transformers' order, only the ones that change something."""
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        steps = LogitsProcessorList()
        if self.temperature != 1.0:
            steps.append(TemperatureLogitsWarper(self.temperature))
        if self.top_k:
            steps.append(TopKLogitsWarper(top_k=self.top_k, min_tokens_to_keep=1))
        if self.top_p < 1.0:
            steps.append(TopPLogitsWarper(top_p=self.top_p, min_tokens_to_keep=1))
        return steps

    def describe(self) -> dict[str, Any]:
        return {"repetition_penalty": self.repetition_penalty, "temperature": self.temperature,
                "top_k": self.top_k, "top_p": self.top_p}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VbenchPrefError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise VbenchPrefError(f"{path}: expected a JSON object")
    return data


# --------------------------------------------------------------------------------------------- the model
MODEL_FILES = ("config.json", "preprocessor_config.json", "tokenizer_config.json")


def missing_files(folder: Path) -> list[str]:
    """Files a VideoScore2 folder lacks (configs, tokenizer, every shard its index names)."""
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if not (folder / "tokenizer.json").is_file() and not (folder / "vocab.json").is_file():
        missing.append("tokenizer.json")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        for shard in shards:
            if "/" in shard or "\\" in shard or shard.startswith("."):
                raise VbenchPrefError(f"{index}: shard name {shard!r} leaves the model folder")
        missing += [s for s in shards if not (folder / s).is_file()]
    elif not (folder / "model.safetensors").is_file():
        missing.append("model.safetensors.index.json or model.safetensors")
    return missing


class VideoScore2:
    """A loaded VideoScore2 model and processor, scoring frames already sampled and sized by the shared rule."""

    def __init__(self, model: Any, processor: Any, sampling: Sampling, eos_ids: list[int], pad_id: int) -> None:
        from vbench_pref.vlm.mrope import use_trained_rope

        self.model = model.eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.sampling = sampling
        self.eos_ids = eos_ids
        self.pad_id = pad_id
        use_trained_rope(self.model)
        self.tokenizer.padding_side = "left"
        self.digit_ids = [_single_token(self.tokenizer, d) for d in _SCORE_DIGITS]
        video = processor.video_processor
        self.patch, self.merge, self.temporal = video.patch_size, video.merge_size, video.temporal_patch_size
        size = getattr(video, "size", None)
        self.processor_pixels = (getattr(video, "min_pixels", None) or getattr(size, "shortest_edge", None),
                                 getattr(video, "max_pixels", None) or getattr(size, "longest_edge", None))

    # ---- loading
    @classmethod
    def load(cls, folder: Path, dtype: torch.dtype = torch.float32, temperature: float = REFERENCE_TEMPERATURE,
             attn_implementation: str = "sdpa") -> "VideoScore2":
        """Build from a folder in the published layout (safetensors only, no remote code), on the CPU."""
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        lacking = missing_files(folder)
        if lacking:
            raise WeightsMissingError(f"videoscore2: {folder} lacks {', '.join(lacking[:4])}"
                                      + (f" and {len(lacking) - 4} more" if len(lacking) > 4 else ""))
        sampling = Sampling.from_folder(folder, temperature)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            str(folder), dtype=dtype, attn_implementation=attn_implementation, use_safetensors=True,
            local_files_only=True, trust_remote_code=False,
        )
        processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        eos, pad = _stop_tokens(folder, model.config, processor.tokenizer)
        return cls(model, processor, sampling, eos, pad)

    def to(self, device: torch.device) -> None:
        self.model.to(device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---- inputs
    def visual_tokens(self, frames: torch.Tensor) -> int:
        t, h, w = frames.shape[0], frames.shape[1], frames.shape[2]
        return qwen_visual_tokens(t, h, w, self.patch, self.merge, self.temporal)

    def inputs(self, videos: Sequence[torch.Tensor], prompts: Sequence[str], fps: float) -> Any:
        """Tokenised chat turns and normalised frames for a left-padded batch (frames: T x H x W x 3 uint8)."""
        texts = []
        for prompt in prompts:
            messages = [{"role": "user", "content": [
                {"type": "video", "video": "frames", "fps": fps},
                {"type": "text", "text": query_text(prompt)},
            ]}]
            texts.append(self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        frames = [v.permute(0, 3, 1, 2).contiguous() for v in videos]
        for clip in frames:
            self._check_size(clip.shape[-2], clip.shape[-1])
        batch = self.processor(
            text=texts, videos=frames, padding=True, return_tensors="pt",
            videos_kwargs={"do_resize": False, "do_sample_frames": False, "cap_pixels_per_frame": False},
        )
        # The reference hands the processor fps=2.0 whatever rate the frames were sampled at (transformers
        # 4.53 turns that into temporal_patch_size / fps); transformers 5 would read a rate from metadata.
        batch["second_per_grid_ts"] = torch.full((len(frames),), self.temporal / fps, dtype=torch.float32)
        return batch

    def _check_size(self, height: int, width: int) -> None:
        """The reference's processor would resize frames outside its own pixel range; ours never does."""
        low, high = self.processor_pixels
        pixels = height * width
        if (low is not None and pixels < low) or (high is not None and pixels > high):
            raise VbenchPrefError(
                f"videoscore2: {width}x{height} frames are outside the checkpoint processor's pixel range "
                f"[{low}, {high}]; the reference would resize them a second time, which this evaluator does not do"
            )

    # ---- scoring
    def score(self, videos: Sequence[torch.Tensor], prompts: Sequence[str], fps: float, *, decoding: str = "greedy",
              seeds: Sequence[int] | None = None, max_new_tokens: int = REFERENCE_MAX_NEW_TOKENS,
              token_budget: int = 32768, softening: str = "reference") -> list[Verdict]:
        """One verdict per video; greedy videos share forward passes up to ``token_budget`` visual tokens."""
        if decoding == "sample":
            if seeds is None:
                raise ValueError("decoding='sample' needs one seed per video")
            return [self._generate([v], [p], fps, max_new_tokens, softening, seed=s)[0]
                    for v, p, s in zip(videos, prompts, seeds)]
        verdicts: list[Verdict | None] = [None] * len(videos)
        for group in token_batches([self.visual_tokens(v) for v in videos], token_budget):
            results = self._generate([videos[i] for i in group], [prompts[i] for i in group], fps, max_new_tokens, softening)
            for i, verdict in zip(group, results):
                verdicts[i] = verdict
        return [v for v in verdicts if v is not None]

    @torch.inference_mode()
    def _generate(self, videos: Sequence[torch.Tensor], prompts: Sequence[str], fps: float, max_new_tokens: int,
                  softening: str, seed: int | None = None) -> list[Verdict]:
        batch = self.inputs(videos, prompts, fps).to(self.device)
        options: dict[str, Any] = {
            "max_new_tokens": max_new_tokens, "eos_token_id": self.eos_ids, "pad_token_id": self.pad_id,
            "output_logits": True, "return_dict_in_generate": True, "use_cache": True,
        }
        if self.sampling.repetition_penalty != 1.0:  # over each video's own tokens, never its left padding
            padding = (batch["attention_mask"] == 0).sum(dim=1)
            options["logits_processor"] = [UnpaddedRepetitionPenalty(self.sampling.repetition_penalty, padding)]
        if seed is None:
            options.update(do_sample=False, temperature=None, top_k=None, top_p=None)
            output = self.model.generate(**batch, **options)
        else:
            options.update(do_sample=True, temperature=self.sampling.temperature, top_k=self.sampling.top_k or 0,
                           top_p=self.sampling.top_p)
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                torch.manual_seed(seed)
                output = self.model.generate(**batch, **options)
        prompt_length = batch["input_ids"].shape[1]
        verdicts = []
        for row in range(len(videos)):
            prompt_ids = batch["input_ids"][row][batch["attention_mask"][row].bool()]
            generated = _until_stop(output.sequences[row, prompt_length:].tolist(), self.eos_ids)
            logits = [step[row] for step in output.logits[: len(generated)]]
            verdicts.append(self._read(prompt_ids, generated, logits, softening))
        return verdicts

    def _read(self, prompt_ids: torch.Tensor, generated: list[int], logits: list[torch.Tensor], softening: str) -> Verdict:
        text = self.tokenizer.decode(generated, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        hard = parse_verdict(text)
        if hard is None:
            return Verdict(text, error=f"the verdict does not parse: {_excerpt(text)}")
        scores: dict[str, float] = {}
        for name, label in DIMENSIONS:
            index = answer_token_index(self.tokenizer, generated, label)
            if index < 0:
                return Verdict(text, hard=hard, error=f"no generated token ends at the digit after '{label}': {_excerpt(text)}")
            row = self.distribution(prompt_ids, generated[:index], logits[index], softening)
            value = soft_score(row, self.digit_ids)
            if value is None:
                return Verdict(text, hard=hard, error=f"no probability on 1-5 at the answer to '{label}': {_excerpt(text)}")
            scores[name] = value
        return Verdict(text, scores=scores, hard=hard)

    def distribution(self, prompt_ids: torch.Tensor, before: list[int], raw: torch.Tensor, softening: str) -> torch.Tensor:
        """The logits row the soft score is read from at one generated step.

        ``reference``: the reference's sampler input -- repetition penalty over the prompt and the tokens
        before this one, then temperature, top-k, top-p. ``logits``: the model's raw logits (softmax at 1).
        """
        row = raw.float().unsqueeze(0)
        if softening == "logits":
            return row[0]
        ids = torch.cat([prompt_ids.to(row.device), torch.tensor(before, dtype=torch.long, device=row.device)]).unsqueeze(0)
        row = self.sampling.processors()(ids, row)
        row = self.sampling.warpers()(ids, row)
        return row[0]


class UnpaddedRepetitionPenalty:
    """transformers' repetition penalty over each row's tokens after its left padding.

    The stock processor penalises every id in the row, the padding's too, so a padded row's pad token
    (Qwen's ``<|endoftext|>``, also a stop token) would score lower than in the same video decoded alone.
    Pad positions are pointed at the row's first real token, which the penalty already covers.
    """

    def __init__(self, penalty: float, padding: torch.Tensor) -> None:
        from transformers import RepetitionPenaltyLogitsProcessor

        self.stock = RepetitionPenaltyLogitsProcessor(penalty=penalty)
        self.padding = padding

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        padding = self.padding.to(input_ids.device)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        first_real = input_ids.gather(1, padding.unsqueeze(1))
        return self.stock(torch.where(positions < padding.unsqueeze(1), first_real, input_ids), scores)


def _single_token(tokenizer: Any, text: str) -> int | None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    return ids[0] if len(ids) == 1 else None


def _until_stop(tokens: list[int], eos_ids: list[int]) -> list[int]:
    """Generated tokens up to and including the first stop token (padding after it is dropped)."""
    for i, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[: i + 1]
    return tokens


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else "…" + flat[-limit:])


def _stop_tokens(folder: Path | None, config: Any, tokenizer: Any) -> tuple[list[int], int]:
    """EOS ids and pad id: the checkpoint's generation config, else its model config and tokenizer."""
    data = _read_json(folder / "generation_config.json") if folder is not None and (folder / "generation_config.json").is_file() else {}
    eos = data.get("eos_token_id", getattr(config, "eos_token_id", None) or tokenizer.eos_token_id)
    eos_ids = [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
    if not eos_ids:
        raise VbenchPrefError("videoscore2: the checkpoint names no end-of-sequence token")
    pad = data.get("pad_token_id", tokenizer.pad_token_id)
    return eos_ids, int(pad if pad is not None else eos_ids[0])


# --------------------------------------------------------------------------------------------- configs
def published_config(vocab_size: int = 152064, token_ids: dict[str, int] | None = None) -> dict[str, Any]:
    """config.json of a Qwen2.5-VL-7B-Instruct-architecture checkpoint (VideoScore2's), in the published form."""
    ids = token_ids or {"bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652,
                        "vision_end_token_id": 151653, "vision_token_id": 151654, "image_token_id": 151655,
                        "video_token_id": 151656}
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
        "attention_dropout": 0.0, "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02,
        "intermediate_size": 18944, "max_position_embeddings": 128000, "max_window_layers": 28,
        "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        "sliding_window": 32768, "use_sliding_window": False, "tie_word_embeddings": False, "use_cache": True,
        "torch_dtype": "bfloat16", "vocab_size": vocab_size, **ids,
        "vision_config": {
            "depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
            "in_chans": 3, "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2,
            "spatial_patch_size": 14, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
            "tokens_per_second": 2, "temporal_patch_size": 2,
        },
    }


def tiny_config(vocab_size: int, token_ids: dict[str, int]) -> dict[str, Any]:
    """The same architecture at test size (patch 14, merge 2, temporal patch 2: the real frame rule applies)."""
    config = published_config(vocab_size, token_ids)
    config.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, max_window_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, torch_dtype="float32",
                  rope_scaling={"type": "mrope", "mrope_section": [4, 2, 2]})
    config["vision_config"].update(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                                   fullatt_block_indexes=[1])
    return config
