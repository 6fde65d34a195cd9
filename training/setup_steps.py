"""The named setup steps of a run, in the order ``training.train`` takes them: resolve what it
reads (and the checkpoint it resumes from), start Accelerate, load the base, build the data
loader (with the frozen vision tower's cached features and the preprocessed split), the
optimizer and its schedule.
"""

from __future__ import annotations

import importlib.util
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
from training.config import ConfigError, Method, Optimizer, RunConfig, Scheduler
from training.feature_cache import ImageFeatures, cache_blocker, cache_key, dataset_identity, load_or_compute_features
from training.precision import compute_dtype, load_dtype
from training.preflight import check_launch
from training.preprocess_cache import PreprocessedSplit, load_or_preprocess, preprocess_key
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
    check_optimizer(config)
    dataset_dir, output_dir = workspace.resolve_dataset(config.dataset), workspace.resolve(config.output_dir)
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


def check_optimizer(config: RunConfig) -> None:
    """Refuse an optimizer this machine cannot run, before anything is loaded.

    Raises:
        ConfigError: ``optimizer: adamw_8bit`` without a CUDA GPU or without bitsandbytes.
    """
    if config.optimizer is not Optimizer.ADAMW_8BIT:
        return
    if not torch.cuda.is_available():
        raise ConfigError("optimizer: adamw_8bit (bitsandbytes) needs a CUDA GPU, and none is visible; use adamw")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("optimizer: adamw_8bit needs bitsandbytes (pip install 'palitune[gpu]'); or use adamw")


def make_accelerator(config: RunConfig, output_dir: Path) -> Accelerator:
    """The run's Accelerator: MLflow tracking, the config's autocast, checkpoints under ``output_dir``,
    and ``grad_accumulation`` micro-batches per optimizer step (``training.loop.accumulate``).

    The accumulation counter ignores the loader's end: the loop draws a step's micro-batches
    across epoch boundaries, and a sync forced at an epoch's last batch would split a step.
    Batches are copied to the device without blocking (a no-op unless the loader pins memory).
    Under DeepSpeed, its config gets the run's accumulation and clipping.

    Raises:
        ConfigError: the launch cannot run this config (``training.preflight.check_launch``).
    """
    from accelerate.utils import DataLoaderConfiguration, GradientAccumulationPlugin

    from training.preflight import fit_deepspeed_config

    accelerator = Accelerator(
        log_with="mlflow",
        mixed_precision=config.precision.accelerate_name,
        project_dir=str(output_dir),
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=config.grad_accumulation, sync_with_dataloader=False
        ),
        dataloader_config=DataLoaderConfiguration(non_blocking=True),
    )
    check_launch(config, accelerator)
    fit_deepspeed_config(config, accelerator)
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
    preprocessed = _preprocessed(inputs, accelerator, base, base_ref, processor, examples, pixels=features is None)
    # Pinned host memory lets the copy to the GPU run asynchronously (the accelerator copies
    # with non_blocking, see make_accelerator), overlapping the previous step's compute; on a
    # CPU there is no copy, and pinning only costs.
    pin = accelerator.device.type == "cuda"
    workers = config.num_workers
    loader: DataLoader = DataLoader(
        examples,  # type: ignore[arg-type]
        batch_size=config.batch_size,
        sampler=sampler,
        drop_last=len(examples) >= config.batch_size,
        collate_fn=TrainCollator(processor, inputs.dataset_dir, features, preprocessed),
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,  # not restarted every epoch
        prefetch_factor=config.prefetch_factor if workers > 0 else None,
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


def _preprocessed(
    inputs: RunInputs,
    accelerator: Accelerator,
    base: Any,
    base_ref: str,
    processor: PaliGemmaProcessor,
    examples: list[Example],
    *,
    pixels: bool,
) -> PreprocessedSplit | None:
    """The train split tokenized (and its images preprocessed, with ``pixels``) once, or ``None``."""
    config = inputs.config
    if not config.preprocess_cache:
        return None
    dtype = compute_dtype(config.precision)
    feature_key = cache_key(
        dataset=dataset_identity(inputs.dataset_dir, examples, inputs.data_hash),
        base_ref=base_ref,
        model=base,
        processor=processor,
        precision=config.precision.value,
        device=accelerator.device,
    )
    key = preprocess_key(feature_key, processor, task=config.task, dtype=dtype, pixels=pixels)
    with accelerator.main_process_first():  # one process writes, the others read it
        return load_or_preprocess(
            inputs.workspace.root / "cache" / "preprocessed",
            key,
            processor,
            inputs.dataset_dir,
            examples,
            dtype=dtype,
            pixels=pixels,
        )


# Parameter names that never decay, as transformers' Trainer.get_decay_parameter_names has
# them (biases, LayerNorm/RMSNorm weights), matched against the lower-cased dotted name.
_NO_DECAY_PATTERNS = (r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)")


def decay_parameter_names(model: torch.nn.Module) -> set[str]:
    """Names of the parameters weight decay applies to: all but biases and norm weights.

    Decay pulls a weight towards zero; a norm's scale and a bias have no such prior (a
    norm weight at zero switches its features off). The rule is the HF Trainer's (and
    torchtune's): no decay inside ``nn.LayerNorm`` modules nor on names matching
    ``_NO_DECAY_PATTERNS`` (Gemma's RMSNorms are named ``*layernorm`` and ``norm``).
    """
    from transformers.trainer_pt_utils import get_parameter_names

    return set(get_parameter_names(model, [torch.nn.LayerNorm], list(_NO_DECAY_PATTERNS)))


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The trainable parameters in two AdamW groups: decayed, and biases and norms undecayed."""
    decayed = decay_parameter_names(model)
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for name, p in trainable if name in decayed], "weight_decay": weight_decay},
        {"params": [p for name, p in trainable if name not in decayed], "weight_decay": 0.0},
    ]


# Devices whose fused AdamW kernel takes every floating dtype (torch 2.4 and later).
_FUSED_DEVICES = ("cuda", "cpu")


def _adamw(config: RunConfig, groups: list[dict[str, Any]], device: torch.device) -> torch.optim.Optimizer:
    """The config's AdamW: bitsandbytes' 8-bit one, or torch's with its fastest kernel on ``device``.

    The fused kernel updates every parameter in one pass with no full-size temporaries (4.5x
    faster than foreach for the tiny base's step on one CPU core: 1.3 vs 6.0 ms); foreach
    (one launch per operation over a list) where it is not available.
    """
    if config.optimizer is Optimizer.ADAMW_8BIT:
        import bitsandbytes as bnb  # checked by check_optimizer before anything loaded

        return bnb.optim.AdamW8bit(groups, lr=config.learning_rate)  # type: ignore[no-any-return]
    fused = device.type in _FUSED_DEVICES
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=fused, foreach=not fused)


def make_optimizer(
    config: RunConfig, model: torch.nn.Module, device: torch.device | None = None
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable parameters (no decay on biases and norms), and the config's
    warmup-then-decay schedule.

    Args:
        device: where the parameters will train (``accelerator.device``); default: where they
            are now. It picks the AdamW kernel.
    """
    device = device or next(model.parameters()).device
    groups = [g for g in parameter_groups(model, config.weight_decay) if g["params"]]
    optimizer = _adamw(config, groups, device)
    warmup = int(config.warmup_ratio * config.steps)
    if config.scheduler is Scheduler.COSINE:
        return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, config.steps)
    if config.scheduler is Scheduler.LINEAR:
        return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, config.steps)
    return optimizer, get_constant_schedule_with_warmup(optimizer, warmup)
