# The README's two commands: `make demo` and `make test`. Both create or reuse .venv and install what is
# missing (apt ffmpeg for generated test videos, chromium for the browser test; pip packages from pyproject.toml).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.vidseek-installed
PYTEST_ARGS ?=
# two test processes, a test file each at a time (a module's server, cluster or Ray stays in one process): the
# suite waits on servers, subprocesses and faults, and alone left ~45% of a 2-core machine idle
TEST_WORKERS ?= 2

.PHONY: demo test test-fast lint install clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch/torchvision first, pinned as a pair: on our machines both come from local disk (see README "The two commands").
$(STAMP): pyproject.toml | $(PY)
	@command -v ffmpeg >/dev/null || (apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null) \
	  || echo "warning: could not install ffmpeg (tests that generate videos need it)"
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium (the browser test will be skipped)"
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/vidseek demo

# ruff: a small lint rule set (pyproject.toml) and the formatter's check; `ruff format .` fixes the latter.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) vidseek-demo.db .pytest_cache
