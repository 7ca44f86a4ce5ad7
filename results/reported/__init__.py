"""Reported results shipped with the package (installed as ``vbench_pref.reported``)."""
