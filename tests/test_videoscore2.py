"""videoscore2: a tiny scripted Qwen2.5-VL in VideoScore2's published layout, scored through the CLI and
recomputed independently (the model called step by step through transformers, positions, processors and the
1-5 softening written out here); the reference's parsing rules; batching; errors; the full-size tensor list."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vbench_pref import synthetic
from vbench_pref.evaluator import VideoSample
from vbench_pref.scoring import score_isolated
from vbench_pref.video import FrameSpec, decode_video, write_video
from vbench_pref.vlm.videoscore2 import (
    DIMENSIONS, VIDEOSCORE2_RULE, VideoScore2, answer_token_index, parse_verdict, query_text, soft_score,
)
from vbench_pref.vlm.videoscore2_checkpoint import (
    LABEL_TOKENS, TINY_ANSWERS, published_names, tiny_tokenizer, write_tiny_checkpoint,
)

DATA = Path(__file__).parent / "data"
SPEC = FrameSpec(sampling="qwen", resize="qwen", qwen=VIDEOSCORE2_RULE, pixels="uint8")
# name: (frames, height, width, fps): under 2 s; 7.5 s (its time ids outrun the 12 x 12 grid: the trained
# position rule matters); odd sizes
VIDEOS = {"short": (6, 48, 64, 8), "long": (60, 40, 40, 8), "odd": (9, 37, 61, 12)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videoscore2")
    options = write_tiny_checkpoint(root / "VideoScore2")
    videos = root / "videos"
    videos.mkdir()
    rows = []
    for seed, (name, (t, h, w, fps)) in enumerate(VIDEOS.items()):
        write_video(videos / f"{name}.mp4", synthetic.smooth_motion(t, h, w, seed, velocity=(1.0 + seed, 2.0)), fps=fps,
                    lossless=True)
        rows.append(f"{name}.mp4,a {name} clip of shapes number {seed}")
    (root / "prompts.csv").write_text("video,prompt\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return {"root": root, "ckpt": Path(options["weights"]), "videos": videos, "prompts": root / "prompts.csv"}


def _prompts(tiny: dict[str, Path]) -> dict[str, str]:
    return {r["video"]: r["prompt"] for r in csv.DictReader(tiny["prompts"].open(encoding="utf-8"))}


# ------------------------------------------------------------------ the independent computation
def _positions(token_types: list[int], grid: tuple[int, int, int], seconds_per_grid: float) -> torch.Tensor:
    """Trained M-RoPE ids (3 x L), one token at a time: text +1; the video block (t, h, w) from its start;
    the text after it from one past the largest id so far."""
    t_len, h_len, w_len = grid[0], grid[1] // 2, grid[2] // 2
    ids: list[tuple[int, int, int]] = []
    i = 0
    while i < len(token_types):
        base = max(max(p) for p in ids) + 1 if ids else 0
        if token_types[i] == 0:
            ids.append((base, base, base))
            i += 1
            continue
        for t in range(t_len):
            for h in range(h_len):
                for w in range(w_len):
                    ids.append((base + int(t * 2 * seconds_per_grid), base + h, base + w))
        i += t_len * h_len * w_len
    return torch.tensor(ids).T


def _processed(raw: torch.Tensor, seen: list[int], penalty: float, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Repetition penalty, temperature, top-k, top-p, written out."""
    logits = raw.double().clone()
    for token in set(seen):
        logits[token] = logits[token] / penalty if logits[token] > 0 else logits[token] * penalty
    logits = logits / temperature
    kth = torch.sort(logits, descending=True).values[top_k - 1]
    logits[logits < kth] = -math.inf
    order = torch.argsort(logits)  # ascending
    cumulative = torch.softmax(logits[order], dim=0).cumsum(0)
    drop = order[cumulative <= 1 - top_p]
    logits[drop] = -math.inf
    return logits


