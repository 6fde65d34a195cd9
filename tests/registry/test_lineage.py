"""The tags a run and a model version carry, and the promotion gates declared once."""

import pytest

from registry.lineage import (
    BASE_MODEL_TAG,
    DATASET_TAG,
    METRIC_TAG_PREFIX,
    base_model_of,
    lineage_tags,
    metric_tags,
    version_tags,
)
from registry.promotion import PromotionPolicy, policy_gates
from registry.tracking import UI_ENV, run_url


def test_a_version_keeps_the_runs_lineage_and_its_metrics_only() -> None:
    run = {DATASET_TAG: "d" * 32, "mlflow.user": "someone", "mlflow.runName": "vqa-1"}
    tags = version_tags(run, {"vqa/test/vqa_accuracy": 0.123456789})
    assert tags == {DATASET_TAG: "d" * 32, METRIC_TAG_PREFIX + "vqa/test/vqa_accuracy": "0.123457"}
    assert metric_tags(tags) == {"vqa/test/vqa_accuracy": "0.123457"}


def test_lineage_names_an_unversioned_dataset_and_the_base() -> None:
    tags = lineage_tags(dataset_hash=None, base_model="tiny", config_hash="c", task="vqa", dagster_run_id="r")
    assert tags[DATASET_TAG] == "unversioned" and tags["palitune.dagster_run_id"] == "r"
    assert base_model_of(tags) == "tiny" and base_model_of({BASE_MODEL_TAG: "google/x"}) == "google/x"
    assert base_model_of({}) == "tiny"


def test_the_gates_are_the_policy_fields_with_help() -> None:
    gates = {gate.name: gate for gate in policy_gates()}
    assert list(gates) == ["margin", "slice_tolerance", "min_slice_examples", "floors"]
    defaults = PromotionPolicy()
    assert all(gate.default == getattr(defaults, name) and gate.help for name, gate in gates.items())
    assert gates["min_slice_examples"].type is int and gates["floors"].type == dict[str, float]


def test_a_policy_from_gates_copies_mappings_and_refuses_other_names() -> None:
    floors = {"vqa_accuracy": 0.5}
    policy = PromotionPolicy.from_gates({"margin": 0.1, "floors": floors})
    assert policy == PromotionPolicy(margin=0.1, floors={"vqa_accuracy": 0.5})
    floors["vqa_accuracy"] = 0.9
    assert policy.floors == {"vqa_accuracy": 0.5}
    with pytest.raises(ValueError, match="seed, unknown: not a gate"):
        PromotionPolicy.from_gates({"margin": 0.1, "seed": 7, "unknown": 1})


@pytest.mark.parametrize(
    ("uri", "ui"),
    [("sqlite:///w/mlflow.db", "http://127.0.0.1:5000"), ("https://mlflow.example.org/", "https://mlflow.example.org")],
)
def test_a_run_links_to_its_server_or_the_local_ui(uri: str, ui: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UI_ENV, raising=False)
    assert run_url(uri, "abc", "3") == f"{ui}/#/experiments/3/runs/abc"
