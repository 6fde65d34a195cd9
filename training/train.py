"""Fine-tune PaliGemma on one task: ``python -m training.train --config X.yaml [NAME=VALUE ...]``.

The same loop runs under ``accelerate launch --config_file configs/accelerate/NAME.yaml -m
training.train ...`` on one CPU process, many GPUs or many nodes. Only the main process
writes checkpoints, the adapter and MLflow records; every process gathers its shard of the
adapter for it (FSDP, ZeRO-3). Metrics go to MLflow through
Accelerate's MLflow tracker; pass ``MLFLOW_RUN_ID`` to log into a run someone else opened.

Resumable: with ``checkpoint_every`` set, the whole training state is saved every N steps
under ``<output_dir>/checkpoints``, and rerunning the same config with the same
``output_dir`` continues from the latest one, in the same MLflow run, with the same data
order, so the losses after resume are those an uninterrupted run would have logged.

This module is the recipe: named setup steps (``training.setup_steps``), the loop
(``training.loop``), the checks before it (``training.preflight``) and MLflow tracking
(``training.tracking``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate.utils import set_seed
from transformers import PaliGemmaProcessor

from data.atomic import staged_dir
from data.mask_codec.training_check import require_training_codec
from data.schema import DataError
from data.segment_target import codec_record
from data.workspace import Workspace
from models.loading import ModelError, resolve_base
from training.config import ConfigError, RunConfig, add_config_arguments, config_from_args
from training.feature_cache import serve_cached_features
from training.loop import ProgressCallback, RunState, Validation, train_loop
from training.peft_setup import prepare_model
from training.precision import enable_tf32
from training.preflight import PreflightError, check_runtime
from training.setup_steps import (
    RunInputs,
    load_base_model,
    make_accelerator,
    make_optimizer,
    make_train_loader,
    resolve_inputs,
)
from training.tracking import end_failed_run, start_tracking, use_tracking_store

__all__ = ["RUN_INFO_FILE", "TrainResult", "build_parser", "main", "train"]

RUN_INFO_FILE = "palitune_run.json"


@dataclass(frozen=True)
class TrainResult:
    """Where a run's adapter is and how the run went; also written beside it as ``RUN_INFO_FILE``."""

    adapter_dir: Path
    base_model: str  # the resolved reference the adapter applies to
    dataset_hash: str | None
    final_loss: float
    steps: int
    trainable_params: int
    mlflow_run_id: str | None
    resumed_from_step: int = 0


def train(
    config: RunConfig,
    workspace: Workspace | None = None,
    *,
    tracking_uri: str | None = None,
    mlflow_run_id: str | None = None,
    on_log: ProgressCallback | None = None,
) -> TrainResult:
    """Run one fine-tune as ``config`` says; returns where the adapter is and how it went.

    Args:
        workspace: resolves the config's relative paths; default from ``PALITUNE_HOME``.
        tracking_uri: MLflow store; default ``MLFLOW_TRACKING_URI``, else the workspace's.
        mlflow_run_id: log into this existing run instead of a new one.
        on_log: called on the main process with ``(step, metrics)`` each time metrics are logged.

    Raises:
        ConfigError: the method or precision cannot run here, or ``output_dir`` holds
            checkpoints of a different config.
        PreflightError: the first batch cannot teach anything.
    """
    check_runtime(config)
    workspace = workspace or Workspace.from_env()
    inputs = resolve_inputs(config, workspace)
    require_training_codec(inputs.dataset_dir, config.task)  # a segment set encoded by another codec
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    use_tracking_store(tracking_uri or workspace.tracking_uri)
    accelerator = make_accelerator(config, inputs.output_dir)
    base_ref = resolve_base(config.base_model, workspace.models)
    set_seed(config.seed)  # after a possible base build: same run, same LoRA init
    enable_tf32(accelerator.device)
    base, processor = load_base_model(config, base_ref)
    model, trainable = prepare_model(base, config)
    loader, sampler, features = make_train_loader(inputs, accelerator, base, base_ref, processor)
    optimizer, scheduler = make_optimizer(config, model, accelerator.device)
    # The scheduler is not prepared: Accelerate would step it once per process per optimizer step.
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    accelerator.register_for_checkpointing(scheduler)
    run = RunState(
        config=config,
        accelerator=accelerator,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        loader=loader,
        sampler=sampler,
        output_dir=inputs.output_dir,
        image_token_id=base.config.image_token_id,
        image_tokens=int(base.config.text_config.num_image_tokens),
        validation=Validation(config, processor, inputs.dataset_dir) if config.eval_every else None,
        on_log=on_log,
    )
    mlflow_run_id = _resume(run, inputs, mlflow_run_id)
    run.mlflow_run_id = start_tracking(
        accelerator, config, base_ref, inputs.data_hash, trainable, mlflow_run_id, dataset_dir=inputs.dataset_dir
    )
    try:
        with serve_cached_features(base) if features is not None else contextlib.nullcontext():
            final_loss = train_loop(run)
    except BaseException:
        end_failed_run(accelerator)
        raise
    adapter_dir = inputs.output_dir / "adapter"
    result = TrainResult(
        adapter_dir, base_ref, inputs.data_hash, final_loss, config.steps, trainable, run.mlflow_run_id, run.start_step
    )
    _save_adapter(run, processor, result)
    accelerator.end_training()
    return result


