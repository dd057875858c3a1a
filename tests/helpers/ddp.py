"""What one DDP run must look like on disk, however its ranks were started (Lightning's
re-launch, or srun on SLURM): both ranks in one run dir, one set of logs, same weights."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.metrics import column, read_metrics
from vaegan.vocab import metric_names as metric

# Each rank writes RUN_DIR/weights_rank<r> at train end (tests.helpers.probes.WeightDigest).
DIGEST = "+callbacks.digest._target_=tests.helpers.probes.WeightDigest"


def assert_one_ddp_run(run_dir: Path, steps: int, rank1_log: str = "train_ddp_process_1.log"
                       ) -> None:
    """Both ranks trained in this dir to the same weights; one set of logs."""
    ranks = {p.name: p.read_text().split() for p in sorted(run_dir.glob("weights_rank*"))}
    assert sorted(ranks) == ["weights_rank0", "weights_rank1"], ranks
    (step0, weights0, shard0), (step1, weights1, shard1) = ranks.values()
    assert step0 == step1 == str(steps) and weights0 == weights1, ranks  # bit-identical
    assert (shard0, shard1) == ("0/2", "1/2"), ranks  # each rank its half of the data
    assert (run_dir / rank1_log).is_file()  # rank 1 ran *here*
    assert [p.relative_to(run_dir) for p in run_dir.rglob("metrics.csv")] == [
        Path("csv/metrics.csv")
    ]
    assert [p.name for p in run_dir.rglob(".hydra")] == [".hydra"]
    rows = read_metrics(run_dir)
    train_steps = [int(float(r["gen_step"])) for r in rows if r.get(metric.TRAIN_LOSS)]
    assert sorted(train_steps) == list(range(steps)), train_steps  # rank 0's rows only
    assert max(column(rows, metric.TRAIN_D_LOSS)) >= 2  # the GAN was on
