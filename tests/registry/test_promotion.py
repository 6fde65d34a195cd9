"""Registration and promotion against a real SQLite-backed MLflow store."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from evaluation.report import EvaluationReport, ScoredPrediction
from registry.models import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    download_adapter,
    register_adapter,
    version_by_alias,
)
from registry.promotion import PromotionPolicy, decide, rollback, run_promotion
from registry.tracking import client_for, open_run

NAME = "palitune-vqa"


def _report(scores: list[float], dataset_hash: str = "d" * 32, tags: list[dict] | None = None) -> EvaluationReport:
    tags = tags or [{} for _ in scores]
    predictions = [
        ScoredPrediction(f"test-{i}", "answer en q", "p", ["a"], s, t)
        for i, (s, t) in enumerate(zip(scores, tags, strict=True))
    ]
    metric = sum(scores) / len(scores)
    return EvaluationReport("vqa", "test", "m", dataset_hash, {"vqa/test/vqa_accuracy": metric}, predictions)


N = 100
ZEROS, HALF, MOST = [0.0] * N, [float(i % 2) for i in range(N)], [float(i % 10 != 0) for i in range(N)]


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
    decision, holder = run_promotion(client, NAME, v1, _report(ZEROS), _report(ZEROS), _never)
    assert not decision.promote and holder is None
    assert version_by_alias(client, NAME, CHAMPION) is None
    assert client.get_model_version(NAME, v1).tags["palitune.promotion.decision"] == "rejected"

    decision, holder = run_promotion(client, NAME, v1, _report(HALF), _report(ZEROS), _never)
    assert decision.promote and holder == v1
    assert decision.baseline_kind == "untrained base" and decision.ci_low > 0


def test_a_challenger_is_compared_with_the_champion_rescored(client: MlflowClient, tmp_path: Path) -> None:
    v1 = _register(client, tmp_path, "v1")
    run_promotion(client, NAME, v1, _report(HALF), _report(ZEROS), _never)
    v2 = _register(client, tmp_path, "v2")
    rescored: list[str] = []

    def champion_scores(version, scratch: Path) -> EvaluationReport:
        rescored.append(str(version.version))
        return _report(HALF)

    # no better than the re-scored champion: champion stays
    decision, holder = run_promotion(client, NAME, v2, _report(HALF), _report(ZEROS), champion_scores)
    assert rescored == [v1] and not decision.promote and holder == v1
    assert "defended against v2" in client.get_model_version(NAME, v1).tags["palitune.promotion.last_challenge"]
    # clearly better: champion moves, the old one is kept for rollback
    v3 = _register(client, tmp_path, "v3")
    decision, holder = run_promotion(client, NAME, v3, _report(MOST), _report(ZEROS), champion_scores)
    assert decision.promote and holder == v3
    assert str(version_by_alias(client, NAME, CHAMPION).version) == v3
    assert str(version_by_alias(client, NAME, PREVIOUS_CHAMPION).version) == v1
    tags = client.get_model_version(NAME, v3).tags
    assert tags["palitune.promotion.baseline_kind"] == f"champion v{v1}"
    assert "wins beyond margin" in tags["palitune.promotion.reason"] and tags["palitune.promotion.gain_ci"]

    assert rollback(client, NAME) == (v1, v3)
    assert str(version_by_alias(client, NAME, CHAMPION).version) == v1
    assert str(version_by_alias(client, NAME, PREVIOUS_CHAMPION).version) == v3, "a rollback can be undone"
    assert rollback(client, NAME) == (v3, v1)


def test_rollback_without_a_previous_champion_is_refused(client: MlflowClient, tmp_path: Path) -> None:
    v1 = _register(client, tmp_path, "v1")
    run_promotion(client, NAME, v1, _report(HALF), _report(ZEROS), _never)
    with pytest.raises(ValueError, match="previous-champion"):
        rollback(client, NAME)
    assert str(version_by_alias(client, NAME, CHAMPION).version) == v1


def test_a_noisy_gain_is_not_enough() -> None:
    # 3 of 100 examples better: higher on average, but the interval reaches 0.
    noisy = [1.0 if i < 3 else 0.0 for i in range(N)]
    decision = decide(_report(noisy), _report(ZEROS), "champion v1")
    assert decision.challenger > decision.baseline and not decision.promote
    assert decision.ci_low <= 0 < decision.ci_high and "lower bound not above margin" in decision.reason
    assert decide(_report(MOST), _report(HALF), "champion v1").promote
    assert not decide(_report(MOST), _report(HALF), "champion v1", policy=PromotionPolicy(margin=0.6)).promote


def test_a_slice_that_regresses_blocks_promotion() -> None:
    tags = [{"source": "scan" if i < 40 else "photo"} for i in range(N)]
    champion = [1.0 if i < 40 else 0.0 for i in range(N)]  # perfect on scans
    challenger = [0.5 if i < 40 else 1.0 for i in range(N)]  # much better overall, worse on scans
    decision = decide(_report(challenger, tags=tags), _report(champion, tags=tags), "champion v1")
    assert decision.ci_low > 0 and not decision.promote
    assert decision.failures == ("slice source=scan (40 examples) regresses by 0.5000 > tolerance 0.05",)
    lenient = PromotionPolicy(slice_tolerance=0.6)
    assert decide(_report(challenger, tags=tags), _report(champion, tags=tags), "champion v1", policy=lenient).promote


def test_absolute_floors_hold() -> None:
    policy = PromotionPolicy(floors={"vqa_accuracy": 0.6})
    decision = decide(_report(HALF), _report(ZEROS), "untrained base", policy=policy)
    assert not decision.promote and decision.failures == ("floor vqa_accuracy: 0.5000 < 0.6",)
    assert decide(_report(MOST), _report(ZEROS), "untrained base", policy=policy).promote


def test_reports_on_different_examples_cannot_be_compared() -> None:
    with pytest.raises(ValueError, match="same examples"):
        decide(_report([1, 1]), _report([0, 0], dataset_hash="e" * 32), "untrained base")
    with pytest.raises(ValueError, match="same examples"):
        decide(_report([1, 1]), _report([0, 0, 0]), "untrained base")


def test_the_version_points_at_uploaded_files(client: MlflowClient, tmp_path: Path) -> None:
    version = client.get_model_version(NAME, _register(client, tmp_path, "v1"))
    adapter = download_adapter(client, version, tmp_path / "fetched")
    assert [p.name for p in adapter.iterdir()] == ["adapter_model.safetensors"]
    assert (adapter / "adapter_model.safetensors").read_bytes() == b"v1"
    assert version.source.startswith("models:/m-"), "the version is the logged pyfunc model"


def test_registry_show_and_rollback_commands(client: MlflowClient, tmp_path: Path, monkeypatch, capsys) -> None:
    from palitune.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("PALITUNE_HOME", str(tmp_path / "ws"))
    v1 = _register(client, tmp_path, "v1")
    run_promotion(client, NAME, v1, _report(HALF), _report(ZEROS), _never)
    assert main(["registry", "rollback", NAME]) == 1
    assert "nothing to roll back to" in capsys.readouterr().err
    v2 = _register(client, tmp_path, "v2")
    run_promotion(client, NAME, v2, _report(MOST), _report(ZEROS), lambda version, scratch: _report(HALF))

    assert main(["registry", "rollback", NAME]) == 0
    assert f"champion is v{v1} again" in capsys.readouterr().out
    assert main(["registry", "show", NAME]) == 0
    shown = capsys.readouterr().out
    assert (
        f"{NAME} v{v1}  aliases: champion" in shown and f"{NAME} v{v2}  aliases: challenger, previous-champion" in shown
    )
    assert "dataset_hash" in shown and "promotion.gain_ci" in shown
    assert main(["registry", "show", "palitune-missing"]) == 2
