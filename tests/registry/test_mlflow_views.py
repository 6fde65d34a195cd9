"""What a person sees in MLflow, read back through the MLflow client of a real SQLite store:
run names, sources, datasets, the experiment's kind, evaluation metrics linked to the model
and the dataset, the untrained base apart, version descriptions and UI links."""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from accelerate import Accelerator
from mlflow.tracking import MlflowClient

from data.lineage_tags import (
    DATASET_CONTEXT_TAG,
    EXPERIMENT_KIND_TAG,
    PARENT_RUN_TAG,
    SOURCE_COMMIT_TAG,
    SOURCE_NAME_TAG,
    SOURCE_TYPE_TAG,
    TRAINING_EXPERIMENT,
    run_name,
)
from evaluation.report import EvaluationReport, ScoredPrediction
from registry.models import register_adapter
from registry.promotion import run_promotion
from registry.tracking import (
    FINETUNED,
    UI_ENV,
    UNTRAINED,
    client_for,
    ensure_experiment,
    evaluation_run,
    link_evaluation,
    log_evaluation,
    logged_evaluation,
    logged_model_id,
    open_run,
    run_url,
    version_url,
)
from training.config import RunConfig
from training.tracking import start_tracking, use_tracking_store

REPO = Path(__file__).resolve().parents[2]
DIGEST = "d" * 32
METRIC = "vqa/test/vqa_accuracy"


def _report(scores: list[float]) -> EvaluationReport:
    predictions = [ScoredPrediction(f"test-{i}", "answer en q", "p", ["a"], s, {}) for i, s in enumerate(scores)]
    return EvaluationReport("vqa", "test", "m", DIGEST, {METRIC: sum(scores) / len(scores)}, predictions)


