"""A scale in parts (`long`): each invocation trains its part's arms, judges every part's
finished runs, and the invocation log keeps each part's clock for the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vaegan.study import invocations
from vaegan.study.__main__ import other_parts
from vaegan.study.config import StudyConfigError, check_metric_names, load_study
from vaegan.study.evaluate import RunTable
from vaegan.study.plan import plan
from vaegan.study.provenance import Clock
from vaegan.study.runner import DONE_FILE, JobResult
from vaegan.vocab import metric_names as metric


def long_study(tmp_path: Path, *overrides: str):
    return load_study(["scale=long", f"runs_dir={tmp_path}/runs", f"out_dir={tmp_path}/out",
                       *overrides])


def test_each_part_trains_its_arms_with_its_seeds(tmp_path):
    paired = long_study(tmp_path)
    assert paired.part == "paired"
    assert {(job.arm, job.seed) for job in paired.jobs()} == {
        ("ldm/base", seed) for seed in range(3)}
    more = long_study(tmp_path, "part=paired_more").jobs()
    assert {(job.arm, job.seed) for job in more} == {("ldm/base", 3), ("ldm/base", 4)}
    for part, arm in (("heavy", "ldm/heavy"), ("mean", "mean/base")):
        jobs = long_study(tmp_path, f"part={part}").jobs()
        assert {(job.arm, job.seed) for job in jobs} == {(arm, seed) for seed in range(3)}
    everything = long_study(tmp_path, "part=all")
    assert len(everything.jobs()) == 5 + 3 * 3 == len(paired.all_jobs())
    assert {job.run_dir for job in everything.jobs()} == {job.run_dir for job in
                                                          paired.all_jobs()}
    # only the arms some part runs exist at this scale; the others' claims are "not run"
    assert set(paired.arms) == {"ldm/base", "ldm/heavy", "mean/base", "ldm/clamp10"}
    assert paired.seeds_of("ldm/base") == (0, 1, 2, 3, 4)
    assert paired.seeds_of("ldm/clamp10") == (0, 1, 2)
    assert all(p.job.arm == "ldm/base" for p in plan(paired))


def test_a_part_may_pack_its_runs_onto_its_own_workers(tmp_path):
    assert long_study(tmp_path).workers == 3               # paired: its own
    assert long_study(tmp_path, "part=heavy").workers == 2  # the scale's
    assert long_study(tmp_path, "part=all").workers == 2
    assert long_study(tmp_path, "part=paired", "scale.parts.paired.workers=null").workers == 2


@pytest.mark.parametrize("override, message", [
    ("part=nope", "part=nope is not a part of scale long; allowed: paired, paired_more, heavy,"
                  " mean, clamp, all"),
    ("scale.parts.paired_more.seeds=[2,3,4]",
     "scale.parts.paired_more: ldm/base seed 2 is also in part paired; give each part its own"
     " seeds"),
])
def test_an_unknown_part_is_one_line(tmp_path, override, message):
    with pytest.raises(StudyConfigError, match=message):
        long_study(tmp_path, override)


def test_a_part_on_a_scale_without_parts_is_refused():
    with pytest.raises(StudyConfigError, match="scale small has no parts"):
        load_study(["part=paired"])


def test_the_table_reads_each_arm_at_its_own_seeds(tmp_path):
    study = long_study(tmp_path)
    asked = []
    table = RunTable(study, load=lambda regime, role, seed: asked.append((role, seed)))
    table.per_seed("ldm", "heavy", "mean", {"metric": metric.TRAIN_KL, "window": "final"})
    table.per_seed("ldm", "base@nogan", "mean", {"metric": metric.TRAIN_KL, "window": "final"})
    assert asked == [("heavy", s) for s in range(3)] + [("base", s) for s in range(5)]


def test_other_parts_are_kept_when_finished_and_missing_otherwise(tmp_path):
    study = long_study(tmp_path, "part=heavy")
    paired = long_study(tmp_path).jobs()
    done = paired[0]
    done.run_dir.mkdir(parents=True)
    (done.run_dir / DONE_FILE).write_text(json.dumps({"overrides": list(done.overrides)}))
    results = {r.job: r for r in other_parts(study, study.jobs())}
    assert results[done].ok and results[done].cached
    missing = [r for job, r in results.items() if job.arm == "ldm/base" and job != done]
    assert len(missing) == 4 and not any(r.ok for r in missing)
    assert all("not trained yet" in r.error for r in missing)
    assert not any(job.arm == "ldm/heavy" for job in results)
    # one arm in two parts: the other part's seeds are the other part's runs
    more = long_study(tmp_path, "part=paired_more")
    others = {(r.job.arm, r.job.seed) for r in other_parts(more, more.jobs())}
    assert {("ldm/base", s) for s in range(5)} & others == {("ldm/base", s) for s in range(3)}


def test_the_invocation_log_keeps_every_training_invocation(tmp_path):
    study = long_study(tmp_path)
    job = study.jobs()[0]
    clock = Clock(every_s=3600).stop()
    invocations.record(study, [JobResult(job, True, 600.0, 590.0)], clock)
    invocations.record(study, [JobResult(job, True, 0.0, cached=True)], clock)  # a re-judge
    log = invocations.load(study.out_dir)
    assert len(log) == 1 and log[0]["part"] == "paired"
    assert log[0]["runs"][str(job.run_dir)] == {"wall_s": 600.0, "cpu_s": 590.0, "ok": True}
    lines = invocations.lines(study.out_dir)
    assert len(lines) == 1 and "part `paired`" in lines[0] and "min wall" in lines[0]


def test_each_scale_rewrites_only_its_own_summary(tmp_path):
    from vaegan.study.report import summary_markers, update_readme

    page = tmp_path / "study.md"
    small, long = summary_markers("small"), summary_markers("long")
    page.write_text(f"a\n{small[0]}\nold small\n{small[1]}\nb\n{long[0]}\nold long\n{long[1]}\n")
    update_readme(page, "new long", "long")
    text = page.read_text()
    assert "old small" in text and "new long" in text and "old long" not in text


def test_more_workers_than_cores_share_them():
    from vaegan.study.plan import makespan

    assert makespan([100.0] * 3, 2, cores=2) == 200.0   # two rounds
    assert makespan([100.0] * 3, 3, cores=2) == 150.0   # three at 2/3 of a core each
    assert makespan([100.0] * 3, 3, cores=4) == 100.0


@pytest.mark.parametrize("override, where, closest", [
    ("horizon.args.metric=train/kll", "horizon.args.metric='train/kll'", metric.TRAIN_KL),
    ("claims.C2.plot.metrics=[train/kl,latent/logvar_meen]", "claims.C2.plot.metrics=",
     metric.LATENT_LOGVAR_MEAN),
])
def test_an_unknown_metric_is_named_at_load_with_the_closest_known(override, where, closest):
    with pytest.raises(StudyConfigError) as err:
        load_study(["scale=tiny", override])
    message = str(err.value)
    assert where in message and f"allowed: {closest} (the closest known name)" in message
    assert "\n" not in message


def test_an_unknown_loss_term_in_a_tests_args_is_named():
    raw = {"claims": {"G2": {"tests": [{"args": {"term": "adverse", "window": "gan_phase"}}]}}}
    with pytest.raises(StudyConfigError, match=r"claims\.G2\.tests\[0\]\.args\.term='adverse' "
                       r"must name something vaegan logs; allowed: adv \(the closest"):
        check_metric_names(raw)
