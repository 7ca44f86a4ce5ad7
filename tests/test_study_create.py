"""``study create`` and ``study invite``: the balanced design's guarantees, blinding, media, refusals, resume."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import stat
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vbench_pref.cli import app
from vbench_pref.study import media
from vbench_pref.study.create import (
    CreateOptions, add_attention_checks, assign_comparisons, create_study, method_pairs,
)
from vbench_pref.study.plan import load_plan, load_tokens
from vbench_pref.synthetic import smooth_motion
from vbench_pref.video import decode_video, write_video
from vbench_pref.weights import sha256_file

PROMPTS = [f"a prompt about thing number {i}" for i in range(6)]


def hand_run(folder: Path, method: str, model: str = "model-x", prompts: int = 4, per_prompt: int = 1,
             suite: tuple[str, str] = ("mini", "d1gest"), failed: tuple[str, ...] = (), missing: tuple[str, ...] = (),
             frames: int = 9, size: int = 32, seed: int = 0, extra_rows: tuple[str, ...] = ()) -> Path:
    """A run folder as `vbench-pref eval --out` leaves it (run/ beside videos/), with synthetic videos."""
    videos, run = folder / "videos", folder / "run"
    videos.mkdir(parents=True)
    run.mkdir()
    manifest, scores, errors = [], ["video,prompt,score_test"], ["video,evaluator,error"]
    for p in range(prompts):
        for i in range(per_prompt):
            name = f"mini-{p:03d}-{i}.mp4"
            if name not in missing:
                clip = smooth_motion(T=frames, H=size, W=size, seed=seed + 10 * p + i, velocity=(0.5 + i, 1.0))
                write_video(videos / name, clip, fps=8)
            manifest.append({"video": name, "prompt": PROMPTS[p], "prompt_id": f"mini-{p:03d}", "index": i,
                             "seed": 100 * p + i})
            if name in failed:
                scores.append(f'{name},"{PROMPTS[p]}",')
                errors.append(f"{name},score_test,cannot decode")
            else:
                scores.append(f'{name},"{PROMPTS[p]}",0.5')
    scores += list(extra_rows)
    (videos / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    (run / "scores.csv").write_text("\n".join(scores) + "\n")
    (run / "errors.csv").write_text("\n".join(errors) + "\n")
    (run / "summary.json").write_text(json.dumps({"n_videos": len(manifest), "scores": {"score_test": {"mean": 0.5}}}))
    (run / "run.json").write_text(json.dumps({
        "run_id": f"run-{method}", "model": model, "method": method,
        "inputs": {"videos": str(videos)}, "config": {"inputs": {"videos": str(videos)}},
        "suite": {"name": suite[0], "digest": suite[1], "prompts": prompts},
    }))
    return folder


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def eval_runs(run_cli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two eval runs of the built-in tiny models on the demo suite, made through the CLI once for the module."""
    folder = tmp_path_factory.mktemp("evals")
    for model, out in (("builtin:tiny-wan", "wan"), ("builtin:tiny-cogvideox", "cog")):
        result = run_cli(folder, "eval", "--model", model, "--prompts", "demo", "-e", "temporal_flicker", "--out", out)
        assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    return hand_run(tmp_path / "a", "base"), hand_run(tmp_path / "b", "dpo", seed=7)


# --- end to end ----------------------------------------------------------------------------------------------


