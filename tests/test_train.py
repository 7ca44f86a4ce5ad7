"""The trainer on the built-in tiny Wan: every loss, the latent cache, resume, NaN steps, checkpoints for eval."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vbench_pref.errors import VbenchPrefError
from vbench_pref.generate.models import load_model
from vbench_pref.generate.prompts import load_suite
from vbench_pref.generate.runner import generate
from vbench_pref.synthetic import smooth_motion
from vbench_pref.train import data as data_module
from vbench_pref.train import trainer as trainer_module
from vbench_pref.train.config import TrainConfig, build_config, read_config_file
from vbench_pref.train.data import FrameSettings, LatentCache, read_pairs
from vbench_pref.train.losses import LOSSES
from vbench_pref.train.trainer import TrainingDiverged, pair_indices, run_training
from vbench_pref.video import write_video

pytest.importorskip("diffusers")
pytestmark = pytest.mark.usefixtures("tiny_model_cache")


def write_pairs(folder: Path, n_pairs: int = 4, frames: int = 9, size: int = 32) -> Path:
    """Synthetic videos in the layout `vbench-pref pairs` writes, paths relative to pairs.jsonl."""
    videos = folder / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_pairs):
        names = []
        for j, speed in enumerate((0.5, 3.0)):
            clip = smooth_motion(T=frames, H=size, W=size, seed=10 * i + j, velocity=(speed, speed))
            name = f"videos/p{i}-{j}.mp4"
            write_video(folder / name, clip, fps=8)
            names.append(name)
        rows.append({"prompt_id": f"p{i % 2}", "prompt": f"prompt number {i % 2}", "chosen": names[0],
                     "rejected": names[1], "chosen_score": 1.0, "rejected_score": 0.0, "margin": 1.0})
    file = folder / "pairs.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return file


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("pairs"))


def config_for(pairs: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(model="builtin:tiny-wan", pairs=str(pairs), out=str(out), max_steps=2, batch_size=1,
                    effective_batch_size=2, learning_rate=1e-3, lora_rank=4, checkpoint_every=2, probe_every=1,
                    probe_pairs=2, device="cpu", mixed_precision="no")
    settings.update(overrides)
    return TrainConfig(**settings)


def read_jsonl(file: Path) -> list[dict]:
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


# --- pairs and the latent cache --------------------------------------------------------------------------


def test_pairs_resolve_relative_videos_and_reject_bad_rows(tmp_path: Path, pairs_file: Path) -> None:
    pairs = read_pairs(pairs_file)
    assert len(pairs) == 4 and pairs[0].chosen == (pairs_file.parent / "videos/p0-0.mp4").resolve()
    bad = tmp_path / "bad.jsonl"
    for text, message in [
        ("", "holds no pairs"),
        ('{"prompt": "x", "chosen": "a.mp4"}\n', "missing or empty 'rejected'"),
        ('{"prompt": "x", "chosen": "a.mp4", "rejected": "a.mp4"}\n', "same video"),
        ('{"prompt": "x", "chosen": "a.mp4", "rejected": "b.mp4", "image": "i.png"}\n', "image-to-video"),
        ('{"prompt": "x", "chosen": "a.mp4", "rejected": "b.mp4", "preference_probability": 2}\n', "(0, 1]"),
        ("not json\n", "line 1 is not valid JSON"),
    ]:
        bad.write_text(text)
        with pytest.raises(VbenchPrefError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            read_pairs(bad)


def test_parquet_pairs_read_like_jsonl(tmp_path: Path, pairs_file: Path) -> None:
    import pandas as pd

    parquet = pairs_file.parent / "pairs.parquet"
    pd.DataFrame(read_jsonl(pairs_file)).to_parquet(parquet, index=False)
    assert read_pairs(parquet) == read_pairs(pairs_file)


def test_cache_matches_direct_encoding_and_is_reused(tmp_path: Path, pairs_file: Path, monkeypatch) -> None:
    from vbench_pref.train.models import training_spec

    loaded = load_model("builtin:tiny-wan")
    spec = training_spec(loaded)
    pairs = read_pairs(pairs_file)
    key = data_module.cache_key("builtin:tiny-wan", "wan", pairs_file, FrameSettings())
    folder = data_module.precompute(loaded.pipeline, spec, pairs, tmp_path / "cache", key, FrameSettings())
    cache = LatentCache(folder)
    batch = cache.batch([2, 0])
    pixels = data_module.load_pixels(pairs[2].rejected, FrameSettings()).unsqueeze(0)
    with torch.no_grad():
        direct = spec.encode_videos(loaded.pipeline, pixels)[0]
        text = spec.encode_prompts(loaded.pipeline, [pairs[0].prompt])
    torch.testing.assert_close(batch["rejected"][0], direct.float())
    for name, value in text.items():
        torch.testing.assert_close(batch["conditions"][name][1], value[0].cpu())
    assert cache.prompts == ["prompt number 0", "prompt number 1"] and len(cache) == 4

    calls = []
    monkeypatch.setattr(spec.__class__, "encode_videos", lambda *a: calls.append(1))
    data_module.precompute(loaded.pipeline, spec, pairs, folder, key, FrameSettings())
    assert calls == []  # a complete cache with the same key is not encoded again
    with pytest.raises(VbenchPrefError, match="made from other pairs"):
        data_module.precompute(loaded.pipeline, spec, pairs, folder, {**key, "num_frames": 5}, FrameSettings(5))


def test_interrupted_precompute_resumes_at_the_next_shard(tmp_path: Path, pairs_file: Path, monkeypatch) -> None:
    from vbench_pref.train.models import training_spec

    loaded = load_model("builtin:tiny-wan")
    spec = training_spec(loaded)
    pairs = read_pairs(pairs_file)
    key = data_module.cache_key("builtin:tiny-wan", "wan", pairs_file, FrameSettings())
    monkeypatch.setattr(data_module, "SHARD_PAIRS", 1)
    real = data_module._encode_video
    seen: list[Path] = []

    def failing(pipeline, spec_, video, frames):
        if len(seen) == 5:
            raise KeyboardInterrupt
        seen.append(video)
        return real(pipeline, spec_, video, frames)

    monkeypatch.setattr(data_module, "_encode_video", failing)
    with pytest.raises(KeyboardInterrupt):
        data_module.precompute(loaded.pipeline, spec, pairs, tmp_path / "c", key, FrameSettings())
    assert len(json.loads((tmp_path / "c" / "index.json").read_text())["shards"]) == 2
    seen.clear()
    monkeypatch.setattr(data_module, "_encode_video", lambda *a: (seen.append(a[2]), real(*a))[1])
    data_module.precompute(loaded.pipeline, spec, pairs, tmp_path / "c", key, FrameSettings())
    assert seen == [pairs[2].chosen, pairs[2].rejected, pairs[3].chosen, pairs[3].rejected]
    assert len(LatentCache(tmp_path / "c")) == 4


def test_corrupt_video_is_one_line_error(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    pairs = write_pairs(folder, n_pairs=1)
    (folder / "videos/p0-1.mp4").write_bytes(b"not a video")
    with pytest.raises(VbenchPrefError, match="cannot train on .*p0-1.mp4"):
        data_module.load_pixels(read_pairs(pairs)[0].rejected, FrameSettings())


def test_pair_stream_is_a_permutation_per_epoch() -> None:
    stream = pair_indices(3, 5, 0, 15)
    for epoch in range(3):
        assert sorted(stream[5 * epoch:5 * epoch + 5]) == list(range(5))
    assert stream != pair_indices(4, 5, 0, 15)
    assert pair_indices(3, 5, 7, 4) == stream[7:11]


# --- config -------------------------------------------------------------------------------------------------


def test_config_file_then_command_line(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text('loss = "dpo"\nbeta = 500\nlora-rank = 8\nmodel = "builtin:tiny-wan"\n')
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("loss: sdpo\nbeta: 250.0\n")
    config = build_config(toml, {"pairs": "p.jsonl", "out": "o", "lora_rank": 16, "k1": None})
    assert (config.loss, config.beta, config.lora_rank, config.k1) == ("dpo", 500.0, 16, 10.0)
    assert read_config_file(yaml_file) == {"loss": "sdpo", "beta": 250.0}
    for text, message in [("bogus: 1\n", "unknown option 'bogus'"), ("beta: high\n", "beta must be float"),
                          ("- 1\n", "must hold a mapping")]:
        yaml_file.write_text(text)
        with pytest.raises(VbenchPrefError, match=message):
            read_config_file(yaml_file)
    ini = tmp_path / "run.ini"
    ini.write_text("beta = 1\n")
    with pytest.raises(VbenchPrefError, match=r"run.ini: use .yaml, .yml, .toml or .json$"):
        read_config_file(ini)
    with pytest.raises(VbenchPrefError, match="--loss must be one of"):
        build_config(None, {"model": "m", "pairs": "p", "out": "o", "loss": "ppo"})
    with pytest.raises(VbenchPrefError, match="--ipr must be one of"):
        build_config(None, {"model": "m", "pairs": "p", "out": "o", "ipr": "both"})


def test_paper_defaults() -> None:
    config = TrainConfig(model="m", pairs="p", out="o")
    assert (config.beta, config.k1, config.k2, config.learning_rate, config.effective_batch_size) == (100.0, 10.0, 10.0, 1e-6, 16)
    assert config.loss == "pgdpo" and config.ipr == "reward" and config.detach_weights


# --- training ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_trains_and_its_checkpoint_loads(tmp_path: Path, pairs_file: Path, loss: str) -> None:
    out = tmp_path / loss
    result = run_training(config_for(pairs_file, out, loss=loss))
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and not any(r["skipped"] for r in rows)
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["grad_norm"]) for r in rows)
    first = rows[0]
    # step 1 runs on the initial LoRA (B = 0): the policy is the reference, so every implicit reward is 0
    assert first["rewards/chosen"] == 0.0 and first["rewards/margins"] == 0.0
    if loss.startswith("pgdpo"):
        assert first["alpha/mean"] == pytest.approx(0.5 if loss != "pgdpo-ipr" else 1.0)
        assert first["gamma/mean"] == pytest.approx(0.5 if loss != "pgdpo-ars" else 1.0)
    probes = read_jsonl(out / "probe.jsonl")
    assert [p["step"] for p in probes] == [0, 1, 2] and probes[0]["logps/chosen_delta"] == 0.0
    assert result.checkpoint == out / "checkpoints" / "step-000002"
    card = json.loads((out / "vbench_pref.json").read_text())
    assert card["method"] == loss and card["step"] == 2 and card["adapter"] == "checkpoints/step-000002/adapter"
    loaded = load_model(str(out))
    assert loaded.source["kind"] == "checkpoint" and loaded.random_weights
    assert loaded.base_label == "builtin:tiny-wan (random weights)" and loaded.source["method"] == loss
    suite = tmp_path / "one.txt"
    suite.write_text("a1\ta red ball rolling\n")
    generated = generate(loaded, load_suite(suite), tmp_path / "videos", loaded.defaults.with_overrides(steps=2))
    assert generated.generated == 1 and (tmp_path / "videos" / "a1-0.mp4").stat().st_size > 0


def test_training_changes_the_policy_and_eval_sees_it(tmp_path: Path, pairs_file: Path) -> None:
    out = tmp_path / "run"
    run_training(config_for(pairs_file, out, loss="sft", max_steps=3, learning_rate=5e-2))
    base = load_model("builtin:tiny-wan").pipeline.transformer
    trained = load_model(str(out)).pipeline.transformer
    changed = [name for name, p in trained.state_dict().items() if not torch.equal(p, base.state_dict()[name])]
    assert changed and all(any(t in name for t in ("to_q", "to_k", "to_v", "to_out")) for name in changed)
    probes = read_jsonl(out / "probe.jsonl")
    assert probes[-1]["logps/chosen"] > probes[0]["logps/chosen"]  # SFT on the chosen videos raises their proxy


def test_resumed_run_matches_an_uninterrupted_one(tmp_path: Path, pairs_file: Path) -> None:
    config = config_for(pairs_file, tmp_path / "whole", loss="pgdpo", max_steps=6, checkpoint_every=2)
    run_training(config)
    whole = read_jsonl(tmp_path / "whole" / "metrics.jsonl")

    broken = replace(config, out=str(tmp_path / "broken"))

    def interrupt(step, total, row):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(broken, on_step=interrupt)
    assert [r["step"] for r in read_jsonl(tmp_path / "broken" / "metrics.jsonl")] == [1, 2, 3, 4, 5]
    with pytest.raises(VbenchPrefError, match="pass --resume"):
        run_training(broken)
    with pytest.raises(VbenchPrefError, match="beta"):
        run_training(replace(broken, beta=5.0), resume=True)
    result = run_training(broken, resume=True)
    assert result.start_step == 4
    assert json.loads((tmp_path / "broken" / "train.json").read_text())["run"]["started_at_step"] == 4
    resumed = read_jsonl(tmp_path / "broken" / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(whole, resumed):
        for name in ("loss", "rewards/margins", "grad_norm", "logps/chosen", "alpha/mean"):
            assert a[name] == pytest.approx(b[name], rel=1e-6, abs=1e-9), (a["step"], name)
    assert a["loss"] != whole[0]["loss"]


def test_non_finite_steps_are_skipped_then_stop_the_run(tmp_path: Path, pairs_file: Path, monkeypatch) -> None:
    real = trainer_module.compute_loss
    calls = {"n": 0}

    def poisoned(name, errors, options):
        calls["n"] += 1
        output = real(name, errors, options)
        if calls["n"] > 2:  # from step 2 on (2 micro-steps per step)
            return replace(output, loss=output.loss * float("nan"))
        return output

    monkeypatch.setattr(trainer_module, "compute_loss", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match="NaN/inf for 2 steps in a row .*step 3"):
        run_training(config_for(pairs_file, out, max_steps=6, max_bad_steps=2))
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["skipped"] for r in rows] == [False, True, True]
    assert rows[1]["loss"] is None and rows[1]["grad_norm"] is None


def test_full_finetune_saves_a_denoiser_eval_loads(tmp_path: Path, pairs_file: Path) -> None:
    out = tmp_path / "full"
    stages: list[str] = []
    # a step of 6 pairs from 4: trained all the same, with a one-line warning
    run_training(config_for(pairs_file, out, loss="dpo", finetune="full", max_steps=1, checkpoint_every=1,
                            batch_size=3, effective_batch_size=6), on_stage=stages.append)
    warnings = [s for s in stages if s.startswith("warning:")]
    assert warnings == ["warning: the effective batch (3 per device x 2 accumulation x 1 process(es) = 6) exceeds "
                        "the 4 pairs: each step sees some pairs more than once; lower --effective-batch-size"]
    card = json.loads((out / "vbench_pref.json").read_text())
    assert card["denoiser"] == "checkpoints/step-000001/denoiser"
    assert (out / "checkpoints/step-000001/denoiser/config.json").is_file()
    trained = load_model(str(out)).pipeline.transformer
    base = load_model("builtin:tiny-wan").pipeline.transformer
    assert any(not torch.equal(p, base.state_dict()[n]) for n, p in trained.state_dict().items())


def test_batch_size_must_divide_the_effective_batch(tmp_path: Path, pairs_file: Path) -> None:
    with pytest.raises(VbenchPrefError, match="not a multiple"):
        run_training(config_for(pairs_file, tmp_path / "x", batch_size=3, effective_batch_size=4))


@pytest.mark.parametrize("overrides", [{"gradient_checkpointing": True}, {"mixed_precision": "bf16"}],
                         ids=["gradient-checkpointing", "bf16"])
def test_memory_and_precision_options_train_the_same_model(tmp_path: Path, pairs_file: Path, overrides) -> None:
    # SFT: a preference gradient at the first steps is a small difference of two large ones, all bf16 noise
    plain = config_for(pairs_file, tmp_path / "plain", loss="sft", max_steps=2)
    run_training(plain)
    run_training(replace(plain, out=str(tmp_path / "other"), **overrides))
    a, b = read_jsonl(tmp_path / "plain" / "metrics.jsonl"), read_jsonl(tmp_path / "other" / "metrics.jsonl")
    tolerance = 1e-6 if "gradient_checkpointing" in overrides else 2e-2  # recomputation is exact; bf16 is not
    for x, y in zip(a, b, strict=True):
        assert x["logps/chosen"] == pytest.approx(y["logps/chosen"], rel=tolerance)
        assert x["grad_norm"] == pytest.approx(y["grad_norm"], rel=max(tolerance, 1e-5))
    if "mixed_precision" in overrides:  # bf16 really computed: close, not equal
        assert any(x["logps/chosen"] != y["logps/chosen"] for x, y in zip(a, b))
    recorded = json.loads((tmp_path / "other" / "train.json").read_text())
    assert all(recorded[k] == v for k, v in overrides.items())
