"""The PG-DPO trainer: loss math, one training spec per model family, the latent cache and the loop."""