def test_create_from_two_eval_runs_end_to_end(run_cli, eval_runs: Path) -> None:
    result = run_cli(eval_runs, "study", "create", "--runs", "wan", "cog/run", "--out", "study",
                     "--participants", "4", "--per-participant", "4", "--attention-checks", "1")
    assert result.returncode == 0, result.stderr
    study = eval_runs / "study"
    assert "next: vbench-pref study serve" in result.stdout and "vbench-pref study invite" in result.stdout
    assert "2 methods" not in result.stderr and result.stdout.count("\n") <= 15  # one screen
    plan = load_plan(study)
    labels = ["builtin:tiny-wan (random weights)", "builtin:tiny-cogvideox (random weights)"]
    assert list(plan.methods) == labels and plan.baseline == labels[0]
    assert plan.suite["name"] == "demo" and plan.aspects == ("vq", "mq", "ta", "overall")
    assert [p.id for p in plan.participants] == ["p01", "p02", "p03", "p04"]
    assert all(len(p.items) == 5 for p in plan.participants)
    # tokens: private, one per participant, unguessable
    tokens = load_tokens(study)
    assert stat.S_IMODE(os.stat(study / "tokens.json").st_mode) == 0o600
    assert set(tokens.participants) == {p.id for p in plan.participants}
    assert len({*tokens.participants.values(), tokens.admin}) == 5 and all(len(t) >= 32 for t in tokens.participants.values())
    # media: every video once, playable, named by a random id; sources recorded with their sha256
    files = sorted(p.name for p in (study / "media").iterdir())
    assert files == sorted(f"{v}.webm" for v in plan.videos)
    for video in plan.videos.values():
        decoded = decode_video(study / video.media)
        assert next(iter(decoded.specs)) is not None
        source = Path(plan.methods[video.method].videos_dir) / video.source
        assert not Path(video.source).is_absolute() and sha256_file(source) == video.sha256
    # blinding: nothing the browser sees (media names, items) names a method or a source file
    public = " ".join([*(f"{i.id} {i.left} {i.right}" for i in plan.items.values()), *files]).lower()
    for word in ("wan", "cog", "base", "demo", "mp4", "p01"):
        assert word not in public.replace(".webm", "")
    assert all(len(v) == 16 and int(v, 16) >= 0 for v in [*plan.videos, *plan.items])
    # attention checks: a video beside its own spoiled copy, on the side the item names
    checks = [i for i in plan.items.values() if i.check]
    assert len(checks) == 4
    for item in checks:
        spoiled = plan.videos[item.left if item.check == "left" else item.right]
        shown = plan.videos[item.right if item.check == "left" else item.left]
        assert spoiled.corrupted_from == shown.id and shown.corrupted_from is None
    assert not (study / ".create.jsonl").exists()


def test_media_of_a_check_is_visibly_spoiled(tmp_path: Path, two_runs) -> None:
    result = create_study(CreateOptions(runs=[str(r) for r in two_runs], out=tmp_path / "s", participants=2,
                                        per_participant=2, attention_checks=1))
    plan = result.plan
    for video in (v for v in plan.videos.values() if v.corrupted_from):
        spoiled, _ = media.read_frames(tmp_path / "s" / video.media)
        clean, _ = media.read_frames(tmp_path / "s" / plan.videos[video.corrupted_from].media)
        assert spoiled.shape == clean.shape and abs(spoiled.astype(float) - clean).mean() > 40


# --- refusals --------------------------------------------------------------------------------------------------


