"""vbench-pref: benchmark suite and leaderboard for preference-aligned video diffusion models."""

__version__ = "0.1.0"
