"""Read run directories, diagnose KL dynamics, plot and compare runs (no trainer imports)."""

from vaegan.analysis.compare import Comparison, compare_runs, run_labels
from vaegan.analysis.diagnose import Diagnosis, DiagnosisThresholds, diagnose
from vaegan.analysis.report import render_report, write_report
from vaegan.analysis.runs import Run, RunDirError, Series, find_runs, load_run, load_runs

__all__ = [
    "Comparison",
    "Diagnosis",
    "DiagnosisThresholds",
    "Run",
    "RunDirError",
    "Series",
    "compare_runs",
    "diagnose",
    "find_runs",
    "load_run",
    "load_runs",
    "render_report",
    "run_labels",
    "write_report",
]
