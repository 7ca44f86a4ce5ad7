"""Set-level (distribution) metrics: the feature networks of FVD and friends, and the distances between feature sets."""
