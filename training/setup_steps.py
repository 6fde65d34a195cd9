"""The named setup steps of a run, in the order ``training.train`` takes them: resolve what it
reads (and the checkpoint it resumes from), start Accelerate, load the base, build the data
loader (with the frozen vision tower's cached features), the optimizer and its schedule.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from transformers import (
    PaliGemmaProcessor,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from data.schema import Example, read_split
from data.versioning import recorded_hash, verify_dataset
from data.workspace import Workspace
from models.loading import load_base
from training.checkpoints import CheckpointState, latest_checkpoint, read_state
from training.collate import TrainCollator
from training.config import ConfigError, Method, RunConfig, Scheduler
from training.feature_cache import ImageFeatures, cache_blocker, cache_key, dataset_identity, load_or_compute_features
from training.precision import load_dtype
from training.preflight import check_launch
from training.sampling import EpochSampler, LengthGroupedSampler, text_lengths


@dataclass(frozen=True)
class RunInputs:
    """What a run reads, resolved from its config and workspace before any model is loaded."""

    config: RunConfig
    workspace: Workspace
    dataset_dir: Path
    output_dir: Path
    data_hash: str | None  # the dataset's DVC hash, verified; None for an unversioned folder
    resume_from: Path | None  # the checkpoint to continue from
    resumed: CheckpointState | None  # what that checkpoint recorded


def resolve_inputs(config: RunConfig, workspace: Workspace) -> RunInputs:
    """Resolve the config's folders, verify a versioned dataset, find the checkpoint to resume.

    Raises:
        ConfigError: ``output_dir`` holds checkpoints of a different config.
        DataError: a versioned dataset no longer matches its recorded hash.
    """
    dataset_dir, output_dir = workspace.resolve(config.dataset), workspace.resolve(config.output_dir)
    # A versioned dataset must still be that version, byte for byte.
    data_hash = verify_dataset(dataset_dir) if recorded_hash(dataset_dir) else None
    resume_from = latest_checkpoint(output_dir) if config.resume else None
    resumed = read_state(resume_from) if resume_from is not None else None
    if resumed is not None and resumed.config_fingerprint != config.fingerprint():
        raise ConfigError(
            f"output_dir: {output_dir} holds checkpoints of another config (fingerprint "
            f"{resumed.config_fingerprint}, this one {config.fingerprint()}); use a new output_dir or resume=false"
        )
    return RunInputs(config, workspace, dataset_dir, output_dir, data_hash, resume_from, resumed)


def make_accelerator(config: RunConfig, output_dir: Path) -> Accelerator:
    """The run's Accelerator: MLflow tracking, the config's autocast, checkpoints under ``output_dir``.

    Raises:
        ConfigError: the launch cannot run this config (``training.preflight.check_launch``).
    """
    accelerator = Accelerator(
        log_with="mlflow", mixed_precision=config.precision.accelerate_name, project_dir=str(output_dir)
    )
    check_launch(config, accelerator)
    return accelerator


def load_base_model(config: RunConfig, base_ref: str) -> tuple[Any, PaliGemmaProcessor]:
    """The base model and its processor, stored in the config's precision (4-bit for qlora)."""
    return load_base(
        base_ref,
        dtype=load_dtype(config),
        quantize_4bit=config.method is Method.QLORA,
        attn_implementation=config.attn_implementation,
    )


def make_train_loader(
    inputs: RunInputs, accelerator: Accelerator, base: Any, base_ref: str, processor: PaliGemmaProcessor
) -> tuple[DataLoader, EpochSampler, ImageFeatures | None]:
    """The train split's loader, its sampler (the replayable data order) and the cached image
    features its collator serves, ``None`` when the cache is not used."""
    config = inputs.config
    examples = read_split(inputs.dataset_dir, "train")
    sampler = (
        LengthGroupedSampler(text_lengths(processor, examples), config.batch_size, config.seed)
        if config.length_bucketing
        else EpochSampler(len(examples), config.seed)
    )
    features = _image_features(inputs, accelerator, base, base_ref, processor, examples)
    loader: DataLoader = DataLoader(
        examples,  # type: ignore[arg-type]
        batch_size=config.batch_size,
        sampler=sampler,
        drop_last=len(examples) >= config.batch_size,
        collate_fn=TrainCollator(processor, inputs.dataset_dir, features),
    )
    return loader, sampler, features


def _image_features(
    inputs: RunInputs,
    accelerator: Accelerator,
    base: Any,
    base_ref: str,
    processor: PaliGemmaProcessor,
    examples: list[Example],
) -> ImageFeatures | None:
    """The frozen vision tower's cached features of the train images, or ``None`` when not used."""
    if not inputs.config.feature_cache:
        return None
    blocker = cache_blocker(base)
    if blocker is not None:
        if accelerator.is_main_process:
            print(f"image feature cache off: {blocker}", file=sys.stderr, flush=True)
        return None
    base.model.vision_tower.to(accelerator.device)
    key = cache_key(
        dataset=dataset_identity(inputs.dataset_dir, examples, inputs.data_hash),
        base_ref=base_ref,
        model=base,
        processor=processor,
        precision=inputs.config.precision.value,
        device=accelerator.device,
    )
    with accelerator.main_process_first():  # one process computes, the others read what it wrote
        return load_or_compute_features(
            inputs.workspace.root / "cache" / "image-features",
            key,
            base,
            processor,
            inputs.dataset_dir,
            examples,
            batch_size=inputs.config.batch_size,
            autocast=accelerator.autocast,
        )


def make_optimizer(
    config: RunConfig, model: torch.nn.Module
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable parameters, and the config's warmup-then-decay schedule."""
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate, weight_decay=config.weight_decay
    )
    warmup = int(config.warmup_ratio * config.steps)
    if config.scheduler is Scheduler.COSINE:
        return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, config.steps)
    if config.scheduler is Scheduler.LINEAR:
        return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, config.steps)
    return optimizer, get_constant_schedule_with_warmup(optimizer, warmup)
