"""Run configs: every shipped one validates, the CLI is generated from the fields, every error
is reported at once, and a method this machine cannot run is refused before any work."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from models.presets import PRESETS, preset_for
from training.config import ConfigError, Method, RunConfig, config_fields, config_from_args, load_config
from training.preflight import check_runtime
from training.train import build_parser

REPO = Path(__file__).resolve().parents[2]
RUN_CONFIGS = sorted(
    p for p in (REPO / "configs").rglob("*.yaml") if p.parent.name not in {"accelerate", "dagster", "gpu_scale"}
)
ACCELERATE_CONFIGS = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_shipped_run_config_validates_and_opens_with_its_launch_command(path: Path) -> None:
    config = load_config(path)
    assert path.read_text().startswith("# Launch"), "each config opens with how to launch it"
    assert f"--config configs/{path.relative_to(REPO / 'configs')}" in path.read_text()
    model, size = path.parent.name, path.stem.split("_")[0]
    assert path.stem == f"{size}_{config.task}_{config.method.value}", "configs/<model>/<size>_<task>_<method>.yaml"
    preset = preset_for(config.base_model)
    assert preset is not None and preset.name.startswith(model) and size == f"{preset.image_size}px"


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_every_accelerate_launch_config_parses(path: Path) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.num_processes >= 1
    assert "accelerate launch --config_file configs/accelerate/" in path.read_text().splitlines()[0]


def test_big_vision_docvqa_recipe_is_shipped() -> None:
    config = load_config(REPO / "configs" / "paligemma2-3b" / "448px_docvqa_full.yaml")
    assert (config.learning_rate, config.weight_decay, config.max_grad_norm) == (1e-5, 1e-6, 1.0)
    assert config.scheduler.value == "cosine" and config.warmup_ratio == 0.05 and config.method is Method.FULL


def test_presets_carry_image_size_and_tokens() -> None:
    assert preset_for("paligemma2-3b-pt-448").ref == "google/paligemma2-3b-pt-448"
    assert (PRESETS["paligemma2-28b-pt-896"].image_size, PRESETS["paligemma2-28b-pt-896"].image_tokens) == (896, 4096)
    assert PRESETS["paligemma-3b-pt-224"].image_tokens == 256
    assert preset_for("google/paligemma2-10b-pt-224").name == "paligemma2-10b-pt-224"
    assert preset_for("/some/local/folder") is None


def test_every_error_is_reported_at_once_with_its_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"learning_rate": -1, "batch_size": 0, "methd": "lora", "lora": {"rank": "x"}}))
    with pytest.raises(ConfigError) as err:
        load_config(path, ["scheduler=sideways"])
    message = str(err.value)
    assert message.startswith(f"{path}: 5 invalid field(s)")
    for field in ("learning_rate", "batch_size", "methd", "lora.rank", "scheduler"):
        assert f"  {field}: " in message


def test_the_command_line_is_generated_from_the_config() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "training.train", "--help"], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    for name, _info in config_fields():
        assert f"--{name}" in out, name
    assert "LoRA rank r. (default: 16)" in " ".join(out.split())

    args = build_parser().parse_args(["--lora.rank", "8", "--method", "full", "steps=7"])
    config = config_from_args(args)
    assert (config.lora.rank, config.method, config.steps) == (8, Method.FULL, 7)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--method", "prompt-tuning"])


def test_fingerprint_ignores_where_and_how_often_things_are_written() -> None:
    a, b = RunConfig(), RunConfig(output_dir="elsewhere", log_every=1, checkpoint_every=10)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != RunConfig(learning_rate=1e-4).fingerprint()


def test_input_pipeline_fields_are_runtime_and_the_optimizer_is_not() -> None:
    reference = RunConfig().fingerprint()
    pipeline = RunConfig(num_workers=4, prefetch_factor=8, preprocess_cache=False, feature_cache=False)
    assert pipeline.fingerprint() == reference, "where batches are built does not change what is learned"
    assert RunConfig(optimizer="adamw_8bit").fingerprint() != reference  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="optimizer"):
        load_config(None, ["optimizer=sgd"])
    with pytest.raises(ConfigError, match="num_workers"):
        load_config(None, ["num_workers=-1"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the refusal on a machine without a GPU")
def test_qlora_and_fp16_are_refused_on_a_cpu_before_any_work(tmp_path: Path) -> None:
    from data.workspace import Workspace
    from training.train import train

    with pytest.raises(ConfigError, match="method: qlora .* needs a CUDA GPU.*method=lora"):
        check_runtime(RunConfig(method=Method.QLORA))
    with pytest.raises(ConfigError, match="precision: fp16"):
        check_runtime(RunConfig(precision="fp16"))
    with pytest.raises(ConfigError, match="qlora"):  # through the entry point: nothing built or written
        train(RunConfig(method=Method.QLORA), Workspace(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_validation_generates_with_the_tasks_budget_unless_the_config_sets_one(
    tiny_base: Path, small_vqa: Path
) -> None:
    from data.tasks import get_task
    from models.loading import load_processor
    from training.loop import Validation

    processor = load_processor(str(tiny_base))
    assert RunConfig().max_new_tokens is None
    default = Validation(RunConfig(task="vqa"), processor, small_vqa)
    assert default.max_new_tokens == get_task("vqa").max_new_tokens  # what test and serving generate with
    assert (
        Validation(RunConfig(task="detect"), processor, small_vqa).max_new_tokens == get_task("detect").max_new_tokens
    )
    assert get_task("detect").max_new_tokens != get_task("vqa").max_new_tokens, "the budget follows the task"
    assert Validation(load_config(None, ["max_new_tokens=4"]), processor, small_vqa).max_new_tokens == 4
