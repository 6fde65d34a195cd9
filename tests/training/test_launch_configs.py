"""The shipped launch files name run configs that pass the launch's checks, and those checks
refuse what a launch would run wrongly: validation with sharded parameters, a DeepSpeed
config that contradicts the run's accumulation or clipping, ZeRO-3 that cannot save."""

import shlex
from pathlib import Path

import pytest
from accelerate.utils import DistributedType

from training.config import ConfigError, RunConfig, config_from_args
from training.preflight import Launch, check_launch_fits, fill_deepspeed_config
from training.train import build_parser

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))


def _launch_lines(path: Path) -> list[list[str]]:
    """The ``accelerate launch ... -m training.train ...`` commands in the file's comments."""
    lines = [line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#")]
    return [shlex.split(line) for line in lines if "accelerate launch" in line]


def test_every_launch_file_has_a_launch_line() -> None:
    assert len(LAUNCH_FILES) >= 7
    for path in LAUNCH_FILES:
        assert _launch_lines(path), f"{path.name}: no 'accelerate launch' line in its comments"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_each_launch_line_names_a_run_config_its_launch_accepts(path: Path) -> None:
    for words in _launch_lines(path):
        assert words[words.index("--config_file") + 1] == f"configs/accelerate/{path.name}", "names its own file"
        module = words.index("-m")
        assert words[module + 1] == "training.train"
        args = build_parser().parse_args(words[module + 2 :])  # what training.train would parse
        args.config = REPO / args.config  # the lines run from the repository root
        assert args.config.is_file(), f"{path.name}: {args.config} does not exist"
        config = config_from_args(args)
        assert config.model_dump() != RunConfig().model_dump(), "the named config was read"
        check_launch_fits(config, Launch.from_file(path))


def test_the_launch_files_are_read_as_accelerate_would_run_them() -> None:
    folder = REPO / "configs" / "accelerate"
    assert Launch.from_file(folder / "fsdp.yaml") == Launch(DistributedType.FSDP, fsdp_version=2)
    zero3 = Launch.from_file(folder / "deepspeed-zero3.yaml")
    assert (zero3.zero_stage, zero3.zero3_gathers_weights_on_save, zero3.shards_parameters) == (3, True, True)
    assert zero3.zero3_init
    zero2 = Launch.from_file(folder / "deepspeed-zero2.yaml")
    assert (zero2.zero_stage, zero2.shards_parameters) == (2, False)
    assert (zero2.deepspeed_grad_accumulation, zero2.deepspeed_gradient_clipping) == (None, None)
    assert not Launch.from_file(folder / "ddp.yaml").shards_parameters


FSDP2 = Launch(DistributedType.FSDP, fsdp_version=2)
ZERO2 = Launch(DistributedType.DEEPSPEED, zero_stage=2)
ZERO3 = Launch(DistributedType.DEEPSPEED, zero_stage=3, zero3_gathers_weights_on_save=True)


@pytest.mark.parametrize("launch", [FSDP2, ZERO3], ids=["fsdp2", "zero3"])
def test_validation_is_refused_when_parameters_are_sharded(launch: Launch) -> None:
    with pytest.raises(ConfigError, match=r"^eval_every: 100 .*main process only.*eval_every=0"):
        check_launch_fits(RunConfig(eval_every=100), launch)
    check_launch_fits(RunConfig(eval_every=0), launch)


def test_validation_runs_where_every_process_holds_the_whole_model() -> None:
    for launch in (Launch(DistributedType.MULTI_GPU), Launch(DistributedType.NO), ZERO2):
        check_launch_fits(RunConfig(eval_every=100, grad_accumulation=8), launch)


def test_deepspeed_accumulates_as_the_run_config_says() -> None:
    check_launch_fits(RunConfig(grad_accumulation=8), ZERO2)  # no longer refused
    matching = Launch(DistributedType.DEEPSPEED, zero_stage=2, deepspeed_grad_accumulation=8)
    check_launch_fits(RunConfig(grad_accumulation=8), matching)
    contradicting = Launch(DistributedType.DEEPSPEED, zero_stage=2, deepspeed_grad_accumulation=4)
    with pytest.raises(ConfigError, match=r"^grad_accumulation: 8, but the DeepSpeed config sets .* 4"):
        check_launch_fits(RunConfig(grad_accumulation=8), contradicting)


def test_deepspeed_clips_at_max_grad_norm() -> None:
    contradicting = Launch(DistributedType.DEEPSPEED, zero_stage=2, deepspeed_gradient_clipping=1.0)
    check_launch_fits(RunConfig(max_grad_norm=1.0), contradicting)
    with pytest.raises(ConfigError, match=r"^max_grad_norm: 0.5, but the DeepSpeed config sets gradient_clipping 1.0"):
        check_launch_fits(RunConfig(max_grad_norm=0.5), contradicting)

    ds: dict = {"gradient_clipping": "auto", "zero_optimization": {"stage": 2}}  # as accelerate builds it
    fill_deepspeed_config(RunConfig(max_grad_norm=0.5, grad_accumulation=8), ds)
    assert (ds["gradient_clipping"], ds["gradient_accumulation_steps"]) == (0.5, 8)
    ds = {"gradient_clipping": 1.0, "gradient_accumulation_steps": 8}
    fill_deepspeed_config(RunConfig(max_grad_norm=0.5, grad_accumulation=2), ds)
    assert ds == {"gradient_clipping": 1.0, "gradient_accumulation_steps": 8}, "explicit values are check_launch's"


def test_zero3_must_gather_the_weights_to_save_them() -> None:
    with pytest.raises(ConfigError, match="zero3_save_16bit_model: true"):
        check_launch_fits(RunConfig(), Launch(DistributedType.DEEPSPEED, zero_stage=3))


def test_zero3_that_partitions_at_load_cannot_cache_image_features() -> None:
    partitioned = Launch(DistributedType.DEEPSPEED, zero_stage=3, zero3_gathers_weights_on_save=True, zero3_init=True)
    with pytest.raises(ConfigError, match="^feature_cache: ZeRO-3 with zero3_init_flag"):
        check_launch_fits(RunConfig(freeze_vision=True, feature_cache=True), partitioned)
    check_launch_fits(RunConfig(freeze_vision=True, feature_cache=False), partitioned)
    check_launch_fits(RunConfig(freeze_vision=False, feature_cache=True), partitioned)  # no cache: the tower trains
    check_launch_fits(RunConfig(freeze_vision=True, feature_cache=True), ZERO3)  # loaded whole, cached, then sharded


def test_a_step_syncs_on_its_last_micro_batch_even_across_an_epoch_end(tmp_path: Path) -> None:
    """The loop draws a step's micro-batches across epochs; a sync forced at the loader's end
    (accelerate's default) would end a step early and shift every later one."""
    import torch
    from torch.utils.data import DataLoader

    from training.setup_steps import make_accelerator

    accelerator = make_accelerator(RunConfig(grad_accumulation=3), tmp_path)
    assert accelerator.gradient_accumulation_steps == 3
    assert accelerator.dataloader_config.non_blocking
    model = torch.nn.Linear(1, 1)
    loader = accelerator.prepare(DataLoader(list(range(4)), batch_size=1))  # 4 batches: step 2 crosses the end
    batches = (batch for _ in range(2) for batch in loader)
    synced = []
    for _ in range(6):
        next(batches)
        with accelerator.accumulate(model):
            synced.append(accelerator.sync_gradients)
    assert synced == [False, False, True, False, False, True]