def _inputs(client: MlflowClient, run_id: str) -> dict[str, tuple[str, str]]:
    """The run's datasets by name: (digest, context)."""
    inputs = client.get_run(run_id).inputs
    assert inputs is not None
    return {
        i.dataset.name: (i.dataset.digest, {t.key: t.value for t in i.tags}[DATASET_CONTEXT_TAG])
        for i in inputs.dataset_inputs
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One store for the module: creating MLflow's schema is most of a test's time."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture
def uri(store: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The store; MLflow's global tracking URI and environment are put back afterwards."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # training's store helper exports it
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("DAGSTER_PIPES_CONTEXT", raising=False)
    yield store
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A registered model of the test's own, in the shared store."""
    return f"palitune-{request.node.name.removeprefix('test_')[:40]}"


def _track(uri: str, tmp_path: Path, run_id: str | None, **fields: object) -> str:
    """``start_tracking`` as training calls it, on a real Accelerator, then the run ended."""
    use_tracking_store(uri)
    config = RunConfig(experiment="palitune", output_dir=str(tmp_path / "out"), **fields)  # type: ignore[arg-type]
    accelerator = Accelerator(log_with="mlflow", project_dir=str(tmp_path / "out"))
    dataset = tmp_path / "dvc-data" / "vqa"
    active = start_tracking(accelerator, config, "tiny", DIGEST, 7, run_id, dataset_dir=dataset)
    accelerator.end_training()
    assert active is not None
    return active


def test_a_training_run_records_its_source_datasets_and_experiment_kind(uri: str, tmp_path: Path) -> None:
    run_id = _track(uri, tmp_path, None, eval_every=2)
    client = client_for(uri)
    run = client.get_run(run_id)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert run.data.tags[SOURCE_COMMIT_TAG] == commit == run.data.tags["palitune.git_commit"]
    assert run.data.tags[SOURCE_NAME_TAG] == "training.train" and run.data.tags[SOURCE_TYPE_TAG] == "LOCAL"
    assert run.info.run_name.startswith(f"vqa-lora-{DIGEST[:8]}-"), run.info.run_name
    assert _inputs(client, run_id) == {"vqa-train": (DIGEST, "train"), "vqa-val": (DIGEST, "eval")}
    inputs = client.get_run(run_id).inputs
    assert inputs is not None
    source = inputs.dataset_inputs[0].dataset
    assert source.source_type == "local" and (tmp_path / "dvc-data" / "vqa").as_uri() in source.source
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == TRAINING_EXPERIMENT


def test_training_keeps_the_name_of_a_run_opened_for_it(uri: str, tmp_path: Path) -> None:
    client = client_for(uri)
    opened = open_run(client, "palitune", tmp_path / "artifacts", run_name="vqa-1a2b3c4d", tags={})
    assert _track(uri, tmp_path, opened) == opened
    assert client.get_run(opened).info.run_name == "vqa-1a2b3c4d"


def test_experiments_open_on_the_training_view(uri: str, tmp_path: Path) -> None:
    client = client_for(uri)
    fresh = ensure_experiment(client, "fresh", tmp_path)
    legacy = client.create_experiment("legacy", artifact_location=tmp_path.as_uri())
    assert ensure_experiment(client, "legacy", tmp_path) == legacy
    for experiment_id in (fresh, legacy):
        assert client.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == TRAINING_EXPERIMENT


def test_new_run_names_tell_runs_apart() -> None:
    first, second = run_name("vqa", "lora", DIGEST), run_name("vqa", "qlora", None)
    assert first.startswith("vqa-lora-dddddddd-") and second.startswith("vqa-qlora-unversio")
    time.sleep(1.1)
    assert run_name("vqa", "lora", DIGEST) != first, "two runs of one config a second apart"


def _register(client: MlflowClient, tmp_path: Path, run_id: str, name: str) -> tuple[str, str]:
    """A version of a stand-in adapter logged by run ``run_id``: (version, logged model id)."""
    adapter = tmp_path / "adapter"
    adapter.mkdir(exist_ok=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    version = register_adapter(client, run_id, adapter, name, {"palitune.dataset_hash": DIGEST}).version
    model_id = logged_model_id(client.get_model_version(name, version))
    assert model_id is not None
    return version, model_id


def _model_metrics(client: MlflowClient, model_id: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for metric in client.get_logged_model(model_id).metrics or []:
        found.setdefault(metric.key, []).append(metric)
    return found


def test_evaluations_link_to_the_model_and_dataset_and_keep_the_base_apart(uri: str, tmp_path: Path, name: str) -> None:
    client = client_for(uri)
    run_id = open_run(client, "palitune", tmp_path / "artifacts", run_name="vqa-run", tags={"palitune.task": "vqa"})
    client.log_param(run_id, "steps", 6)  # as training logs its config
    before = int(time.time() * 1000)
    log_evaluation(client, run_id, _report([1.0, 0.0]), tmp_path / "ft", label=FINETUNED)
    nested = log_evaluation(client, run_id, _report([0.0, 0.0]), tmp_path / "base", label=UNTRAINED)
    version, model_id = _register(client, tmp_path, run_id, name)

    half, zeros = _report([float(i % 2) for i in range(100)]), _report([0.0] * 100)
    run_promotion(client, name, version, half, zeros, _never)  # links the run's evaluation
    assert link_evaluation(client, run_id, model_id) == 1, "a second link stores nothing new"
    linked = _model_metrics(client, model_id)
    assert not [k for k in linked if k.startswith(UNTRAINED)], "the base's scores are not the model's"
    [metric] = linked[f"{FINETUNED}/{METRIC}"]
    assert (metric.value, metric.step, metric.dataset_name, metric.dataset_digest) == (0.5, 6, "vqa-test", DIGEST)
    assert metric.timestamp >= before

    assert _inputs(client, run_id) == {"vqa-test": (DIGEST, "test")}
    base = client.get_run(nested)
    assert base.data.tags[PARENT_RUN_TAG] == run_id and base.info.run_name == "vqa-run-untrained-base"
    assert base.info.status == "FINISHED" and base.data.tags["palitune.task"] == "vqa"
    assert _inputs(client, nested) == {"vqa-test": (DIGEST, "test")}
    assert f"{UNTRAINED}/{METRIC}" not in client.get_run(run_id).data.metrics
    assert evaluation_run(client, run_id, label=UNTRAINED) == nested
    assert logged_evaluation(client, run_id, label=UNTRAINED) == {METRIC: 0.0}
    assert logged_evaluation(client, run_id, label=FINETUNED) == {METRIC: 0.5}
    assert [a.path for a in client.list_artifacts(nested, f"evaluation/{UNTRAINED}")]


def test_an_evaluation_after_registration_links_to_the_logged_model(uri: str, tmp_path: Path, name: str) -> None:
    client = client_for(uri)
    run_id = open_run(client, "palitune", tmp_path / "artifacts", run_name="late", tags={})
    _, model_id = _register(client, tmp_path, run_id, name)
    log_evaluation(client, run_id, _report([1.0, 1.0]), tmp_path / "ft", label=FINETUNED)
    linked = _model_metrics(client, model_id)[f"{FINETUNED}/{METRIC}"]
    assert [(m.value, m.dataset_digest) for m in linked] == [(1.0, DIGEST)]


def _never(version: object, scratch: Path) -> EvaluationReport:
    raise AssertionError("no champion to re-score")


def test_a_decided_version_says_the_decision_in_its_description(uri: str, tmp_path: Path, name: str) -> None:
    client = client_for(uri)
    v1, _ = _register(client, tmp_path, open_run(client, "palitune", tmp_path / "a", run_name="v1", tags={}), name)
    half, zeros = _report([float(i % 2) for i in range(100)]), _report([0.0] * 100)
    run_promotion(client, name, v1, zeros, zeros, _never)
    rejected = client.get_model_version(name, v1).description or ""
    assert rejected.startswith(f"rejected: {METRIC} 0.0000 vs untrained base 0.0000") and "\n" not in rejected
    run_promotion(client, name, v1, half, zeros, _never)
    promoted = client.get_model_version(name, v1).description or ""
    assert promoted.startswith(f"promoted: {METRIC} 0.5000 vs untrained base 0.0000, gain CI [+0.")
    assert promoted.endswith("p <0.001"), promoted


def test_registry_show_prints_the_description_and_the_page(
    uri: str, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from palitune.cli import main

    client = client_for(uri)
    v1, _ = _register(client, tmp_path, open_run(client, "palitune", tmp_path / "a", run_name="v1", tags={}), name)
    run_promotion(client, name, v1, _report([1.0] * 100), _report([0.0] * 100), _never)
    monkeypatch.setenv("PALITUNE_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv(UI_ENV, "http://127.0.0.1:5055")
    assert main(["registry", "show", name]) == 0
    shown = capsys.readouterr().out
    assert f"description  promoted: {METRIC} 1.0000 vs untrained base 0.0000" in shown
    assert f"page         http://127.0.0.1:5055/#/models/{name}/versions/{v1}" in shown


@pytest.mark.parametrize(
    ("uri", "env", "ui"),
    [
        ("sqlite:///w/mlflow.db", None, "http://127.0.0.1:5000"),
        ("https://mlflow.example.org/", None, "https://mlflow.example.org"),
        ("sqlite:///w/mlflow.db", "http://127.0.0.1:5055/", "http://127.0.0.1:5055"),
        ("http://10.0.0.5:5000", "https://mlflow.example.org", "https://mlflow.example.org"),
    ],
)
def test_links_follow_the_ui_in_use(uri: str, env: str | None, ui: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if env is None:
        monkeypatch.delenv(UI_ENV, raising=False)
    else:
        monkeypatch.setenv(UI_ENV, env)
    assert run_url(uri, "abc", "3") == f"{ui}/#/experiments/3/runs/abc"
    assert version_url(uri, "palitune-vqa", 4) == f"{ui}/#/models/palitune-vqa/versions/4"
