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

.PHONY: help setup demo test browser postgres ui mlflow-ui lint clean bench

# `make help` lists the targets: each target's `## ` comment is its help line.
help:
	@awk -F':.*## ' '/^[a-z-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(VENV)/.installed  ## build .venv (torch pinned to the CPU wheel, then palitune with its pins)

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
demo: setup $(DAGSTER_HOME)/dagster.yaml  ## run the whole graph once for the vqa task, then print where to look
	$(BIN)/dg launch --assets '*' --partition vqa --config configs/dagster/run_config.yaml
	$(BIN)/palitune summary

# Lint and types first (seconds), then the suite. The UI test drives Debian's chromium.
test: lint browser postgres  ## ruff, mypy, then every test (the end-to-end ones included)
	$(BIN)/python -m pytest

# Debian's chromium for the UI test, installed when missing and apt-get can (as root).
browser:  ## install Debian's chromium for the UI test when it is missing
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); } || \
		{ echo "the UI test needs chromium: sudo apt-get install chromium"; exit 1; }

# Debian's PostgreSQL server for the at-scale test, installed when missing and apt-get can (as
# root); without it that one test is skipped and says why.
postgres:  ## install Debian's postgresql for the at-scale test when it is missing
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null); } || \
		echo "no PostgreSQL server: the at-scale test will be skipped (sudo apt-get install postgresql)"

# dg dev on 127.0.0.1:3000; Ctrl-C or SIGTERM stops its whole process tree.
ui: setup $(DAGSTER_HOME)/dagster.yaml  ## Dagster UI and daemon on http://127.0.0.1:3000
	exec $(BIN)/python -m orchestration.ui --host 127.0.0.1 --port 3000

# The MLflow UI and REST API on the workspace's store, local only (see docs/reliability.md, "A shared MLflow server").
mlflow-ui: setup  ## MLflow UI and REST API on http://127.0.0.1:5000
	$(BIN)/mlflow server --backend-store-uri sqlite:///$(PALITUNE_HOME)/mlflow/mlflow.db \
		--default-artifact-root file://$(PALITUNE_HOME)/mlflow/artifacts --host 127.0.0.1 --port 5000 --workers 1

lint: setup  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy

# Every benchmark, baselines in the same process, into benchmarks/RESULTS.md (about 15 min on 2 cores).
bench: setup  ## every benchmark into benchmarks/RESULTS.md
	$(BIN)/python -m benchmarks.run_all

clean:  ## delete workspace/ and the rendered datasets (everything palitune generated; .dvc files stay)
	rm -rf workspace dvc-data/synthetic .dvc/cache .dvc/tmp
