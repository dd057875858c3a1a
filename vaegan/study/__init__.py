"""The KL study (``make study``): every claim of docs/claims.md put to a controlled experiment.

``conf/study/`` defines the arms (override lists, each with a control arm) and the decision
rule of every claim; ``runner`` trains them through ``vaegan.train.run``; ``measures`` and
``rules`` turn the runs into per-seed numbers, intervals and verdicts; ``report`` writes
``study/REPORT.md``.
"""
