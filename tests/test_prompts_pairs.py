"""Prompt suites, per-video seeds, batch dealing and pair selection: pure pieces of generation."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import pytest

from vbench_pref.errors import VbenchPrefError
from vbench_pref.generate.prompts import bundled_suites, load_suite, prompt_id
from vbench_pref.generate.runner import batches_for, generation_seed, plan
from vbench_pref.pairs import Candidate, parse_reward, select_pairs


def test_bundled_suites_are_complete_and_well_formed() -> None:
    assert {"demo", "t2v", "i2v"} <= set(bundled_suites())
    demo, t2v, i2v = load_suite("demo"), load_suite("t2v"), load_suite("i2v")
    assert len(demo.entries) == 5 and not demo.skipped_duplicates
    assert len(t2v.entries) >= 300 and not t2v.skipped_duplicates
    categories = {e.category for e in t2v.entries}
    assert {"animal", "human_action", "camera", "style", "color", "counting", "spatial"} <= categories
    assert len({e.prompt for e in t2v.entries}) == len(t2v.entries)
    assert i2v.image_to_video and all(e.image is not None and e.image.is_file() for e in i2v.entries)


def test_text_file_rules(tmp_path: Path) -> None:
    file = tmp_path / "p.txt"
    file.write_text(
        "# a comment\n\n  a red ball rolls  \nmy-id\ta cat sleeps\n\na red ball rolls\n# another\nblue sky\n",
        encoding="utf-8",
    )
    suite = load_suite(file)
    assert [e.prompt for e in suite.entries] == ["a red ball rolls", "a cat sleeps", "blue sky"]
    assert suite.entries[1].id == "my-id"
    assert suite.entries[0].id == prompt_id("a red ball rolls") and suite.entries[0].id.startswith("p-")
    assert suite.skipped_duplicates == ["line 6: a red ball rolls"]
    # ids without an explicit one follow the text, not the position
    reordered = tmp_path / "q.txt"
    reordered.write_text("blue sky\na red ball rolls\n", encoding="utf-8")
    assert {e.prompt: e.id for e in load_suite(reordered).entries} == {
        e.prompt: e.id for e in suite.entries if e.prompt != "a cat sleeps"
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "has no prompts"),
        ("# only a comment\n\n", "has no prompts"),
        ("a\tone\na\ttwo\n", "already used on line 1"),
        ("bad id!\tprompt\n", "must be letters"),
    ],
)
def test_text_file_errors(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "p.txt"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(VbenchPrefError, match=message):
        load_suite(file)


def test_unknown_suite_names_the_bundled_ones() -> None:
    with pytest.raises(VbenchPrefError, match=r"no such file and no bundled suite.*demo"):
        load_suite("no_such_suite")


def test_i2v_entry_with_missing_image_fails_before_anything_runs(tmp_path: Path) -> None:
    file = tmp_path / "i2v.jsonl"
    file.write_text('{"id": "x-1", "prompt": "waves", "image": "missing.png"}\n', encoding="utf-8")
    with pytest.raises(VbenchPrefError, match=r"line 1: image missing.png does not exist"):
        load_suite(file)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    file.write_text('{"prompt": "waves", "image": "broken.png"}\n', encoding="utf-8")
    with pytest.raises(VbenchPrefError, match="cannot be read"):
        load_suite(file)


def test_generation_seed_depends_on_each_input_only() -> None:
    seeds = {generation_seed(s, p, i) for s in (0, 1) for p in ("a-001", "a-002") for i in (0, 1)}
    assert len(seeds) == 8
    assert generation_seed(3, "x", 2) == generation_seed(3, "x", 2)
    assert all(0 <= s < 2**63 for s in seeds)


def test_batches_are_dealt_round_robin_from_the_whole_plan() -> None:
    items = plan(load_suite("demo"), n=3, seed=0)
    assert len(items) == 15 and [i.video for i in items[:3]] == ["demo-001-0.mp4", "demo-001-1.mp4", "demo-001-2.mp4"]
    whole = batches_for(items, 4)
    shards = [batches_for(items, 4, rank, 3) for rank in range(3)]
    assert sorted(map(repr, itertools.chain(*shards))) == sorted(map(repr, whole))
    assert shards[1] == [whole[1]]


def _reference_pairs(scores: list[float], higher: bool, mode: str, min_margin: float) -> set[tuple[int, int]]:
    """Independent statement of the rule: chosen strictly better, margin >= min_margin, NaN never paired."""
    valid = [i for i, s in enumerate(scores) if not math.isnan(s)]
    better = (lambda a, b: a > b) if higher else (lambda a, b: a < b)
    if mode == "all":
        candidates = [(i, j) for i in valid for j in valid if better(scores[i], scores[j])]
    else:
        if len(valid) < 2:
            return set()
        best = max(valid, key=lambda i: scores[i] if higher else -scores[i])
        worst = min(valid, key=lambda i: scores[i] if higher else -scores[i])
        candidates = [(best, worst)] if better(scores[best], scores[worst]) else []
    return {(i, j) for i, j in candidates if abs(scores[i] - scores[j]) >= min_margin}


@pytest.mark.parametrize("trial", range(40))
def test_select_pairs_matches_the_rule(trial: int) -> None:
    rng = random.Random(trial)
    scores = [rng.choice([0.1, 0.5, 0.5, 0.9, math.nan, rng.random()]) for _ in range(rng.randint(0, 6))]
    higher, mode, margin = rng.random() < 0.5, rng.choice(["best_worst", "all"]), rng.choice([0.0, 0.3])
    candidates = [Candidate(f"v{i}", s) for i, s in enumerate(scores)]
    got = {(int(a.video[1:]), int(b.video[1:])) for a, b in select_pairs(candidates, higher, mode, margin)}
    expected = _reference_pairs(scores, higher, mode, margin)
    if mode == "best_worst":  # ties for best/worst may resolve to another index with the same score
        assert {(scores[i], scores[j]) for i, j in got} == {(scores[i], scores[j]) for i, j in expected}
    else:
        assert got == expected


def test_reward_spec() -> None:
    reward = parse_reward("temporal_flicker")
    assert (reward.column, reward.higher_is_better) == ("temporal_flicker", True)
    assert parse_reward("clip_score.cosine").column == "clip_score.cosine"
    with pytest.raises(VbenchPrefError, match="several scores: pick one of clip_score.cosine, clip_score.hessel"):
        parse_reward("clip_score")
    with pytest.raises(VbenchPrefError, match="has no score"):
        parse_reward("clip_score.nope")


def test_a_bare_reward_name_means_the_primary_score(register) -> None:
    from vbench_pref.evaluator import Evaluator, ScoreSpec
    from vbench_pref.video import FrameSpec

    class Overall(Evaluator):
        name = "overall_test"
        version = "1"
        scores = (ScoreSpec("a", True), ScoreSpec("b", False), ScoreSpec("overall", True))
        frames = FrameSpec()
        primary_score = "overall"

        def score(self, batch):  # pragma: no cover - never scores
            raise AssertionError

    register(Overall)
    assert parse_reward("overall_test") == parse_reward("overall_test.overall")
    assert parse_reward("overall_test.b").higher_is_better is False
