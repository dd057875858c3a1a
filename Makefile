# Every target creates/updates .venv itself; `make install` is a no-op when it is current.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
ARGS    ?=

.PHONY: install train test test-fast test-slurm lint bench bench-gpu study clean

install: $(STAMP)

# torch and torchvision come from the package index as the pinned matching pair in
# pyproject.toml (one resolver run), never from a preinstalled CPU-only wheel.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python -c "import torch, torchvision, lightning, lpips; torchvision.ops.nms"
	touch $(STAMP)

train: install
	$(BIN)/vaegan-train experiment=quickstart $(ARGS)

test: install
	$(BIN)/pytest -q $(ARGS)

# The suite without the tests marked slow (console-script runs, DDP, multirun, notebook, study,
# bench): the quick check while editing. `make test` (what CI runs) runs them all.
test-fast: install
	$(BIN)/pytest -q -m "not slow" $(ARGS)

# The tests marked slurm (sweep, sbatch, DDP through srun, pre-emption and requeue) against a
# one-node SLURM cluster on this machine: scripts/slurm/local_cluster.sh installs slurm-wlm and
# munge if missing (root), starts it, and it is stopped again whatever the tests did. A slurm
# test that skips fails the target (VAEGAN_REQUIRE_SLURM=1). A few minutes on 2 CPU cores.
test-slurm: install
	scripts/slurm/local_cluster.sh start
	eval "$$(scripts/slurm/local_cluster.sh env)"; \
	VAEGAN_REQUIRE_SLURM=1 $(BIN)/pytest -q -rs -m slurm $(ARGS); status=$$?; \
	scripts/slurm/local_cluster.sh stop; exit $$status

lint: install
	$(BIN)/ruff check vaegan tests
	$(BIN)/lint-imports

# Speed and memory against the alternatives (docs/performance.md): 10-16 min on 2 CPU cores,
# writes bench/RESULTS.md. ARGS=--quick for a few minutes; ARGS="--only designs,memory" for a part.
bench: install
	$(BIN)/python -m vaegan.bench $(ARGS)

# Stable Diffusion kl-f8 scale on one CUDA GPU (<= 8 min, no downloads): both step designs,
# peak memory, each GPU option, a 200-step DDP run; writes bench/RESULTS-gpu.md.
# ARGS=--dry-run runs the same code on the CPU at tiny sizes (~15 s; the test suite runs it).
bench-gpu: install
	$(BIN)/python -m vaegan.bench.gpu $(ARGS)

# The KL study (docs/study.md): trains every arm x seed x regime of
# conf/study/study.yaml (GAN arms with their paired no-GAN branch) and writes study/REPORT.md.
# SCALE=small (default, ~27 min planned on 2 quiet CPU cores) | long (4000 steps, GAN from 2000:
# the plateau's horizon, in parts: ARGS=part=paired|heavy|mean|clamp, 11-39 min each; report in
# study/long/) | full (one GPU) | tiny (what the test runs). ARGS=dry_run=true prints the plan and estimate; ARGS="only=[C1,F2]" some claims;
# ARGS=fresh=true retrains runs that finished before (default: kept, so a rerun resumes).
study: install
	$(BIN)/python -m vaegan.study $(if $(SCALE),scale=$(SCALE),) $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
