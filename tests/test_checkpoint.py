"""Training checkpoints hold data only: tampered files never run on ``--resume`` and are refused in one line."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vbench_pref.errors import VbenchPrefError
from vbench_pref.synthetic import smooth_motion
from vbench_pref.train.checkpoint import CheckpointError, load_training_state, load_tree, save_training_state, save_tree
from vbench_pref.train.config import TrainConfig
from vbench_pref.train.trainer import run_training
from vbench_pref.video import write_video

pytest.importorskip("diffusers")

# the files a LoRA checkpoint needs on --resume; anything else in the folder is never opened
NEEDED = {"trainer_state.json", "optimizer.json", "optimizer.safetensors", "scheduler.json", "rng-0.json",
          "rng-0.safetensors", "adapter/adapter_model.safetensors"}
# what accelerate's save_state wrote and load_state read (some with weights_only=False)
ACCELERATE_FILES = ["custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin", "scheduler.bin", "scaler.pt",
                    "sampler.bin", "dl_state_dict.bin", "pytorch_model.bin", "model.safetensors",
                    "adapter/adapter_model.bin"]


class Payload:
    """Unpickling this writes a marker file: proof that a checkpoint's pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "the payload ran"))


def plant(file: Path, marker: Path) -> None:
    """A torch-format file (the zip torch.save writes) whose pickle runs the payload when fully unpickled."""
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": Payload(marker)}, file)


def test_the_payload_runs_when_fully_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    plant(tmp_path / "x.pkl", marker)
    torch.load(tmp_path / "x.pkl", weights_only=False)  # what accelerate did with custom_checkpoint_0.pkl
    assert marker.read_text() == "the payload ran"


def _optimizer_and_schedule() -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    from diffusers.optimization import get_scheduler

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.99))
    schedule = get_scheduler("cosine", optimizer, num_warmup_steps=2, num_training_steps=10)
    for _ in range(3):
        model(torch.randn(4, 3)).square().sum().backward()
        optimizer.step()
        schedule.step()
    return optimizer, schedule


def test_state_trees_round_trip_exactly(tmp_path: Path) -> None:
    tree = {"state": {0: {"step": torch.tensor(3.0), "m": torch.randn(2, 2, dtype=torch.bfloat16)}},
            "groups": [{"betas": (0.9, 0.999), "lr": 1e-3 / 3, "params": [0, 1], "fused": None}],
            "__odd": True, "inf": float("inf")}
    save_tree(tmp_path, "x", tree)
    back = load_tree(tmp_path, "x")
    assert back["groups"] == tree["groups"] and back["__odd"] is True and back["inf"] == float("inf")
    assert isinstance(back["groups"][0]["betas"], tuple) and list(back["state"]) == [0]
    for name, value in tree["state"][0].items():
        assert back["state"][0][name].dtype == value.dtype and torch.equal(back["state"][0][name], value)
    with pytest.raises(TypeError, match="cannot store a object"):
        save_tree(tmp_path, "y", {"bad": object()})


def test_training_state_restores_optimizer_schedule_and_rng(tmp_path: Path) -> None:
    optimizer, schedule = _optimizer_and_schedule()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_training_state(tmp_path, optimizer, schedule, scaler, rank=0, main=True)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    fresh_optimizer, fresh_schedule = _optimizer_and_schedule()
    fresh_scaler = torch.amp.GradScaler("cpu")
    load_training_state(tmp_path, fresh_optimizer, fresh_schedule, fresh_scaler, rank=0)
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    assert fresh_schedule.state_dict() == schedule.state_dict() and fresh_scaler.get_scale() == 1024.0
    a, b = optimizer.state_dict(), fresh_optimizer.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for index, entries in a["state"].items():
        assert all(torch.equal(v, b["state"][index][k]) for k, v in entries.items())


