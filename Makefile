# Every target creates/updates .venv itself; `make install` is a no-op when it is current.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
ARGS    ?=

.PHONY: install train test lint bench study clean

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

lint: install
	$(BIN)/ruff check vaegan tests

clean:
	rm -rf outputs multirun .pytest_cache
