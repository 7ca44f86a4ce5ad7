"""Evaluator cards, the registry and third-party plug-ins through the entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vbench_pref import registry
from vbench_pref.errors import VbenchPrefError

PLUGIN_MODULE = '''
import numpy as np
from vbench_pref.evaluator import Evaluator, ScoreSpec
from vbench_pref.video import FrameSpec


class MeanBrightness(Evaluator):
    """Mean pixel value / 255 of 4 evenly spaced frames; a test plug-in."""

    name = "mean_brightness"
    version = "1"
    scores = (ScoreSpec("brightness", True, (0.0, 1.0)), ScoreSpec("darkness", False, (0.0, 1.0)))
    frames = FrameSpec(sampling="count", count=4)
    reference = "test plug-in"

    def score(self, batch):
        values = np.array([s.frames.float().mean().item() / 255.0 for s in batch])
        return {"brightness": values, "darkness": 1.0 - values}
'''


def install_plugin(site: Path) -> Path:
    """Install a distribution the way pip lays it out: the module plus a .dist-info with entry points."""
    (site / "vbp_test_plugin.py").write_text(textwrap.dedent(PLUGIN_MODULE), encoding="utf-8")
    dist = site / "vbp_test_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vbp-test-plugin\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(
        "[vbench_pref.evaluators]\nmean_brightness = vbp_test_plugin:MeanBrightness\n", encoding="utf-8"
    )
    return site


def test_builtins_are_found_with_complete_cards() -> None:
    evaluators = registry.available()
    assert "temporal_flicker" in evaluators
    for cls in evaluators.values():
        card = cls.card()
        assert card["name"] == cls.name and card["version"] and card["scores"] and card["reference"]
        json.dumps(card)  # cards are plain data


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(VbenchPrefError, match="Did you mean temporal_flicker"):
        registry.get("temporal_flick")
    with pytest.raises(VbenchPrefError, match="unknown evaluator 'zzz'"):
        registry.get("zzz")


def test_plugin_from_entry_point_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(install_plugin(tmp_path)))
    cls = registry.get("mean_brightness")
    assert cls.columns() == ["mean_brightness.brightness", "mean_brightness.darkness"]
    assert cls.card()["scores"][1]["higher_is_better"] is False


def test_broken_plugin_is_skipped_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[vbench_pref.evaluators]\nbroken = no_such_module:X\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="skipping plug-in broken"):
        names = registry.available()
    assert "temporal_flicker" in names


def test_cli_lists_plugins_and_never_exposes_top_level_evaluators(tmp_path: Path) -> None:
    install_plugin(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    listing = subprocess.run(
        [sys.executable, "-m", "vbench_pref", "evaluators", "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=True,
    )
    names = [card["name"] for card in json.loads(listing.stdout)]
    assert "temporal_flicker" in names and "mean_brightness" in names
    probe = subprocess.run(
        [sys.executable, "-c", "import vbench_pref.evaluators.temporal_flicker; import evaluators"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert "No module named 'evaluators'" in probe.stderr


def test_options_are_validated() -> None:
    cls = registry.get("temporal_flicker")
    with pytest.raises(VbenchPrefError, match="unknown option"):
        cls(nonsense=1)
