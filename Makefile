# The README's commands. `make demo` and `make test` build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PALITUNE_HOME ?= $(CURDIR)/workspace
DAGSTER_HOME ?= $(PALITUNE_HOME)/dagster
export PALITUNE_HOME DAGSTER_HOME
# Nothing calls home, nothing downloads at run time.
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup demo test browser ui mlflow-ui lint clean bench

setup: $(VENV)/.installed

# torch first, pinned by constraints.txt to the CPU wheel (an unpinned torch pulls CUDA).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: configs/dagster/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp $< $@

# The whole graph for the vqa partition (one task; `--partition chartqa` etc. for the others).
demo: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster asset materialize --select '*' --partition vqa -m orchestration.definitions \
		--config configs/dagster/run_config.yaml
	$(BIN)/palitune summary

# Lint and types first (seconds), then the suite. The UI test drives Debian's chromium.
test: lint browser
	$(BIN)/python -m pytest

# Debian's chromium for the UI test, installed when missing and apt-get can (as root).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); } || \
		{ echo "the UI test needs chromium: sudo apt-get install chromium"; exit 1; }

# dagster dev on 127.0.0.1:3000; Ctrl-C or SIGTERM stops its whole process tree.
ui: setup $(DAGSTER_HOME)/dagster.yaml
	exec $(BIN)/python -m orchestration.ui --host 127.0.0.1 --port 3000

# The MLflow UI and REST API on the workspace's store, local only (see README for a shared server).
mlflow-ui: setup
	$(BIN)/mlflow server --backend-store-uri sqlite:///$(PALITUNE_HOME)/mlflow/mlflow.db \
		--default-artifact-root file://$(PALITUNE_HOME)/mlflow/artifacts --host 127.0.0.1 --port 5000 --workers 1

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# Every benchmark, baselines in the same process, into benchmarks/RESULTS.md (about 15 min on 2 cores).
bench: setup
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf workspace
