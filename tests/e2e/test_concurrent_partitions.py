"""Two task partitions materialized at the same time, as the shipped ``dagster.yaml`` allows:
two ``dagster asset materialize`` processes on one workspace (one DVC repository, one
SQLite MLflow store, one feature cache, one tiny base) and one ``DAGSTER_HOME``."""

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from dagster import DagsterInstance
from mlflow.tracking import MlflowClient

from data.schema import read_split
from data.versioning import recorded_hash
from models.loading import load_base
from registry.tracking import client_for, open_run
from training.feature_cache import cache_key, load_or_compute_features

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TASKS = ("vqa", "chartqa")
# Small data and few steps: this tests that the stores hold under two writers, not learning.
RUN_CONFIG = {
    "execution": {"config": {"in_process": {}}},
    "ops": {
        "raw_dataset": {"config": {"train": 48, "val": 8, "test": 16}},
        "finetuned_adapter": {"config": {"overrides": ["steps=6", "batch_size=8", "log_every=3"]}},
    },
}


def _start(task: str, env: dict[str, str], config: Path, logs: Path) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).with_name("dagster")),
        *("asset", "materialize", "--select", "*", "--partition", task, "-m", "orchestration.definitions"),
        *("--config", str(config)),
    ]
    log = (logs / f"{task}.log").open("w")
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def test_two_partitions_materialized_at_once_both_succeed(tmp_path: Path) -> None:
    workspace, home = tmp_path / "workspace", tmp_path / "dagster"
    home.mkdir()
    shutil.copy(REPO / "configs" / "dagster" / "dagster.yaml", home / "dagster.yaml")
    # Dagster's SQLite storage is created once, as the webserver or daemon does before any
    # run: two processes creating it together fail ("table secondary_indexes already exists").
    DagsterInstance.from_config(str(home)).dispose()
    config = tmp_path / "run_config.yaml"
    config.write_text(yaml.safe_dump(RUN_CONFIG))
    env = {
        **os.environ,
        "PALITUNE_HOME": str(workspace),
        "DAGSTER_HOME": str(home),
        "PALITUNE_RETRIES": "0",  # a race must fail the run, not hide behind a retry
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.monotonic()
    processes = {task: _start(task, env, config, tmp_path) for task in TASKS}
    codes = {task: p.wait(timeout=900) for task, p in processes.items()}
    logs = {task: (tmp_path / f"{task}.log").read_text() for task in TASKS}
    failed = {task: logs[task][-4000:] for task, code in codes.items() if code != 0}
    assert not failed, json.dumps(failed, indent=1)
    print(f"both partitions in {time.monotonic() - started:.0f} s")
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_run_records()
    assert len(runs) == 2 and all(r.dagster_run.is_success for r in runs)
    assert max(r.start_time or 0 for r in runs) < min(r.end_time or 0 for r in runs), "the two runs overlapped"

    client = MlflowClient(f"sqlite:///{workspace}/mlflow/mlflow.db")
    for task in TASKS:
        digest = recorded_hash(workspace / "dvc-data" / "synthetic" / task)
        assert digest and len(digest) == 32, task
        (version,) = client.search_model_versions(f"name = 'palitune-{task}'")
        assert version.tags["palitune.dataset_hash"] == digest
        assert version.tags["palitune.promotion.decision"] in ("promoted", "rejected")
        assert client.get_metric_history(version.run_id, "train/loss"), "training logged into the run"
        assert "Unable to acquire lock" not in logs[task] and "database is locked" not in logs[task]
    # Both renders are recorded in the one dvc.lock, each with its own parameters.
    stages = yaml.safe_load((workspace / "dvc.lock").read_text())["stages"]
    assert {f"synthesize@{task}" for task in TASKS} <= set(stages)
    params = yaml.safe_load((workspace / "params.yaml").read_text())["synthetic"]
    assert all(params[task]["train"] == 48 for task in TASKS), "neither task's parameters were lost"


def _at_once(target: Callable[..., object], *args: object, processes: int = 2) -> list[object]:
    """Run ``target(*args)`` in fresh processes released together; what each returned or raised."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=_report, args=(target, barrier, results, *args)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    return outcomes


def _report(target: Callable[..., object], barrier: Any, results: Any, *args: object) -> None:
    torch.set_num_threads(1)
    barrier.wait()
    try:
        results.put(target(*args))
    except Exception as err:  # the test shows what failed, in which process
        results.put(f"{type(err).__name__}: {err}")


def _open_run(db: str) -> str:
    client = client_for(f"sqlite:///{db}")
    return open_run(client, "palitune", Path(db).parent / "artifacts", run_name="concurrent", tags={})


def test_runs_opened_at_once_on_a_fresh_mlflow_store_all_succeed(tmp_path: Path) -> None:
    db = tmp_path / "mlflow" / "mlflow.db"
    outcomes = _at_once(_open_run, str(db))
    assert all(isinstance(o, str) and len(o) == 32 for o in outcomes), outcomes
    assert len(client_for(f"sqlite:///{db}").search_runs(["1"])) == 2


def _fill_feature_cache(base: str, dataset: str, cache_root: str) -> float:
    model, processor = load_base(base)
    model.model.vision_tower.requires_grad_(False)
    examples = read_split(Path(dataset), "train")
    key = cache_key(
        dataset="one dataset",
        base_ref=base,
        model=model,
        processor=processor,
        precision="fp32",
        device=torch.device("cpu"),
    )
    features = load_or_compute_features(Path(cache_root), key, model, processor, Path(dataset), examples, batch_size=8)
    return float(features.lookup([e.image for e in examples]).double().sum())


def test_processes_filling_one_feature_cache_entry_at_once_agree(
    tmp_path: Path, tiny_base: Path, small_vqa: Path
) -> None:
    outcomes = _at_once(_fill_feature_cache, str(tiny_base), str(small_vqa), str(tmp_path / "cache"))
    assert all(isinstance(o, float) for o in outcomes) and len(set(outcomes)) == 1, outcomes
    (entry,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert not entry.name.startswith("."), "no staged folder left behind"