# --- resume through the trainer ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_cache: Path) -> tuple[Path, TrainConfig]:
    """A one-step LoRA run with its checkpoint, on two synthetic pairs."""
    folder = tmp_path_factory.mktemp("resume")
    rows = []
    for i in range(2):
        names = [f"p{i}-{j}.mp4" for j in range(2)]
        for j, name in enumerate(names):
            write_video(folder / name, smooth_motion(T=5, H=32, W=32, seed=2 * i + j, velocity=(j, j)), fps=8)
        rows.append({"prompt": f"prompt {i}", "chosen": names[0], "rejected": names[1]})
    (folder / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig(model="builtin:tiny-wan", pairs=str(folder / "pairs.jsonl"), out=str(folder / "run"),
                         max_steps=1, batch_size=1, effective_batch_size=1, lora_rank=2, checkpoint_every=1,
                         probe_every=1, probe_pairs=1, device="cpu", mixed_precision="no")
    run_training(config)
    return folder / "run", config


def _copy(run: Path, target: Path) -> Path:
    shutil.copytree(run, target)
    return target


def _resume(config: TrainConfig, out: Path) -> None:
    from dataclasses import replace

    run_training(replace(config, out=str(out)), resume=True)


def test_a_checkpoint_holds_no_pickle(trained: tuple[Path, TrainConfig]) -> None:
    run, _ = trained
    files = {p.relative_to(run / "checkpoints/step-000001").as_posix()
             for p in (run / "checkpoints/step-000001").rglob("*") if p.is_file()}
    assert NEEDED <= files and not [f for f in files if f.endswith((".bin", ".pkl", ".pt", ".pth"))]


def test_a_pickle_in_any_checkpoint_file_never_runs(tmp_path: Path, trained: tuple[Path, TrainConfig],
                                                    tiny_model_cache: Path) -> None:
    run, config = trained
    checkpoint = Path("checkpoints/step-000001")
    files = sorted(p.relative_to(run / checkpoint).as_posix() for p in (run / checkpoint).rglob("*") if p.is_file())
    assert NEEDED < set(files)  # needed files and others (adapter_config.json, the card, peft's README)
    marker = tmp_path / "marker"
    for number, name in enumerate(files):
        out = _copy(run, tmp_path / f"run{number}")
        plant(out / checkpoint / name, marker)
        if name in NEEDED:
            with pytest.raises(VbenchPrefError) as refused:
                _resume(config, out)
            assert "\n" not in str(refused.value) and "weights_only" not in str(refused.value), name
        else:
            _resume(config, out)  # never opened
        assert not marker.exists(), name


def test_files_accelerate_would_read_are_never_opened(tmp_path: Path, trained: tuple[Path, TrainConfig],
                                                      tiny_model_cache: Path) -> None:
    run, config = trained
    out = _copy(run, tmp_path / "run")
    marker = tmp_path / "marker"
    for name in ACCELERATE_FILES:
        plant(out / "checkpoints/step-000001" / name, marker)
    from dataclasses import replace

    result = run_training(replace(config, out=str(out), max_steps=2), resume=True)
    assert result.start_step == 1 and result.steps == 1 and not marker.exists()


def test_a_checkpoint_of_the_earlier_format_is_refused_before_loading(tmp_path: Path,
                                                                      trained: tuple[Path, TrainConfig]) -> None:
    run, config = trained
    out = _copy(run, tmp_path / "run")
    step = out / "checkpoints/step-000001"
    (step / "trainer_state.json").write_text(json.dumps({"step": 1, "loss": "pgdpo"}))
    marker = tmp_path / "marker"
    plant(step / "custom_checkpoint_0.pkl", marker)
    with pytest.raises(CheckpointError, match="earlier vbench-pref .* start a new run with another --out") as refused:
        _resume(config, out)
    assert "\n" not in str(refused.value) and not marker.exists()


def test_tampered_resume_through_the_cli_is_one_line_exit_2(run_cli, tmp_path: Path,
                                                            trained: tuple[Path, TrainConfig]) -> None:
    run, config = trained
    out = _copy(run, tmp_path / "run")
    marker = tmp_path / "marker"
    plant(out / "checkpoints/step-000001/scheduler.json", marker)
    plant(out / "checkpoints/step-000001/custom_checkpoint_0.pkl", marker)
    result = run_cli(tmp_path, "train-pgdpo", "--resume", "--model", config.model, "--pairs", config.pairs,
                     "--out", str(out), "--max-steps", "1", "--effective-batch-size", "1", "--lora-rank", "2",
                     "--checkpoint-every", "1", "--probe-every", "1", "--probe-pairs", "1", "--device", "cpu",
                     "--mixed-precision", "no")
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]  # after the stage lines, the error in one line
    assert last.startswith("error:") and "scheduler.json is not readable JSON" in last
    assert "Traceback" not in result.stderr and result.stderr.count("error") == 1
    assert not marker.exists()



def test_optimizer_state_of_other_shapes_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    optimizer, schedule = _optimizer_and_schedule()
    save_training_state(tmp_path, optimizer, schedule, None, rank=0, main=True)
    tensors = load_file(str(tmp_path / "optimizer.safetensors"))
    save_file({k: v.reshape(-1) if v.ndim == 2 else v for k, v in tensors.items()}, str(tmp_path / "optimizer.safetensors"))
    fresh, fresh_schedule = _optimizer_and_schedule()
    with pytest.raises(CheckpointError, match=r"does not fit this run \(exp_avg of shape \(6,\)"):
        load_training_state(tmp_path, fresh, fresh_schedule, None, rank=0)
