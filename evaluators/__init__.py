"""Built-in evaluators, installed as ``vbench_pref.evaluators`` (one module each)."""
