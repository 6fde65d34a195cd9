"""Fine-tune PaliGemma on one task: ``python -m training.train --config X.yaml [key=value ...]``.

The same loop runs under ``accelerate launch --config_file configs/accelerate/NAME.yaml -m
training.train ...`` on many processes. Only the main process writes the adapter and
MLflow records. Loss and config go to MLflow through Accelerate's MLflow tracker; pass
``MLFLOW_RUN_ID`` to log into a run someone else opened.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import PaliGemmaProcessor, get_cosine_schedule_with_warmup

from data.atomic import staged_dir
from data.schema import read_split
from data.versioning import recorded_hash, verify_dataset
from data.workspace import Workspace
from training.collate import TrainCollator
from training.config import RunConfig, load_config
from training.model_loading import load_base, resolve_base
from training.peft_setup import prepare_model

RUN_INFO_FILE = "palitune_run.json"


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    base_model: str  # the resolved reference the adapter applies to
    dataset_hash: str | None
    final_loss: float
    steps: int
    trainable_params: int
    mlflow_run_id: str | None


def preflight(batch: dict[str, torch.Tensor]) -> None:
    """Fail before the first step on a batch that cannot teach anything."""
    if "token_type_ids" not in batch:
        raise ValueError("batch has no token_type_ids: build it with processor(..., suffix=...)")
    if int((batch["labels"] != -100).sum()) == 0:
        raise ValueError("every label is masked (-100): the suffixes are empty or were truncated away")


def _batches(loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def train(
    config: RunConfig,
    workspace: Workspace | None = None,
    *,
    tracking_uri: str | None = None,
    mlflow_run_id: str | None = None,
) -> TrainResult:
    """Run one fine-tune as ``config`` says; returns where the adapter is and how it went.

    Args:
        workspace: resolves the config's relative paths; default from ``PALITUNE_HOME``.
        tracking_uri: MLflow store; default ``MLFLOW_TRACKING_URI``, else the workspace's.
        mlflow_run_id: log into this existing run instead of a new one.
    """
    workspace = workspace or Workspace.from_env()
    dataset_dir = workspace.resolve(config.dataset)
    output_dir = workspace.resolve(config.output_dir)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    _use_tracking_store(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or workspace.mlflow_tracking_uri)
    accelerator = Accelerator(log_with="mlflow", project_dir=str(workspace.mlflow_artifacts))
    # A versioned dataset must still be that version, byte for byte.
    data_hash = verify_dataset(dataset_dir) if recorded_hash(dataset_dir) else None
    base_ref = resolve_base(config.base_model, workspace.models)
    set_seed(config.seed)  # after a possible base build: same run, same LoRA init
    base, processor = load_base(base_ref)
    model, trainable = prepare_model(base, config)
    loader = _make_loader(config, processor, dataset_dir)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
    )
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(config.warmup_ratio * config.steps), config.steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    params = {
        **_flatten(config.model_dump(mode="json")),
        "base_model_path": base_ref,
        "dataset_hash": data_hash,
        "trainable_params": trainable,
        "processes": accelerator.num_processes,
    }
    run_name = f"{config.task}-{config.method.value}"
    accelerator.init_trackers(
        config.experiment, config=params, init_kwargs={"mlflow": {"run_id": mlflow_run_id, "run_name": run_name}}
    )
    try:
        final_loss = _train_loop(accelerator, model, optimizer, scheduler, loader, config)
    except BaseException:
        _end_mlflow_run("FAILED", accelerator)
        raise
    run_id = _active_mlflow_run_id(accelerator)
    result = TrainResult(output_dir / "adapter", base_ref, data_hash, final_loss, config.steps, trainable, run_id)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with staged_dir(result.adapter_dir) as tmp:
            accelerator.unwrap_model(model).save_pretrained(tmp, safe_serialization=True)
            processor.save_pretrained(tmp)
            info = {**asdict(result), "adapter_dir": str(result.adapter_dir), "config": config.model_dump(mode="json")}
            (tmp / RUN_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    accelerator.end_training()
    return result


def _make_loader(config: RunConfig, processor: PaliGemmaProcessor, dataset_dir: Path) -> DataLoader:
    examples = read_split(dataset_dir, "train")
    return DataLoader(
        examples,  # type: ignore[arg-type]
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=len(examples) >= config.batch_size,
        collate_fn=TrainCollator(processor, dataset_dir),
        generator=torch.Generator().manual_seed(config.seed),
    )


def _train_loop(accelerator: Accelerator, model, optimizer, scheduler, loader: DataLoader, config: RunConfig) -> float:
    """The optimizer steps; returns the mean loss of the last logging window."""
    model.train()
    window_loss, window_steps, logged = torch.zeros(()), 0, float("nan")
    for step, batch in zip(range(1, config.steps + 1), _batches(loader), strict=False):
        if step == 1:
            preflight(batch)
        loss = model(**batch).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        window_loss, window_steps = window_loss + loss.detach().float().cpu(), window_steps + 1
        if step % config.log_every == 0 or step == config.steps:
            mean = accelerator.reduce(window_loss.to(accelerator.device) / window_steps, reduction="mean")
            logged = float(mean.item())
            accelerator.log({"train/loss": logged, "train/lr": scheduler.get_last_lr()[0]}, step=step)
            accelerator.print(f"step {step}/{config.steps} loss {logged:.4f}")
            window_loss, window_steps = torch.zeros(()), 0
    return logged


def _end_mlflow_run(status: str, accelerator: Accelerator) -> None:
    if accelerator.is_main_process:
        import mlflow

        mlflow.end_run(status=status)


def _use_tracking_store(uri: str) -> None:
    import mlflow

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(uri)


def _active_mlflow_run_id(accelerator: Accelerator) -> str | None:
    if not accelerator.is_main_process:
        return None
    tracker = accelerator.get_tracker("mlflow", unwrap=True)
    return tracker.info.run_id if tracker is not None and hasattr(tracker, "info") else None


def _flatten(values: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="run config YAML (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="override config fields")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.overrides)
    result = train(config)
    print(
        json.dumps(
            {
                "adapter_dir": str(result.adapter_dir),
                "final_loss": result.final_loss,
                "mlflow_run_id": result.mlflow_run_id,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
