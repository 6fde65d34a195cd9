"""Registration and promotion against a real SQLite-backed MLflow store."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from evaluation.report import EvaluationReport, ScoredPrediction
from registry.models import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, register_adapter, version_by_alias
from registry.promotion import decide, run_promotion
from registry.tracking import client_for, open_run

NAME = "palitune-vqa"


def _report(scores: list[float], dataset_hash: str = "d" * 32) -> EvaluationReport:
    predictions = [ScoredPrediction(f"test-{i}", "answer en q", "p", ["a"], s) for i, s in enumerate(scores)]
    metric = sum(scores) / len(scores)
    return EvaluationReport("vqa", "test", "m", dataset_hash, {"vqa/test/vqa_accuracy": metric}, predictions)


def _never(version, scratch: Path) -> EvaluationReport:
    raise AssertionError("with no champion, nothing is re-scored")


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    return client_for(f"sqlite:///{tmp_path}/mlflow.db")


def _register(client: MlflowClient, tmp_path: Path, label: str) -> str:
    adapter = tmp_path / label
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(label.encode())
    run_id = open_run(client, "palitune", tmp_path / "artifacts", run_name=label, tags={})
    return register_adapter(client, run_id, adapter, NAME, {"palitune.dataset_hash": "d" * 32}).version


def test_no_model_means_no_alias(client: MlflowClient) -> None:
    assert version_by_alias(client, "palitune-missing", CHAMPION) is None


def test_first_version_must_beat_the_untrained_base(client: MlflowClient, tmp_path: Path) -> None:
    v1 = _register(client, tmp_path, "v1")
    assert str(version_by_alias(client, NAME, CHALLENGER).version) == v1
    decision, holder = run_promotion(client, NAME, v1, _report([0, 0]), _report([0, 0]), _never)
    assert not decision.promote and holder is None
    assert version_by_alias(client, NAME, CHAMPION) is None
    assert client.get_model_version(NAME, v1).tags["palitune.promotion.decision"] == "rejected"

    decision, holder = run_promotion(client, NAME, v1, _report([1, 0]), _report([0, 0]), _never)
    assert decision.promote and holder == v1
    assert decision.baseline_kind == "untrained base"


def test_a_challenger_is_compared_with_the_champion_rescored(client: MlflowClient, tmp_path: Path) -> None:
    v1 = _register(client, tmp_path, "v1")
    run_promotion(client, NAME, v1, _report([1, 0, 0]), _report([0, 0, 0]), _never)
    v2 = _register(client, tmp_path, "v2")
    rescored: list[str] = []

    def champion_scores(version, scratch: Path) -> EvaluationReport:
        rescored.append(str(version.version))
        return _report([1, 1, 0])

    # worse than the re-scored champion: champion stays
    decision, holder = run_promotion(client, NAME, v2, _report([1, 0, 1]), _report([0] * 3), champion_scores)
    assert rescored == [v1] and not decision.promote and holder == v1
    # better: champion moves, the old one is kept for rollback
    v3 = _register(client, tmp_path, "v3")
    decision, holder = run_promotion(client, NAME, v3, _report([1, 1, 1]), _report([0] * 3), champion_scores)
    assert decision.promote and holder == v3
    assert str(version_by_alias(client, NAME, CHAMPION).version) == v3
    assert str(version_by_alias(client, NAME, PREVIOUS_CHAMPION).version) == v1
    tags = client.get_model_version(NAME, v3).tags
    assert tags["palitune.promotion.baseline_kind"] == f"champion v{v1}"
    assert "beats" in tags["palitune.promotion.reason"]


def test_reports_on_different_examples_cannot_be_compared() -> None:
    with pytest.raises(ValueError, match="same examples"):
        decide(_report([1, 1]), _report([0, 0], dataset_hash="e" * 32), "untrained base")
    with pytest.raises(ValueError, match="same examples"):
        decide(_report([1, 1]), _report([0, 0, 0]), "untrained base")


def test_the_version_points_at_uploaded_files(client: MlflowClient, tmp_path: Path) -> None:
    version = client.get_model_version(NAME, _register(client, tmp_path, "v1"))
    files = [a.path for a in client.list_artifacts(version.run_id, "adapter")]
    assert files == ["adapter/adapter_model.safetensors"]
    assert version.source.endswith("/adapter")
