"""VideoAlign (VideoReward) on a tiny Qwen2-VL reward model saved in the published layout.

The expected numbers come from an independent computation on the same frames: the plain transformers
Qwen2-VL classes, the LoRA merged by hand (W + alpha/r B A), the video patches from transformers' own
video processor, sequential positions passed explicitly, the head read at the reward tokens by hand.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vbench_pref.vlm import videoreward as vr
from vbench_pref.errors import VbenchPrefError
from vbench_pref.vlm.visual_token_batches import token_batches
from vbench_pref.registry import get
from vbench_pref.scoring import build_evaluators
from vbench_pref.synthetic import smooth_motion
from vbench_pref.video import decode_video, write_video

DATA = Path(__file__).parent / "data"
PROMPTS = {"small.mp4": "a cat walks on the grass", "odd.mp4": "a red car drives in the rain, the camera pans left"}
MEANS, STDS = (3.6757, 1.1646, 2.8105), (2.2476, 1.3811, 2.5121)
TOL = 1e-5


# in-process loads keep their digest memos and hub look-ups in the test's folder
pytestmark = pytest.mark.usefixtures("own_caches")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videoreward")
    options = vr.write_tiny_videoreward(root / "model", seed=3)
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "small.mp4", smooth_motion(9, 32, 48, 0), fps=8, lossless=True)
    write_video(videos / "odd.mp4", smooth_motion(21, 37, 29, 1), fps=12, lossless=True)
    (videos / "prompts.jsonl").write_text("".join(json.dumps({"video": v, "prompt": p}) + "\n" for v, p in PROMPTS.items()))
    return {"weights": Path(options["weights"]), "base": Path(options["base"]), "videos": videos}


def _hand_model(weights: Path, base: Path):
    """Plain Qwen2VLForConditionalGeneration with the checkpoint's weights, LoRA merged by hand; the rm_head."""
    from transformers import AutoTokenizer, Qwen2VLConfig, Qwen2VLForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(weights / "checkpoint-7" / "tokenizer")
    settings = json.loads((weights / "model_config.json").read_text())["peft_lora_config"]
    scale = settings["lora_alpha"] / settings["lora_r"]
    config = json.loads((base / "config.json").read_text())
    config["vocab_size"] = len(tokenizer)
    config.pop("architectures"), config.pop("model_type")
    model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(**config)).eval()
    state = torch.load(weights / "checkpoint-7" / "model.pth", weights_only=True)
    state = {k.removeprefix("base_model.model."): v for k, v in state.items()}
    merged = {}
    for key, value in state.items():
        if ".lora_" in key:
            continue
        if ".base_layer." in key:
            module, _, leaf = key.partition(".base_layer.")
            if leaf == "weight":
                a, b = state[f"{module}.lora_A.default.weight"], state[f"{module}.lora_B.default.weight"]
                value = value + scale * b @ a
            key = f"{module}.{leaf}"
        merged[key] = value
    head = merged.pop("rm_head.weight")
    renamed = {("model." + k if k.startswith("visual.") else
                "model.language_model." + k[len("model."):] if k.startswith("model.") else k): v for k, v in merged.items()}
    missing, unexpected = model.load_state_dict(renamed, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    return model, head, tokenizer


def _hand_scores(model, head, tokenizer, frames: torch.Tensor, prompt: str) -> tuple[np.ndarray, np.ndarray]:
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    processed = Qwen2VLVideoProcessor()(videos=[frames.permute(0, 3, 1, 2)], do_resize=False, do_sample_frames=False,
                                        return_tensors="pt")
    pixels, grid = processed["pixel_values_videos"], processed["video_grid_thw"]
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": vr.prompt_text(prompt)}]}],
        tokenize=False, add_generation_prompt=True)
    text = text.replace("<|video_pad|>", "<|video_pad|>" * int(grid.prod() // 4))
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        embeds = model.model.get_input_embeddings()(ids)
        features = model.model.visual(pixels, grid_thw=grid).pooler_output
        video = ids[0] == tokenizer.convert_tokens_to_ids("<|video_pad|>")
        embeds[0, video] = features
        positions = torch.arange(ids.shape[1]).view(1, 1, -1).expand(3, 1, -1)  # sequential in every section
        hidden = model.model.language_model(inputs_embeds=embeds, position_ids=positions).last_hidden_state[0]
    rows = [int((ids[0] == tokenizer.convert_tokens_to_ids(t)).nonzero()) for t in vr.REWARD_TOKENS]
    raw = (hidden[rows] @ head.T)[:, 0].double().numpy()
    return raw, (raw - np.array(MEANS)) / np.array(STDS)


def test_cli_scores_equal_an_independent_computation(tiny, tmp_path, run_cli) -> None:
    out = tmp_path / "run"
    process = run_cli(tmp_path, "score", "--videos", str(tiny["videos"]), "--prompts", str(tiny["videos"] / "prompts.jsonl"),
                  "--out", str(out), "-e", "videoalign", "-O", f"videoalign.weights={tiny['weights']}",
                  "-O", f"videoalign.base={tiny['base']}", "--device", "cpu")
    assert process.returncode == 0, process.stderr
    scores = pd.read_csv(out / "scores.csv").set_index("video")
    evaluator = get("videoalign")(weights=str(tiny["weights"]), base=str(tiny["base"]))
    evaluator.load()
    model, head, tokenizer = _hand_model(tiny["weights"], tiny["base"])
    for video, prompt in PROMPTS.items():
        frames, _ = decode_video(tiny["videos"] / video, [evaluator.frame_spec()]).view(evaluator.frame_spec())
        raw, normalised = _hand_scores(model, head, tokenizer, frames, prompt)
        row = scores.loc[video]
        for i, dim in enumerate(("vq", "mq", "ta")):
            assert row[f"videoalign.{dim}_raw"] == pytest.approx(raw[i], abs=TOL)
            assert row[f"videoalign.{dim}"] == pytest.approx(normalised[i], abs=TOL)
        assert row["videoalign.overall"] == pytest.approx(normalised.sum(), abs=TOL)
    run = json.loads((out / "run.json").read_text())
    assert "videoalign" in json.dumps(run) and "unverified" in json.dumps(run)


def test_sequential_positions_are_what_the_checkpoint_reads(tiny) -> None:
    """Qwen2-VL's own forward (3-D video positions) gives other numbers: the reward model must not use it."""
    evaluator = get("videoalign")(weights=str(tiny["weights"]), base=str(tiny["base"]))
    evaluator.load()
    model, head, tokenizer = _hand_model(tiny["weights"], tiny["base"])
    frames = torch.from_numpy(smooth_motion(4, 56, 84, 2))
    sample = vr.video_patches(frames, evaluator.preprocessor)
    ids = torch.tensor([evaluator.encoder.ids("a cat", sample[1][0] * sample[1][1] * sample[1][2] // 4)])
    grid = torch.tensor([sample[1]])
    ours = vr.reward_forward(evaluator.model, ids, torch.ones_like(ids), sample[0], grid, evaluator.encoder.reward_ids,
                             evaluator.video_token_id)[0].double().numpy()
    raw, _ = _hand_scores(model, head, tokenizer, frames, "a cat")
    np.testing.assert_allclose(ours, raw, atol=TOL)
    with torch.no_grad():
        kinds = (ids == evaluator.video_token_id).long() * 2  # text 0, video 2: Qwen2-VL's 3-D video positions
        hidden = model.model(input_ids=ids, pixel_values_videos=sample[0], video_grid_thw=grid,
                             mm_token_type_ids=kinds).last_hidden_state[0]
    rows = [int((ids[0] == i).nonzero()) for i in evaluator.encoder.reward_ids]
    rope_3d = (hidden[rows] @ head.T)[:, 0].double().numpy()
    assert np.abs(rope_3d - ours).max() > 1e-3


def test_batches_by_token_budget_give_the_same_scores(tiny) -> None:
    from vbench_pref.evaluator import VideoSample

    evaluator = get("videoalign")(weights=str(tiny["weights"]), base=str(tiny["base"]))
    evaluator.load()
    batch = [VideoSample(f"v{i}", torch.from_numpy(smooth_motion(t, 56, w, i)), np.zeros(t), 8.0, prompt=p)
             for i, (t, w, p) in enumerate([(4, 84, "a cat"), (2, 56, "a red car in the rain"), (6, 112, "rain")])]
    together = evaluator.score(batch)
    evaluator.config["batch_tokens"] = 1  # one video per forward
    alone = evaluator.score(batch)
    for name in together:
        np.testing.assert_allclose(together[name], alone[name], atol=TOL)
    # longest first; a pass costs (items x its longest); an item over the budget is a pass of its own
    assert token_batches([5, 3, 9, 20], 10) == [[3], [2], [0, 1]]
    assert token_batches([4, 4, 4, 1], 12) == [[0, 1, 2], [3]]


def test_full_size_model_has_the_published_keys_and_shapes() -> None:
    published = json.loads(gzip.open(DATA / "videoreward_keys.json.gz", "rt").read())
    shapes = {k: tuple(v) for k, v in published["shapes"].items()}
    ours = vr.expected_shapes(vr.QWEN2_VL_2B, vr.RewardSettings())
    assert ours == shapes
    assert shapes["base_model.model.rm_head.weight"] == (1, 1536)
    assert shapes["base_model.model.model.embed_tokens.weight"] == (151660, 1536)
    assert sum("lora_A" in k for k in shapes) == 28 * 7
    # the file holds every tensor once in bf16 (lm_head and embed_tokens as two copies) plus ~300 bytes of
    # zip/pickle records per tensor
    data = 2 * sum(math.prod(s) for s in shapes.values())
    assert 0 < published["file_bytes"] - data < 400 * len(shapes)


def test_offline_without_weights_fails_in_one_line(tiny, tmp_path, run_cli) -> None:
    process = run_cli(tmp_path, "score", "--videos", str(tiny["videos"]), "--prompts", str(tiny["videos"] / "prompts.jsonl"),
                      "--out", str(tmp_path / "run"), "-e", "videoalign", "--device", "cpu")
    assert process.returncode == 2, process.stderr
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, process.stderr
    assert "checkpoint-11352/model.pth" in lines[0] and "vbench-pref weights pull videoalign" in lines[0]
    assert "HF_HUB_OFFLINE" in lines[0]
    listing = run_cli(tmp_path, "weights", "list", "--json")
    names = {row["name"]: row for row in json.loads(listing.stdout)}
    assert names["videoreward"]["evaluators"] == ["videoalign"] and names["videoreward"]["status"] == "missing"
    assert {"videoreward-config", "qwen2-vl-2b-config", "qwen2-vl-2b-preprocessor-config"} <= set(names)
    local = get("videoalign")(weights=str(tiny["weights"])).missing_weights()  # only the base files are missing
    assert local is not None and "weights pull qwen2-vl-2b-config qwen2-vl-2b-preprocessor-config" in local


def _hub_file(cache: Path, repo: str, filename: str, content: bytes) -> None:
    snapshot = cache / ("models--" + repo.replace("/", "--")) / "snapshots" / ("0" * 40)
    (snapshot / filename).parent.mkdir(parents=True, exist_ok=True)
    (snapshot / filename).write_bytes(content)
    (snapshot.parent.parent / "refs").mkdir(exist_ok=True)
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)


def test_default_selection_includes_videoalign_once_its_files_are_in_the_hub_cache(tmp_path, monkeypatch) -> None:
    from vbench_pref.evaluators.videoalign import BASE_FILES, CHECKPOINT, REWARD_CONFIG

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    _, skipped = build_evaluators([], {}, with_prompts=True)
    assert "videoalign" in skipped and "\n" not in skipped["videoalign"]
    for spec in (CHECKPOINT, REWARD_CONFIG, *BASE_FILES):
        _hub_file(cache, spec.repo_id, spec.filename, b"{}")
    chosen, skipped = build_evaluators([], {}, with_prompts=True)
    assert "videoalign" in [e.name for e in chosen] and "videoalign" not in skipped


def test_mismatched_checkpoint_is_refused_in_one_line(tiny, tmp_path) -> None:
    import shutil

    folder = tmp_path / "VideoReward"
    shutil.copytree(tiny["weights"], folder)
    path = folder / "checkpoint-7" / "model.pth"
    state = torch.load(path, weights_only=True)
    state["base_model.model.rm_head.weight"] = torch.zeros(2, 32)
    state.pop("base_model.model.model.norm.weight")
    state["base_model.model.extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    evaluator = get("videoalign")(weights=str(folder), base=str(tiny["base"]))
    with pytest.raises(VbenchPrefError) as info:
        evaluator.load()
    message = str(info.value)
    assert "\n" not in message
    assert "model.norm.weight" in message and "extra.weight" in message and "rm_head.weight (2, 32)" in message
    torch.save({"weights": [1, 2]}, path)
    with pytest.raises(VbenchPrefError, match="not a state dict"):
        get("videoalign")(weights=str(folder), base=str(tiny["base"])).load()
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(VbenchPrefError) as info:
        get("videoalign")(weights=str(folder), base=str(tiny["base"])).load()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("section", "key", "value", "says"), [
    ("model_config", "output_dim", 2, "output_dim"),
    ("peft_lora_config", "lora_modules_to_save", ["rm_head"], "lora_modules_to_save"),
    ("data_config", "prompt_template_type", "simple", "prompt_template_type"),
    ("data_config", "num_frames", 8, "num_frames"),
    ("peft_lora_config", "lora_enable", False, "lora_enable"),
])
def test_model_config_it_cannot_honour_is_refused_in_one_line(section, key, value, says) -> None:
    data = vr.RewardSettings().to_dict()
    data[section][key] = value
    with pytest.raises(VbenchPrefError) as info:
        vr.RewardSettings.from_dict(data)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_model_config_settings_are_read_from_the_file(tmp_path) -> None:
    settings = vr.RewardSettings(output_dim=3, lora_r=2, lora_alpha=6, fps=4.0, max_pixels=160 * 28 * 28,
                                 means=(1.0, 2.0, 3.0), stds=(2.0, 4.0, 8.0))
    assert vr.RewardSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    options = vr.write_tiny_videoreward(tmp_path, settings=settings)
    evaluator = get("videoalign")(**options)
    evaluator.load()
    assert evaluator.frame_spec().qwen.fps == 4.0 and evaluator.frame_spec().qwen.max_pixels == 160 * 28 * 28
    assert evaluator.model.rm_head.weight.shape == (3, 32)
    frames = torch.from_numpy(smooth_motion(4, 56, 56, 0))
    from vbench_pref.evaluator import VideoSample

    out = evaluator.score([VideoSample("v", frames, np.zeros(4), 8.0, prompt="a cat")])
    raw = np.array([out[f"{d}_raw"][0] for d in ("vq", "mq", "ta")])
    np.testing.assert_allclose([out[d][0] for d in ("vq", "mq", "ta")], (raw - [1, 2, 3]) / [2, 4, 8], atol=1e-12)


def test_prompt_is_the_training_template() -> None:
    template = vr.prompt_template()
    assert template.startswith("\nYou are tasked with evaluating a generated video") and template.endswith("END\n")
    positions = [template.index(t) for t in vr.REWARD_TOKENS]
    assert positions == sorted(positions) and all(template.count(t) == 1 for t in vr.REWARD_TOKENS)
    assert vr.prompt_text("a {weird} prompt").count("a {weird} prompt") == 1


def test_random_weights_are_labelled_and_score(tmp_path) -> None:
    from vbench_pref.evaluator import VideoSample

    evaluator = get("videoalign")(weights="random")
    assert evaluator.uses_random_weights and evaluator.missing_weights() is None and not evaluator.required_weights()
    evaluator.load()
    frames = torch.from_numpy(smooth_motion(4, 28, 28, 0))
    out = evaluator.score([VideoSample("v", frames, np.zeros(4), 8.0, prompt="a cat")])
    assert set(out) == {"vq", "mq", "ta", "overall", "vq_raw", "mq_raw", "ta_raw"}
    assert np.isfinite(out["overall"]).all()


@pytest.mark.parametrize("shape", [(2, 28, 28), (4, 56, 84), (6, 308, 140)])
def test_video_patches_equal_transformers_video_processor(shape) -> None:
    """The patches (no resize: frames arrive at multiples of 28) equal transformers' own Qwen2-VL video processor."""
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    t, h, w = shape
    frames = torch.from_numpy(np.random.default_rng(t).integers(0, 256, (t, h, w, 3), dtype=np.uint8))
    expected = Qwen2VLVideoProcessor()(videos=[frames.permute(0, 3, 1, 2)], do_resize=False, do_sample_frames=False,
                                       return_tensors="pt")
    pixels, grid = vr.video_patches(frames, vr.Preprocessor())
    assert list(grid) == expected["video_grid_thw"][0].tolist()
    torch.testing.assert_close(pixels, expected["pixel_values_videos"], atol=1e-6, rtol=0)


def test_base_files_from_the_hub_cache_and_a_checkpoint_that_is_not_the_published_one(tiny, tmp_path, monkeypatch) -> None:
    from vbench_pref.evaluator import VideoSample
    from vbench_pref.evaluators.videoalign import BASE_FILES, CHECKPOINT, REWARD_CONFIG

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    for spec in BASE_FILES:
        _hub_file(cache, spec.repo_id, spec.filename, (tiny["base"] / spec.filename).read_bytes())
    sample = [VideoSample("v", torch.from_numpy(smooth_motion(4, 28, 56, 0)), np.zeros(4), 8.0, prompt="a cat")]
    from_hub = get("videoalign")(weights=str(tiny["weights"]))
    assert from_hub.missing_weights() is None
    from_hub.load()
    local = get("videoalign")(weights=str(tiny["weights"]), base=str(tiny["base"]))
    local.load()
    assert from_hub.score(sample)["overall"] == pytest.approx(local.score(sample)["overall"], abs=1e-12)
    assert {w["name"] for w in from_hub.weight_provenance() if w["option"] == "base"} == {s.name for s in BASE_FILES}
    # the tiny checkpoint where the published one belongs: refused by its sha256, in one line
    _hub_file(cache, CHECKPOINT.repo_id, CHECKPOINT.filename, (tiny["weights"] / "checkpoint-7" / "model.pth").read_bytes())
    _hub_file(cache, REWARD_CONFIG.repo_id, REWARD_CONFIG.filename, (tiny["weights"] / "model_config.json").read_bytes())
    official = get("videoalign")()
    assert official.missing_weights() is None
    with pytest.raises(VbenchPrefError) as info:
        official.load()
    assert "48375908e611" in str(info.value) and "\n" not in str(info.value)