def _resume(run: RunState, inputs: RunInputs, mlflow_run_id: str | None) -> str | None:
    """Load the checkpoint ``inputs`` found into ``run`` and set its start step; returns the
    MLflow run to log into: ``mlflow_run_id`` when given, else the one the checkpoint recorded."""
    if inputs.resume_from is None or inputs.resumed is None:
        return mlflow_run_id
    # The run's own checkpoint, written into its output_dir: Accelerate unpickles the optimizer,
    # scheduler and RNG states it saved there. Nothing downloaded or shared is read this way.
    run.accelerator.load_state(str(inputs.resume_from))
    run.start_step = inputs.resumed.step
    if run.accelerator.is_main_process:
        print(f"resuming {inputs.output_dir} from step {run.start_step}", file=sys.stderr, flush=True)
    return mlflow_run_id or inputs.resumed.mlflow_run_id


def _save_adapter(run: RunState, processor: PaliGemmaProcessor, result: TrainResult) -> None:
    """Write the adapter, processor and run record; a crash never leaves half an adapter.

    Every process takes part in gathering the weights (``get_state_dict``): under FSDP and
    ZeRO-3 each holds a shard of every layer, and the model's own state dict on the main
    process would be its shard alone. The main process writes what was gathered; peft picks
    the adapter's (and saved modules') tensors out of it.
    """
    accelerator = run.accelerator
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(run.model)  # every rank: a collective under FSDP and ZeRO-3
    if accelerator.is_main_process:
        with staged_dir(result.adapter_dir) as tmp:
            accelerator.unwrap_model(run.model).save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
            processor.save_pretrained(tmp)
            info = {
                **asdict(result),
                "adapter_dir": str(result.adapter_dir),
                "config": run.config.model_dump(mode="json"),
                "mask_codec": codec_record() if run.config.task == "segment" else None,
            }
            (tmp / RUN_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    accelerator.wait_for_everyone()  # no process exits before the adapter is whole


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``--config`` and one option per config field."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train as the command line says; returns the exit code (2: bad config, data or first batch)."""
    from training.pipes_report import pipes_reporter

    args = build_parser().parse_args(argv)
    # Exit 2 is bad input (config, data, preflight): an orchestrator should not retry it.
    with pipes_reporter() as report:  # reports to Dagster when it launched us; else None
        try:
            result = train(config_from_args(args), on_log=report.on_log if report else None)
        except (ConfigError, ModelError, DataError, PreflightError) as err:
            if report:
                if isinstance(err, PreflightError):
                    report.preflight(passed=False, detail=str(err))
                report.bad_input(err)
            print(f"training: error: {err}", file=sys.stderr)
            return 2
        from accelerate import PartialState

        if PartialState().is_main_process:  # one summary line per run, not per process
            summary = {"adapter_dir": str(result.adapter_dir), "final_loss": result.final_loss}
            print(json.dumps({**summary, "mlflow_run_id": result.mlflow_run_id}))
        if report:
            report.finished(result, json.loads((result.adapter_dir / RUN_INFO_FILE).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