def _refusal_cases(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    a = hand_run(tmp_path / "a", "base")
    b = hand_run(tmp_path / "b", "dpo")
    other = hand_run(tmp_path / "other", "sft", suite=("vbench", "ffff"))
    same = hand_run(tmp_path / "same", "base")
    (tmp_path / "plain").mkdir()
    outside = hand_run(tmp_path / "outside", "sft", extra_rows=('../../a/videos/mini-000-0.mp4,"x",0.5',))
    runs = ["--runs", str(a), "--runs", str(b)]
    return {
        "mixed suites": ([*runs, "--runs", str(other)], "mixed prompt suites: 'base' is on mini (sha256 d1gest), 'sft' on vbench (sha256 ffff)"),
        "one method": (["--runs", str(a)], "at least 2 methods"),
        "not a run": ([*runs, "--runs", str(tmp_path / "plain")], "not a run folder"),
        "same model and method": (["--runs", str(a), "--runs", str(same)], "name them with LABEL=PATH"),
        "duplicate label": (["--runs", f"x={a}", "--runs", f"x={b}"], "duplicate label 'x'"),
        "unknown aspect": ([*runs, "--aspects", "vq,beauty"], "unknown aspect 'beauty'"),
        "no participants": ([*runs, "--participants", "0"], "--participants"),
        "no comparisons": ([*runs, "--per-participant", "0"], "--per-participant"),
        "negative checks": ([*runs, "--attention-checks", "-1"], "--attention-checks"),
        "negative seed": ([*runs, "--seed", "-1"], "--seed"),
        "bad overlap": ([*runs, "--overlap", "0"], "--overlap"),
        "answers": ([*runs, "--answers", "likert"], "--answers must be one of abc, gsb"),
        "baseline": ([*runs, "--baseline", "nope"], "--baseline 'nope' is not one of the methods: base, dpo"),
        "outside": ([*runs, "--runs", str(outside)], "outside its run's videos folder"),
    }


def test_every_refusal_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    for name, (args, message) in _refusal_cases(tmp_path).items():
        out = tmp_path / f"study-{name.replace(' ', '-')}"
        result = invoke("study", "create", *args, "--out", out)
        assert result.exit_code == 2, (name, result.output)
        assert message in result.stderr, (name, result.stderr)
        assert result.stderr.count("\n") == 1, (name, result.stderr)
        assert not out.exists(), name


def test_an_existing_study_is_never_replanned(tmp_path: Path, two_runs) -> None:
    args = ["study", "create", "--runs", two_runs[0], "--runs", two_runs[1], "--out", tmp_path / "s",
            "--participants", "2", "--per-participant", "2"]
    assert invoke(*args).exit_code == 0
    before = (tmp_path / "s" / "study.json").read_bytes()
    again = invoke(*args)
    assert again.exit_code == 2 and "already holds a study" in again.stderr
    assert (tmp_path / "s" / "study.json").read_bytes() == before


# --- runs: labels, left-out videos, picks --------------------------------------------------------------------


def test_labels_failed_missing_and_one_video_per_prompt(tmp_path: Path) -> None:
    a = hand_run(tmp_path / "a", "base", prompts=5, per_prompt=3, failed=("mini-004-0.mp4", "mini-004-1.mp4",
                                                                          "mini-004-2.mp4"))
    b = hand_run(tmp_path / "b", "base", model="model-y", prompts=5, missing=("mini-001-0.mp4",))
    opts = CreateOptions(runs=[str(a), f"tuned={b}"], out=tmp_path / "s", participants=3, per_participant=3,
                         attention_checks=0, seed=5)
    result = create_study(opts)
    assert list(result.plan.methods) == ["model-x", "tuned"]  # same method: the model names the first
    assert (result.runs[0].failed, result.runs[1].missing) == (3, 1)
    # prompt 1 (missing in b) and prompt 4 (failed in a) are left out
    assert result.prompts_common == 3 and result.prompts_left_out == 2
    prompts = {v.prompt_id for v in result.plan.videos.values()}
    assert prompts == {"mini-000", "mini-002", "mini-003"}
    sources = {v.source for v in result.plan.videos.values() if v.method == "model-x"}
    assert len(sources) == 3  # one of the three videos of each prompt
    again = create_study(CreateOptions(**{**opts.__dict__, "out": tmp_path / "t"}))
    assert {v.source for v in again.plan.videos.values() if v.method == "model-x"} == sources  # seeded


def test_gsb_pairs_every_method_with_the_baseline(tmp_path: Path) -> None:
    runs = [str(hand_run(tmp_path / m, m, seed=i)) for i, m in enumerate(("base", "sft", "dpo"))]
    result = create_study(CreateOptions(runs=runs, out=tmp_path / "s", participants=4, per_participant=4,
                                        answers="gsb", baseline="sft", attention_checks=0))
    plan = result.plan
    assert plan.answers == "gsb" and plan.baseline == "sft"
    pairs = Counter(tuple(sorted(plan.methods_of(i))) for i in plan.items.values())
    assert set(pairs) == {("base", "sft"), ("dpo", "sft")} and pairs[("base", "sft")] == pairs[("dpo", "sft")]


# --- resume ---------------------------------------------------------------------------------------------------


def test_an_interrupted_create_resumes_and_reuses_its_media(tmp_path: Path, two_runs, monkeypatch) -> None:
    opts = CreateOptions(runs=[str(r) for r in two_runs], out=tmp_path / "s", participants=3, per_participant=4,
                         attention_checks=1)
    real = media.to_webm
    made: list[Path] = []

    def dies_after_three(source, target, spoil_seed=None):
        if len(made) == 3:
            raise KeyboardInterrupt
        made.append(target)
        return real(source, target, spoil_seed=spoil_seed)

    monkeypatch.setattr(media, "to_webm", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        create_study(opts)
    assert not (tmp_path / "s" / "study.json").exists() and not (tmp_path / "s" / "tokens.json").exists()
    stamps = {p: p.stat().st_mtime_ns for p in made}
    monkeypatch.setattr(media, "to_webm", real)
    result = create_study(opts)
    assert result.media_reused == 3 and result.media_made == len(result.plan.videos) - 3
    assert all(p.stat().st_mtime_ns == stamps[p] and p.stem in result.plan.videos for p in made)
    assert sorted(p.stem for p in (tmp_path / "s" / "media").iterdir()) == sorted(result.plan.videos)
    assert not (tmp_path / "s" / ".create.jsonl").exists()


# --- the design -------------------------------------------------------------------------------------------------


GRID = [
    # participants, per participant, prompts, methods, overlap
    (30, 18, 100, 4, 3), (30, 18, 40, 4, 3), (30, 18, 5, 2, 3), (7, 5, 9, 3, 2), (12, 5, 50, 4, 3),
    (3, 5, 50, 4, 3), (10, 7, 3, 4, 2), (5, 4, 4, 3, 5), (9, 6, 6, 4, 1), (2, 12, 2, 4, 3), (31, 18, 17, 5, 3),
    (4, 4, 1, 4, 2),
]


def _check_design(n: int, k_asked: int, p: int, m: int, overlap: int, answers: str) -> None:
    pairs = method_pairs(m, answers, 0)
    q = len(pairs)
    design = assign_comparisons(n, k_asked, p, pairs, overlap, seed=3)
    k = design.per_participant
    assert k == min(k_asked, p * q)
    cells_of = []
    study_pairs: Counter = Counter()
    sides: Counter = Counter()
    cell_sides: Counter = Counter()
    for items in design.participants:
        assert len(items) == k
        cells = [(c.prompt, frozenset((c.left, c.right))) for c in items]
        assert len(set(cells)) == k  # distinct comparisons
        assert all(frozenset(pair) in {frozenset(x) for x in pairs} for _, pair in cells)
        counts = Counter(pair for _, pair in cells)
        assert all(counts[frozenset(x)] in (k // q, math.ceil(k / q)) for x in pairs)  # even within a participant
        if p >= k:
            assert len({c.prompt for c in items}) == k  # no prompt twice
        study_pairs.update(counts)
        for c in items:
            sides[(min(c.left, c.right), max(c.left, c.right), c.left)] += 1
            cell_sides[(c.prompt, min(c.left, c.right), max(c.left, c.right), c.left)] += 1
        cells_of.append(cells)
    total = n * k
    assert all(study_pairs[frozenset(x)] in (total // q, math.ceil(total / q)) for x in pairs)  # even over the study
    for a, b in pairs:
        x, y = min(a, b), max(a, b)
        assert abs(sides[(x, y, x)] - sides[(x, y, y)]) <= 1  # each side half the time
    for (prompt, x, y, _), _count in cell_sides.items():
        assert abs(cell_sides[(prompt, x, y, x)] - cell_sides[(prompt, x, y, y)]) <= 1
    judged = Counter(cell for cells in cells_of for cell in cells)
    assert len(judged) == design.distinct
    per_prompt = Counter(prompt for prompt, _ in judged)
    assert max(per_prompt.values()) - min(per_prompt.values()) <= 1  # prompts even over the comparisons used
    assert design.prompts_used == len(per_prompt)
    assert max(judged.values()) - min(judged.values()) <= 1  # every comparison judged as often as any other
    if design.distinct < p * q:  # comparisons left unused: then each used one is judged by `overlap` or more
        step = q // math.gcd(k, q)
        if n // overlap >= step:
            assert min(judged.values()) >= overlap
    elif n * k >= overlap * p * q:
        assert min(judged.values()) >= overlap


@pytest.mark.parametrize("answers", ["abc", "gsb"])
def test_the_design_keeps_every_guarantee(answers: str) -> None:
    for case in GRID:
        _check_design(*case, answers)


def test_the_design_keeps_every_guarantee_at_random_sizes() -> None:
    rng = random.Random(0)
    for _ in range(150):
        n, k, p, m = rng.randint(1, 24), rng.randint(1, 20), rng.randint(1, 30), rng.randint(2, 5)
        _check_design(n, k, p, m, rng.randint(1, 6), rng.choice(["abc", "gsb"]))


def test_the_design_is_seeded_shuffled_and_overlaps() -> None:
    pairs = method_pairs(4, "abc", 0)
    one = assign_comparisons(30, 18, 100, pairs, 3, seed=1)
    assert one == assign_comparisons(30, 18, 100, pairs, 3, seed=1)
    assert one != assign_comparisons(30, 18, 100, pairs, 3, seed=2)
    # 30 participants x 18 over 6 pairs, 3 judges each: 180 comparisons, 10 blocks of 3 participants
    assert one.distinct == 180 and one.prompts_used == 100
    judged = Counter((c.prompt, frozenset((c.left, c.right))) for items in one.participants for c in items)
    assert set(judged.values()) == {3}
    # the same block, shuffled differently: participants 0 and 10 see the same comparisons in another order
    first, eleventh = one.participants[0], one.participants[10]
    key = lambda c: (c.prompt, frozenset((c.left, c.right)))  # noqa: E731
    assert {key(c) for c in first} == {key(c) for c in eleventh} and [key(c) for c in first] != [key(c) for c in eleventh]


def test_attention_checks_never_first_on_distinct_videos() -> None:
    checks, pool = add_attention_checks(30, 18, 2, 200, 3, seed=0)
    assert len(pool) == 20  # 60 checks, each spoiled copy seen by about 3 participants
    sides = Counter()
    for participant in checks:
        assert len(participant) == 2 and all(1 <= c.position < 20 for c in participant)
        assert len({c.video for c in participant}) == 2 and {c.video for c in participant} <= set(pool)
        sides.update(c.side for c in participant)
    assert sides["left"] > 10 and sides["right"] > 10
    assert add_attention_checks(3, 4, 0, 10, 3) == ([[], [], []], [])


def test_check_positions_keep_the_order_of_comparisons(tmp_path: Path, two_runs) -> None:
    result = create_study(CreateOptions(runs=[str(r) for r in two_runs], out=tmp_path / "s", participants=5,
                                        per_participant=4, attention_checks=2))
    for participant in result.plan.participants:
        items = [result.plan.items[i] for i in participant.items]
        assert len(items) == 6 and items[0].check is None and sum(i.check is not None for i in items) == 2


# --- invite -------------------------------------------------------------------------------------------------------


def test_invite_prints_every_link_and_the_admin_link(tmp_path: Path, two_runs) -> None:
    study = tmp_path / "s"
    create_study(CreateOptions(runs=[str(r) for r in two_runs], out=study, participants=3, per_participant=2))
    tokens = load_tokens(study)
    plain = invoke("study", "invite", study)
    assert plain.exit_code == 0, plain.output
    lines = plain.stdout.splitlines()
    assert lines == [f"{p}  http://127.0.0.1:8000/s/{t}" for p, t in tokens.participants.items()] + [
        f"admin  http://127.0.0.1:8000/admin/{tokens.admin}"]
    as_json = invoke("study", "invite", study, "--base-url", "https://lab.example.org/study/", "--json")
    data = json.loads(as_json.stdout)
    assert data["admin"] == f"https://lab.example.org/study/admin/{tokens.admin}"
    assert [p["url"] for p in data["participants"]] == [f"https://lab.example.org/study/s/{t}"
                                                        for t in tokens.participants.values()]
    bad = invoke("study", "invite", study, "--base-url", "javascript:alert(1)")
    assert bad.exit_code == 2 and "--base-url" in bad.stderr
    missing = invoke("study", "invite", tmp_path / "nothing")
    assert missing.exit_code == 2 and "study folder not found" in missing.stderr


def test_pairs_of_the_design_cover_all_pairs_of_methods() -> None:
    assert method_pairs(4, "abc", 0) == list(itertools.combinations(range(4), 2))
    assert method_pairs(4, "gsb", 2) == [(0, 2), (1, 2), (3, 2)]
