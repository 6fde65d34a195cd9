"""The definitions as ``dagster dev`` loads them: graph, partitions, guards, automation, resources."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, Definitions, EnvVar, validate_run_config

from data.tasks import TASKS
from orchestration.definitions import defs
from orchestration.defs.partitions import TRAINING_CONFIGS, task_partitions
from orchestration.defs.resources import PROJECT_ROOT
from training.config import load_config

LINEAGE = ["raw_dataset", "dataset_version", "finetuned_adapter", "evaluation_report", "model_version", "champion"]
BLOCKING = {"raw_dataset": "dataset_is_valid", "finetuned_adapter": "preflight", "evaluation_report": "metric_floors"}


def test_definitions_load_and_form_the_lifecycle_chain() -> None:
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert set(LINEAGE) <= keys
    for upstream, downstream in zip(LINEAGE, LINEAGE[1:], strict=False):
        assert AssetKey(upstream) in graph.get(AssetKey(downstream)).parent_keys
    for key in LINEAGE:
        node = graph.get(AssetKey(key))
        assert node.description, f"{key} has no description"
        assert node.code_version and node.owners and node.group_name and node.kinds, key
        assert node.partitions_def == task_partitions, f"{key} is not partitioned by task"


def test_one_partition_per_task_each_with_a_valid_shipped_config() -> None:
    assert task_partitions.get_partition_keys() == list(TASKS)
    for task in TASKS:
        config = load_config(PROJECT_ROOT / TRAINING_CONFIGS[task])
        assert config.task == task and config.dataset == f"dvc-data/synthetic/{task}"


def test_the_guards_are_blocking_checks_on_their_assets() -> None:
    graph = defs.resolve_asset_graph()
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert set(BLOCKING.items()) <= checks
    for asset, name in BLOCKING.items():
        spec = next(s for s in graph.get(AssetKey(asset)).check_keys if s.name == name)
        assert graph.get_check_spec(spec).blocking, f"{asset}:{name} does not block downstream"


def test_schedule_sensor_and_job_are_defined() -> None:
    assert defs.get_schedule_def("weekly_retrain").cron_schedule == "0 3 * * 1"
    assert defs.get_sensor_def("new_dataset_version").job_name == "retrain"
    assert defs.resolve_job_def("retrain").partitions_def == task_partitions


def test_resources_come_from_the_environment_when_set() -> None:
    """Set: an EnvVar (the UI shows its name, not its value); unset: the embedded default."""
    probe = (
        "from orchestration.definitions import defs\n"
        "r = defs.resources\n"
        "for value in (r['mlflow'].tracking_uri, r['workspace'].root, r['launcher'].accelerate_config):\n"
        "    print(repr(value))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_URI": "http://127.0.0.1:5999", "PALITUNE_TASKS": "vqa,ocr"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [repr(EnvVar("MLFLOW_TRACKING_URI")), "''", "'configs/accelerate/cpu.yaml'"], out
    probe = "from orchestration.defs.partitions import task_partitions as p; print(p.get_partition_keys())"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['vqa', 'ocr']"


@pytest.mark.parametrize("path", sorted((PROJECT_ROOT / "configs" / "dagster").glob("dagster*.yaml")), ids=str)
def test_every_instance_config_is_valid_for_dagster(path: Path, tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text(path.read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["telemetry"] == {"enabled": False}
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    # keyed on what every run of a task carries, however it was started
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits


def test_the_demo_run_config_is_valid_for_the_job() -> None:
    run_config = yaml.safe_load((PROJECT_ROOT / "configs" / "dagster" / "run_config.yaml").read_text())
    assert validate_run_config(defs.resolve_job_def("retrain"), run_config)


def test_the_champion_config_is_the_promotion_policy_gates() -> None:
    from orchestration.defs.registry_assets import PromotionConfig
    from registry.promotion import PromotionPolicy, policy_gates

    fields = defs.resolve_assets_def("champion").op.config_schema.config_type.fields
    gates = policy_gates()
    assert list(fields) == [gate.name for gate in gates]
    for gate in gates:
        assert fields[gate.name].description == gate.help and fields[gate.name].default_value == gate.default
    chosen = {"margin": 0.02, "floors": {"vqa_accuracy": 0.5}}
    assert validate_run_config(defs.resolve_job_def("retrain"), {"ops": {"champion": {"config": chosen}}})
    policy = PromotionPolicy.from_gates(PromotionConfig(**chosen).model_dump())  # as the asset builds it
    assert policy == PromotionPolicy(margin=0.02, floors={"vqa_accuracy": 0.5})


def test_the_champion_goes_stale_when_the_weekly_retrain_stops() -> None:
    """A freshness policy on ``champion``: a week and a day without a decision fails it in the UI."""
    from datetime import timedelta

    from dagster import AssetKey

    policy = defs.resolve_assets_def(AssetKey("champion")).specs_by_key[AssetKey("champion")].freshness_policy
    assert policy is not None
    assert policy.fail_window.to_timedelta() == timedelta(days=8)
    assert policy.warn_window is not None and policy.warn_window.to_timedelta() < timedelta(days=8)