def _by_hand(ckpt: Path, frames: torch.Tensor, prompt: str) -> tuple[str, list[float]]:
    """Greedy decoding and the three soft scores, recomputed from the model's forward pass."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(ckpt), dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(str(ckpt))
    tok = processor.tokenizer
    generation = json.loads((ckpt / "generation_config.json").read_text())
    template = (Path(__file__).parents[1] / "vbench_pref/vlm/data/videoscore2_query.txt").read_text(encoding="utf-8")
    user = template.replace("$t2v_prompt", prompt)
    text = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            f"<|vision_start|><|video_pad|><|vision_end|>{user}<|im_end|>\n<|im_start|>assistant\n")
    video = processor.video_processor(videos=[frames.permute(0, 3, 1, 2)], do_resize=False, return_tensors="pt")
    grid = tuple(video["video_grid_thw"][0].tolist())
    n_video = grid[0] * grid[1] * grid[2] // 4
    text = text.replace("<|video_pad|>", "<|video_pad|>" * n_video)
    ids = tok(text, return_tensors="pt")["input_ids"][0].tolist()
    video_id = tok.convert_tokens_to_ids("<|video_pad|>")
    types = [2 if i == video_id else 0 for i in ids]
    stops = set(generation["eos_token_id"])
    digits = [tok.convert_tokens_to_ids(str(d)) for d in range(1, 6)]
    generated: list[int] = []
    raw_steps: list[torch.Tensor] = []
    with torch.no_grad():
        for _ in range(40):
            seq = ids + generated
            positions = _positions(types + [0] * len(generated), grid, 2 / 2.0).unsqueeze(1)
            out = model(input_ids=torch.tensor([seq]), pixel_values_videos=video["pixel_values_videos"],
                        video_grid_thw=video["video_grid_thw"], position_ids=positions)
            raw = out.logits[0, -1].float()
            penalised = _processed(raw, seq, generation["repetition_penalty"], 1.0, raw.numel(), 1.0)
            token = int(torch.argmax(penalised))
            raw_steps.append(raw)
            generated.append(token)
            if token in stops:
                break
    labels = [tok.convert_tokens_to_ids(t) for t in LABEL_TOKENS]
    scores = []
    for label in labels:
        step = generated.index(label) + 1  # the scripted chain writes each digit right after its label
        row = _processed(raw_steps[step], ids + generated[:step], generation["repetition_penalty"],
                         generation["temperature"], 50, generation["top_p"])
        probs = torch.softmax(row, dim=0)[digits].tolist()
        best = int(np.argmax(probs))
        scores.append(round((best + 1) * probs[best] / sum(probs), 4))
    return tok.decode(generated, skip_special_tokens=True), scores


def test_cli_scores_match_an_independent_computation(tiny, run_cli) -> None:
    result = run_cli(tiny["root"], "score", "--videos", str(tiny["videos"]), "--prompts", str(tiny["prompts"]),
                     "-e", "videoscore2", "-O", f"videoscore2.weights={tiny['ckpt']}", "--out", str(tiny["root"] / "run"))
    assert result.returncode == 0, result.stderr
    rows = {r["video"]: r for r in csv.DictReader((tiny["root"] / "run" / "scores.csv").open(encoding="utf-8"))}
    prompts = _prompts(tiny)
    spreads = []
    for name in VIDEOS:
        frames, _ = decode_video(tiny["videos"] / f"{name}.mp4", [SPEC]).view(SPEC)
        text, expected = _by_hand(tiny["ckpt"], frames, prompts[f"{name}.mp4"])
        assert parse_verdict(text) == TINY_ANSWERS, text
        got = [float(rows[f"{name}.mp4"][f"videoscore2.{score}"]) for score, _ in DIMENSIONS]
        assert got == pytest.approx(expected, abs=1e-5), name
        assert all(1.0 <= g <= 5.0 for g in got)
        spreads.append(got)
    # the scores depend on the video (not only on the scripted answer)
    assert len({tuple(s) for s in spreads}) == len(VIDEOS)


@pytest.fixture(scope="module")
def scorer(tiny) -> VideoScore2:
    return VideoScore2.load(tiny["ckpt"])


def _frames(tiny: dict[str, Path]) -> tuple[list[torch.Tensor], list[str]]:
    prompts = _prompts(tiny)
    frames = [decode_video(tiny["videos"] / f"{n}.mp4", [SPEC]).view(SPEC)[0] for n in VIDEOS]
    return frames, [prompts[f"{n}.mp4"] for n in VIDEOS]


def test_batched_generation_equals_one_by_one(tiny, scorer) -> None:
    frames, prompts = _frames(tiny)
    together = scorer.score(frames, prompts, 2.0, token_budget=10**6, max_new_tokens=40)
    alone = scorer.score(frames, prompts, 2.0, token_budget=1, max_new_tokens=40)
    assert len({tuple(f.shape) for f in frames}) == len(frames)  # different lengths: left padding is exercised
    for a, b in zip(together, alone):
        assert a.error is None and b.error is None
        assert a.text == b.text
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_trained_positions_differ_from_transformers_5_only_for_long_videos(tiny, scorer) -> None:
    from vbench_pref.vlm.mrope import trained_rope_index

    frames, prompts = _frames(tiny)
    for clip, prompt, name in zip(frames, prompts, VIDEOS):
        batch = scorer.inputs([clip], [prompt], 2.0)
        mine, _ = trained_rope_index(batch["input_ids"], batch["mm_token_type_ids"], None, batch["video_grid_thw"],
                                     batch["second_per_grid_ts"], batch["attention_mask"], 2, 2)
        types = batch["mm_token_type_ids"][0].tolist()
        assert torch.equal(mine[:, 0], _positions(types, tuple(batch["video_grid_thw"][0].tolist()), 1.0)), name
        stock = type(scorer.model.model).get_rope_index(
            scorer.model.model, batch["input_ids"], batch["mm_token_type_ids"], video_grid_thw=batch["video_grid_thw"],
            second_per_grid_ts=batch["second_per_grid_ts"], attention_mask=batch["attention_mask"])[0]
        t, h, w = batch["video_grid_thw"][0].tolist()
        assert torch.equal(stock, mine) == ((t - 1) * 2 < max(h, w) // 2), name


def test_sampling_is_seeded_per_video(tiny, scorer) -> None:
    frames, prompts = _frames(tiny)
    first = scorer.score(frames[:2], prompts[:2], 2.0, decoding="sample", seeds=[1, 2], max_new_tokens=12)
    again = scorer.score(frames[:2][::-1], prompts[:2][::-1], 2.0, decoding="sample", seeds=[2, 1], max_new_tokens=12)
    assert [v.text for v in first] == [v.text for v in again[::-1]]


def test_a_verdict_that_does_not_parse_fails_its_video_after_one_generation(tiny) -> None:
    from vbench_pref.evaluators.videoscore2 import VideoScore2Evaluator

    evaluator = VideoScore2Evaluator(weights=str(tiny["ckpt"]), max_new_tokens=3)
    evaluator.load("cpu")
    calls = []
    original = evaluator.scorer._generate
    evaluator.scorer._generate = lambda *a, **k: calls.append(1) or original(*a, **k)
    frames, prompts = _frames(tiny)
    batch = [VideoSample(f"{n}.mp4", f, np.zeros(len(f)), 8.0, p) for n, f, p in zip(VIDEOS, frames, prompts)]
    records = score_isolated(evaluator, batch)
    assert len(calls) == 1  # the one-by-one retry reuses the batch's verdicts
    assert [r.error for r in records] == ["videoscore2: the verdict does not parse: 'visual quality: 3text-to-video alignment:'"] * 3


def test_reference_rules_for_parsing_token_positions_and_softening() -> None:
    tok = tiny_tokenizer()
    text = "<think>fine</think> Visual Quality: 4; text-to-video alignment:\n 2, physical/common-sense consistency: 5"
    ids = tok.encode(text, add_special_tokens=False)
    assert parse_verdict(text) == (4, 2, 5)
    index = answer_token_index(tok, ids, "visual quality:")
    assert tok.decode(ids[: index + 1]).endswith("Visual Quality: 4")
    assert tok.decode([ids[index]]) == "4"
    label = tok.encode("visual quality:", add_special_tokens=False)
    tok.add_tokens([" 3", " 10"])  # tokens that hold a space and digits, as other vocabularies have them
    spaced = [*label, tok.convert_tokens_to_ids(" 3")]
    assert answer_token_index(tok, spaced, "visual quality:") == len(label)  # a token that ends at the digit
    merged = [*label, tok.convert_tokens_to_ids(" 10")]
    assert answer_token_index(tok, merged, "visual quality:") == -1  # "1" ends no token prefix of its own
    assert parse_verdict("visual quality: 4; text-to-video alignment: two") is None
    row = torch.full((10,), -math.inf)
    row[[1, 2, 3]] = torch.tensor([0.0, math.log(3.0), math.log(3.0)])  # "1" p=1, "2" p=3, "3" p=3 (a tie)
    assert soft_score(row, [1, 2, 3, None, 9]) == round(2 * 3 / 7, 4)  # the first maximum; "4" skipped
    assert soft_score(torch.full((10,), -math.inf).index_fill(0, torch.tensor([0]), 0.0), [1, 2, 3, 4, 5]) is None


def test_query_is_the_reference_template_verbatim() -> None:
    query = query_text("a cat $1 {x}")
    assert query.startswith("\n    You are an expert for evaluating AI-generated videos from three dimensions:\n")
    assert "(1) visual quality \u2013 clarity, smoothness, artifacts;\n" in query
    assert "    Video prompt: a cat $1 {x}\n\n" in query
    assert query.endswith("    visual quality: <v_score>; \n    text-to-video alignment: <t_score>, \n"
                          "    physical/common-sense consistency: <p_score>\n    ")
    source = json.loads((Path(__file__).parents[1] / "vbench_pref/vlm/data/videoscore2_query.source.json").read_text())
    assert source["repository"] == "TIGER-AI-Lab/VideoScore2" and len(source["commit"]) == 40


def test_full_size_architecture_has_the_published_tensors() -> None:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from vbench_pref.vlm.videoscore2 import published_config

    expected = json.loads((DATA / "videoscore2_tensors.json").read_text())["tensors"]
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**published_config()))
    got = {k: list(v.shape) for k, v in published_names(model.state_dict()).items()}
    assert got == expected
    assert sum(math.prod(s) for s in expected.values()) == 8_292_166_656


def test_missing_or_incomplete_weights_are_one_line(tiny, tmp_path, run_cli) -> None:
    from vbench_pref.evaluators.videoscore2 import VideoScore2Evaluator

    partial = tmp_path / "partial"
    partial.mkdir()
    for path in tiny["ckpt"].iterdir():
        if path.name != "model-00002-of-00002.safetensors":
            (partial / path.name).write_bytes(path.read_bytes())
    message = VideoScore2Evaluator(weights=str(partial)).missing_weights()
    assert message is not None and "model-00002-of-00002.safetensors" in message and "\n" not in message
    result = run_cli(tmp_path, "score", "--videos", str(tiny["videos"]), "--prompts", str(tiny["prompts"]),
                     "-e", "videoscore2", "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "vbench-pref weights pull videoscore2" in lines[0], result.stderr


def test_random_weights_score_and_are_labelled(tiny) -> None:
    from vbench_pref.evaluators.videoscore2 import VideoScore2Evaluator

    evaluator = VideoScore2Evaluator(weights="random", random_size="tiny", max_new_tokens=40)
    assert evaluator.missing_weights() is None and evaluator.required_weights() == ()
    evaluator.load("cpu")
    frames, prompts = _frames(tiny)
    values = evaluator.score([VideoSample("short.mp4", frames[0], np.zeros(4), 8.0, prompts[0])])
    assert all(1.0 <= float(values[name][0]) <= 5.0 for name, _ in DIMENSIONS)
    assert evaluator.uses_random_weights and evaluator.provenance()["random_weights"] is True


def test_repetition_penalty_ignores_left_padding() -> None:
    from transformers import RepetitionPenaltyLogitsProcessor

    from vbench_pref.vlm.videoscore2 import UnpaddedRepetitionPenalty

    scores = torch.randn(2, 12, generator=torch.Generator().manual_seed(0))
    rows = torch.tensor([[0, 0, 5, 7, 5], [3, 4, 5, 7, 9]])  # row 0: two pads (id 0), row 1 none
    got = UnpaddedRepetitionPenalty(1.3, torch.tensor([2, 0]))(rows, scores.clone())
    stock = RepetitionPenaltyLogitsProcessor(penalty=1.3)
    assert torch.equal(got[0], stock(rows[:1, 2:], scores[:1].clone())[0])  # as the video alone
    assert torch.equal(got[1], stock(rows[1:], scores[1:].clone())[0])
    assert not torch.equal(got[0], stock(rows[:1], scores[:1].clone())[0])  # the stock one penalises the pad id
