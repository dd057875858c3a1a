"""Train the study's arms through the real training path, one normal run dir per arm × seed.

In-process (``vaegan.train.run`` on a config composed from ``conf/train.yaml`` exactly as
``vaegan-train`` would compose it) rather than one ``vaegan-train`` process per run: start-up
(imports, data) would otherwise cost more than a tiny arm's training. Each run dir gets the
files Hydra writes (``.hydra/config.yaml``, ``overrides.yaml``, ``hydra.yaml``) so
``vaegan.analysis`` and ``vaegan-compare`` read it like any other run.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from vaegan.train import compose_train_config, run
from vaegan.vocab.layout import RunLayout
from vaegan.vocab.metric_names import GEN_STEP

DONE_FILE = "study_done.json"  # written last: a run dir without it is re-trained


@dataclass(frozen=True)
class Job:
    """One training run of the study: an arm at one seed, with its full override list."""

    arm: str
    seed: int
    overrides: tuple[str, ...]
    run_dir: Path


@dataclass
class JobResult:
    job: Job
    ok: bool
    seconds: float
    cpu_seconds: float = 0.0  # process CPU time: comparable across machine load, unlike wall
    cached: bool = False
    error: str | None = None


def write_hydra_files(cfg: DictConfig, run_dir: Path, overrides: Sequence[str]) -> None:
    """What Hydra writes into ``RUN_DIR/.hydra`` for a job, so the run dir is a normal one."""
    layout = RunLayout(run_dir)
    layout.hydra_config.parent.mkdir(parents=True, exist_ok=True)
    task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.save(task, layout.hydra_config)
    OmegaConf.save(OmegaConf.create({"hydra": cfg.hydra}), layout.hydra_settings)
    OmegaConf.save(OmegaConf.create(list(overrides)), layout.hydra_overrides)


def done_marker(job: Job) -> dict:
    """What a finished run recorded about itself (empty when it is not finished)."""
    marker = job.run_dir / DONE_FILE
    return json.loads(marker.read_text()) if marker.is_file() else {}


def is_done(job: Job) -> bool:
    """True when ``job.run_dir`` holds a finished run trained with exactly these overrides."""
    marker = job.run_dir / DONE_FILE
    if not marker.is_file():
        return False
    return json.loads(marker.read_text()).get("overrides") == list(job.overrides)


def train_job(job: Job) -> None:
    """Train one run in-process; raises whatever training raises."""
    if job.run_dir.exists():  # a half-written or outdated run: start it clean
        shutil.rmtree(job.run_dir)
    cfg = compose_train_config(job.run_dir, job.overrides)
    write_hydra_files(cfg, job.run_dir, job.overrides)
    result = run(cfg, run_dir=job.run_dir)
    from vaegan.study.provenance import code_commit

    marker = {"arm": job.arm, "seed": job.seed, "overrides": list(job.overrides),
              "gen_step": result[GEN_STEP], "code_commit": code_commit()}
    (job.run_dir / DONE_FILE).write_text(json.dumps(marker, indent=2))


def quiet_lightning() -> None:
    """One line per run from the study instead of Lightning's banners for every run."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for message in (".*module\\(s\\) in eval mode.*", ".*isinstance\\(treespec, LeafSpec\\).*",
                    ".*dirpath has changed.*"):  # the same harmless notice for every run
        warnings.filterwarnings("ignore", message=message)


def attempt(job: Job, train: Callable[[Job], None] = train_job) -> JobResult:
    """Train one job, timing it; an exception becomes a failed result (and study_error.txt)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    error = None
    try:
        train(job)
    except Exception as err:  # noqa: BLE001 - one arm's failure must not end the study
        error = f"{err!r}"
        job.run_dir.mkdir(parents=True, exist_ok=True)
        (job.run_dir / "study_error.txt").write_text(traceback.format_exc())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return JobResult(job, error is None, seconds, cpu, error=error)


def _worker_init(threads: int | None) -> None:
    quiet_lightning()
    if threads:
        torch.set_num_threads(threads)


def run_jobs(
    jobs: Sequence[Job],
    fresh: bool = False,
    train: Callable[[Job], None] = train_job,
    say: Callable[[str], None] = print,
    workers: int = 1,
    threads: int | None = None,
) -> list[JobResult]:
    """Train every job not already done; a failing job is reported, never stops the others.

    ``workers`` > 1 trains that many runs at once in spawned processes (``train`` must then
    be picklable), each with ``threads`` torch threads: on a small CPU, runs side by side with
    one thread each use the cores better than one run with several threads.
    """
    results: dict[int, JobResult] = {}
    todo = []
    for i, job in enumerate(jobs):
        if not fresh and is_done(job):
            results[i] = JobResult(job, ok=True, seconds=0.0, cached=True)
            say(f"{_tag(i, jobs)}: done before, kept ({job.run_dir})")
        else:
            todo.append(i)

    def report(i: int, result: JobResult) -> None:
        results[i] = result
        status = f"FAILED: {result.error}" if result.error else "ok"
        say(f"{_tag(i, jobs)}: {result.seconds:.1f} s wall, {result.cpu_seconds:.1f} s CPU,"
            f" {status}")

    if workers <= 1:
        previous = torch.get_num_threads()
        _worker_init(threads)
        try:
            for i in todo:
                report(i, attempt(jobs[i], train))
        finally:  # in-process callers (tests) keep their own setting
            torch.set_num_threads(previous)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                                 initargs=(threads,)) as pool:
            futures = {pool.submit(attempt, jobs[i], train): i for i in todo}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    result = future.result()
                except Exception as err:  # noqa: BLE001 - a worker died (e.g. out of memory)
                    result = JobResult(jobs[i], ok=False, seconds=0.0, error=f"{err!r}")
                report(i, result)
    return [results[i] for i in range(len(jobs))]


def _tag(i: int, jobs: Sequence[Job]) -> str:
    return f"[{i + 1}/{len(jobs)}] {jobs[i].arm} seed={jobs[i].seed}"
