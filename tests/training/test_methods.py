"""Each method trains the tiny model: the loss falls and the held-out metric rises."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from data.synthetic import SplitSizes, write_shapes_vqa
from data.workspace import Workspace
from training.config import load_config
from training.train import train

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vqa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_vqa(tmp_path_factory.mktemp("data") / "vqa", sizes=SplitSizes(1000, 64, 8))


@pytest.mark.parametrize(
    ("config_file", "steps"),
    [("64px_vqa_lora.yaml", 300), ("64px_vqa_full.yaml", 300)],
)
def test_loss_falls_and_validation_accuracy_rises(
    config_file: str, steps: int, vqa: Path, tiny_base: Path, tmp_path: Path
) -> None:
    config = load_config(
        REPO / "configs" / "tiny" / config_file,
        [f"base_model={tiny_base}", f"dataset={vqa}", f"steps={steps}", "log_every=25", "eval_every=150"],
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    logged: list[tuple[int, dict[str, float]]] = []
    result = train(config, Workspace(tmp_path), tracking_uri=uri, on_log=lambda step, m: logged.append((step, m)))

    client = MlflowClient(uri)
    losses = [m.value for m in client.get_metric_history(result.mlflow_run_id, "train/loss")]
    assert losses[-1] < 0.5 * losses[0], losses
    accuracy = client.get_metric_history(result.mlflow_run_id, "vqa/val/vqa_accuracy")
    assert [m.step for m in accuracy] == [0, 150, 300]
    assert accuracy[-1].value > accuracy[0].value + 0.2, [m.value for m in accuracy]
    assert max(m.value for m in client.get_metric_history(result.mlflow_run_id, "train/lr")) > 0
    run = client.get_run(result.mlflow_run_id)
    throughput = (
        "train/samples_per_s",
        "train/tokens_per_s",
        "train/supervised_tokens_per_s",
        "train/image_tokens_per_s",
    )
    for name in ("train/grad_norm", *throughput, "train/peak_memory_mb"):
        assert run.data.metrics[name] > 0, name
    assert run.data.tags["palitune.method"] == config.method.value
    assert run.data.params["method"] == config.method.value
    assert [step for step, m in logged if "train/loss" in m] == list(range(25, steps + 1, 25)), "progress reported"
