"""The ground floor: the words every other layer speaks, importing nothing of vaegan's.

Metric names (``metric_names``), the run directory's layout (``layout``), the one shape of a
bad-value message and its checks (``checks``), secret redaction (``redact``) and Hydra
override quoting (``overrides``). Everything above may import these; they import no layer.
"""
