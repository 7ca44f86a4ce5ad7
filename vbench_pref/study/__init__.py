"""Human preference studies: blinded side-by-side comparisons of eval runs, served in the browser.

A study folder holds the plan (``study.json``), the participants' tokens (``tokens.json``, private), the
videos as the browser plays them (``media/``) and the answers (``answers.sqlite``). ``plan`` is the data
model, ``store`` the answer database, ``create`` makes a study from runs, ``server`` serves it (and the run
browser), ``analysis`` turns answers into win rates, Bradley-Terry strengths and agreement, ``report``
writes them, ``export`` turns them into training pairs.
"""
