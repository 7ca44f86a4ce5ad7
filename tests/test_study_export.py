"""``study export-pairs``: vote shares from answers written straight into the store, the original videos, and
pairs that ``train-pgdpo`` trains on."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.test_study_create import hand_run
from vbench_pref.cli import app
from vbench_pref.study.create import CreateOptions, create_study
from vbench_pref.study.export import export_pairs
from vbench_pref.study.plan import ASPECTS, Plan, load_plan
from vbench_pref.study.store import open_answers
from vbench_pref.train.data import read_pairs

# what each participant preferred on "overall", per used prompt (in sorted order); the 4th participant also
# fails an attention check
VOTES = {
    "p1": ["dpo", "base", "tie"],
    "p2": ["dpo", "dpo", "base"],
    "p3": ["dpo", "base", "dpo"],
    "p4": ["tie", "dpo", "base"],
}


def _side(plan: Plan, item_id: str, wanted: str) -> str:
    left, right = plan.methods_of(plan.items[item_id])
    return "tie" if wanted == "tie" else ("left" if left == wanted else "right")


def _answer(study: Path) -> Plan:
    plan = load_plan(study)
    prompts = sorted({i.prompt_id for i in plan.items.values() if i.check is None})
    store = open_answers(study)
    for participant in plan.participants:
        failed_one = False
        for item_id in participant.items:
            item = plan.items[item_id]
            if item.check is not None:
                clean = "right" if item.check == "left" else "left"
                overall = item.check if participant.id == "p04" and not failed_one else clean
                failed_one = True
                store.record(participant.id, item_id, {a: (overall if a == "overall" else clean) for a in plan.aspects})
                continue
            wanted = VOTES[f"p{int(participant.id[1:])}"][prompts.index(item.prompt_id)]
            answers = {a: "tie" for a in plan.aspects}
            answers["overall"] = _side(plan, item_id, wanted)
            assert store.record(participant.id, item_id, answers, 1000)
    store.close()
    return plan


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    runs = [hand_run(folder / "a", "base"), hand_run(folder / "b", "dpo", seed=50)]
    create_study(CreateOptions(runs=[str(r) for r in runs], out=folder / "study", participants=4, per_participant=3,
                               overlap=4, attention_checks=1, seed=2))
    _answer(folder / "study")
    return folder / "study"


def _rows(file: Path) -> list[dict]:
    return [json.loads(line) for line in file.read_text().splitlines()]


def test_vote_shares_ties_and_exclusions(study: Path, tmp_path: Path) -> None:
    plan = load_plan(study)
    prompts = sorted({i.prompt_id for i in plan.items.values() if i.check is None})
    # p04 failed a check: left out; prompt 3 then splits 1-1 (+ a tie)
    result = export_pairs(study, tmp_path / "pairs.jsonl")
    assert (result.pairs, result.split, result.too_few, result.excluded_participants) == (2, 1, 0, ["p04"])
    assert result.judgements == 9
    rows = {r["prompt_id"]: r for r in _rows(tmp_path / "pairs.jsonl")}
    assert set(rows) == set(prompts[:2])
    first, second = rows[prompts[0]], rows[prompts[1]]
    assert (first["chosen_method"], first["rejected_method"], first["votes"], first["judgements"]) == ("dpo", "base", 3, 3)
    assert first["preference_probability"] == 1.0
    assert (second["chosen_method"], second["votes"], second["judgements"]) == ("base", 2, 3)
    assert second["preference_probability"] == pytest.approx(2 / 3)
    assert all(r["aspect"] == "overall" and r["study_id"] == plan.study_id for r in rows.values())
    # chosen / rejected: the runs' original files, absolute
    for row in rows.values():
        for side, method in (("chosen", row["chosen_method"]), ("rejected", row["rejected_method"])):
            path = Path(row[side])
            assert path.is_absolute() and path.suffix == ".mp4"
            assert path.parent == Path(plan.methods[method].videos_dir)
            assert row["prompt"] == next(v.prompt for v in plan.videos.values() if v.prompt_id == row["prompt_id"])
    frame = pd.read_parquet(tmp_path / "pairs.parquet")
    assert frame.to_dict("records") == [{**r, "image": None} for r in _rows(tmp_path / "pairs.jsonl")]

    # allowing one failure keeps p04: ties count half to each side
    kept = export_pairs(study, tmp_path / "kept.jsonl", allowed_failures=1)
    assert (kept.pairs, kept.split, kept.excluded_participants) == (2, 1, [])
    rows = {r["prompt_id"]: r for r in _rows(tmp_path / "kept.jsonl")}
    assert set(rows) == {prompts[0], prompts[2]}
    assert (rows[prompts[0]]["chosen_method"], rows[prompts[0]]["preference_probability"]) == ("dpo", 3.5 / 4)
    assert (rows[prompts[2]]["chosen_method"], rows[prompts[2]]["preference_probability"]) == ("base", 2.5 / 4)
    assert rows[prompts[2]]["votes"] == 2.5 and rows[prompts[2]]["judgements"] == 4

    few = export_pairs(study, tmp_path / "few.jsonl", min_judgements=4)
    assert (few.pairs, few.too_few) == (0, 3) and (tmp_path / "few.jsonl").read_text() == ""
    ties = export_pairs(study, tmp_path / "vq.jsonl", aspect="vq")
    assert (ties.pairs, ties.split) == (0, 3)


def test_the_command_prints_counts_and_refuses_bad_input(study: Path, tmp_path: Path) -> None:
    run = CliRunner().invoke(app, ["study", "export-pairs", str(study), "--out", str(tmp_path / "p.jsonl")])
    assert run.exit_code == 0, run.output
    assert "2 pairs from 9 overall judgements (1 split evenly" in run.stderr and "1 participants left out" in run.stderr
    for args, message in (
        (["--aspect", "beauty"], "--aspect 'beauty'"),
        (["--min-judgements", "0"], "--min-judgements"),
        (["--allowed-check-failures", "-1"], "--allowed-check-failures"),
    ):
        bad = CliRunner().invoke(app, ["study", "export-pairs", str(study), "--out", str(tmp_path / "x.jsonl"), *args])
        assert bad.exit_code == 2 and message in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr
        assert not (tmp_path / "x.jsonl").exists()
    assert "beauty" not in ASPECTS


def test_a_changed_or_escaping_source_is_refused(tmp_path: Path) -> None:
    runs = [hand_run(tmp_path / "a", "base"), hand_run(tmp_path / "b", "dpo", seed=50)]
    study = tmp_path / "study"
    create_study(CreateOptions(runs=[str(r) for r in runs], out=study, participants=4, per_participant=3, overlap=4,
                               attention_checks=1, seed=2))
    plan = _answer(study)
    assert export_pairs(study, tmp_path / "ok.jsonl").pairs == 2
    # a source replaced after the study: the pairs would train on a video nobody judged
    chosen = Path(_rows(tmp_path / "ok.jsonl")[0]["chosen"])
    chosen.write_bytes(chosen.read_bytes() + b"\0")
    refused = CliRunner().invoke(app, ["study", "export-pairs", str(study), "--out", str(tmp_path / "no.jsonl")])
    assert refused.exit_code == 2 and "changed since the study was made" in refused.stderr
    assert refused.stderr.count("\n") == 1 and not (tmp_path / "no.jsonl").exists()
    # a hand-edited plan pointing outside the run's videos folder
    data = json.loads((study / "study.json").read_text())
    for video in data["videos"].values():
        video["source"] = "../../a/run/run.json"
    (study / "study.json").write_text(json.dumps(data))
    escaped = CliRunner().invoke(app, ["study", "export-pairs", str(study), "--out", str(tmp_path / "no.jsonl")])
    assert escaped.exit_code == 2 and "leaves its videos folder" in escaped.stderr
    assert plan.study_id == data["study_id"]


def test_a_study_without_answers_says_so(tmp_path: Path) -> None:
    runs = [hand_run(tmp_path / "a", "base"), hand_run(tmp_path / "b", "dpo", seed=50)]
    create_study(CreateOptions(runs=[str(r) for r in runs], out=tmp_path / "s", participants=2, per_participant=2))
    result = CliRunner().invoke(app, ["study", "export-pairs", str(tmp_path / "s"), "--out", str(tmp_path / "p.jsonl")])
    assert result.exit_code == 2 and "no answers yet" in result.stderr


def test_exported_pairs_train_pgdpo(study: Path, tmp_path: Path, tiny_model_cache: Path) -> None:
    pytest.importorskip("diffusers")
    from vbench_pref.train.config import TrainConfig
    from vbench_pref.train.trainer import run_training

    pairs = tmp_path / "pairs.jsonl"
    export_pairs(study, pairs, allowed_failures=1)
    read = read_pairs(pairs)
    assert [p.preference_probability for p in read] == [3.5 / 4, 2.5 / 4]
    config = TrainConfig(model="builtin:tiny-wan", pairs=str(pairs), out=str(tmp_path / "trained"), loss="pgdpo",
                         max_steps=2, batch_size=1, effective_batch_size=2, learning_rate=1e-3, lora_rank=4,
                         checkpoint_every=2, probe_every=1, probe_pairs=2, device="cpu", mixed_precision="no")
    run_training(config)
    steps = [json.loads(line) for line in (tmp_path / "trained" / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2] and not any(s["skipped"] for s in steps)
