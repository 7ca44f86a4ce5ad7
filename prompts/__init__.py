"""Prompt suites bundled with vbench-pref (installed as the package data of ``vbench_pref.prompts``)."""
