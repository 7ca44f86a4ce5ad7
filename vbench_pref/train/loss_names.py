"""The loss family's names and choices, without torch: the CLI builds the train-pgdpo options from these."""

# the keys of vbench_pref.train.losses.LOSSES, in order (a test checks that they agree)
LOSS_NAMES = ("sft", "dpo", "videodpo", "pgdpo", "pgdpo-ars", "pgdpo-ipr", "ipo", "slic", "dpop", "dpo-cm", "sdpo")
IPR_MODES = ("reward", "anchor")
SLIC_MARGINS = ("policy", "reference")
