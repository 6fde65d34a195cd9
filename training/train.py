"""Fine-tune PaliGemma on one task: ``python -m training.train --config X.yaml [NAME=VALUE ...]``.

The same loop runs under ``accelerate launch --config_file configs/accelerate/NAME.yaml -m
training.train ...`` on one CPU process, many GPUs or many nodes. Only the main process
writes checkpoints, the adapter and MLflow records. Metrics go to MLflow through
Accelerate's MLflow tracker; pass ``MLFLOW_RUN_ID`` to log into a run someone else opened.

Resumable: with ``checkpoint_every`` set, the whole training state is saved every N steps
under ``<output_dir>/checkpoints``, and rerunning the same config with the same
``output_dir`` continues from the latest one, in the same MLflow run, with the same data
order, so the losses after resume are those an uninterrupted run would have logged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from torch.utils.data import DataLoader
from transformers import (
    PaliGemmaProcessor,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from data.atomic import staged_dir
from data.schema import DataError, Example, read_split
from data.versioning import recorded_hash, verify_dataset
from data.workspace import Workspace
from models.loading import AttnImplementation, ModelError, load_base, resolve_base
from training.checkpoints import (
    CheckpointState,
    abandon_checkpoint,
    finish_checkpoint,
    latest_checkpoint,
    read_state,
    staging_dir,
)
from training.collate import TrainCollator
from training.config import (
    ConfigError,
    Method,
    Precision,
    RunConfig,
    Scheduler,
    add_config_arguments,
    config_from_args,
)
from training.feature_cache import (
    ImageFeatures,
    cache_blocker,
    cache_key,
    dataset_identity,
    load_or_compute_features,
    serve_cached_features,
)
from training.loss import supervised_token_count, token_loss_sum
from training.peft_setup import prepare_model
from training.precision import enable_tf32, load_dtype
from training.sampling import EpochSampler, LengthGroupedSampler, text_lengths

RUN_INFO_FILE = "palitune_run.json"
ProgressCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    base_model: str  # the resolved reference the adapter applies to
    dataset_hash: str | None
    final_loss: float
    steps: int
    trainable_params: int
    mlflow_run_id: str | None
    resumed_from_step: int = 0


class PreflightError(ValueError):
    """The first batch cannot teach the model anything; the message says why and how to fix it."""


def check_runtime(config: RunConfig) -> None:
    """Refuse, before any work, a method or precision this machine cannot run."""
    cuda = torch.cuda.is_available()
    if config.method is Method.QLORA:
        if not cuda:
            raise ConfigError(
                "method: qlora loads the base in 4-bit nf4 through bitsandbytes, which needs a CUDA GPU, "
                "and none is visible here. Use method=lora on this machine (the same adapter on a "
                "full-precision base)."
            )
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("method: qlora needs bitsandbytes: pip install bitsandbytes") from None
    if config.precision is Precision.FP16 and not cuda:
        raise ConfigError("precision: fp16 autocast needs a GPU; use bf16 or fp32 on a CPU")
    if config.attn_implementation is AttnImplementation.FLEX_ATTENTION and not cuda:
        raise ConfigError(
            "attn_implementation: flex_attention has no backward on a CPU in this torch; use auto, eager or sdpa here"
        )


def preflight(batch: dict[str, torch.Tensor], image_token_id: int, image_tokens: int) -> None:
    """Fail before the first step on a batch that cannot teach anything, saying how to fix it.

    These are the classic PaliGemma fine-tuning bugs: no suffix in the labels, a prefix-LM
    mask that treats the answer as prompt, and image tokens that do not match the model.
    """
    if "token_type_ids" not in batch:
        raise PreflightError(
            "batch has no token_type_ids: PaliGemma needs them for its prefix-LM mask. "
            "Build batches with processor(text=..., images=..., suffix=...)."
        )
    labels, types = batch["labels"], batch["token_type_ids"]
    supervised = labels != -100
    if int(supervised.sum()) == 0:
        raise PreflightError(
            "every label is masked (-100): the loss mask is empty, so nothing is learnt. The suffixes "
            "are empty or were truncated away; check the dataset's suffix field and any max_length."
        )
    if bool((types[supervised] == 0).any()):
        raise PreflightError(
            "token_type_ids are 0 on suffix tokens: the model would attend to the answer bidirectionally "
            "while learning to predict it. Pass the answers as processor(..., suffix=...), not in text=."
        )
    per_row = (batch["input_ids"] == image_token_id).sum(dim=1)
    if bool((per_row != image_tokens).any()):
        raise PreflightError(
            f"image tokens per example {sorted(set(per_row.tolist()))} != {image_tokens} the model expects: "
            "the processor and model come from different checkpoints or image sizes. Load both from "
            "the same base (palitune does, from base_model)."
        )


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
    dataset_dir = workspace.resolve(config.dataset)
    output_dir = workspace.resolve(config.output_dir)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    _use_tracking_store(tracking_uri or workspace.tracking_uri)
    accelerator = Accelerator(
        log_with="mlflow", mixed_precision=config.precision.accelerate_name, project_dir=str(output_dir)
    )
    if accelerator.distributed_type == DistributedType.DEEPSPEED and config.grad_accumulation > 1:
        raise ConfigError("grad_accumulation: DeepSpeed steps inside backward; use 1 and a larger batch_size")
    # A versioned dataset must still be that version, byte for byte.
    data_hash = verify_dataset(dataset_dir) if recorded_hash(dataset_dir) else None
    resume_from = latest_checkpoint(output_dir) if config.resume else None
    state = read_state(resume_from) if resume_from is not None else None
    if state is not None and state.config_fingerprint != config.fingerprint():
        raise ConfigError(
            f"output_dir: {output_dir} holds checkpoints of another config (fingerprint "
            f"{state.config_fingerprint}, this one {config.fingerprint()}); use a new output_dir or resume=false"
        )
    base_ref = resolve_base(config.base_model, workspace.models)
    set_seed(config.seed)  # after a possible base build: same run, same LoRA init
    enable_tf32(accelerator.device)
    base, processor = load_base(
        base_ref,
        dtype=load_dtype(config),
        quantize_4bit=config.method is Method.QLORA,
        attn_implementation=config.attn_implementation,
    )
    image_token_id, image_tokens = base.config.image_token_id, int(base.config.text_config.num_image_tokens)  # type: ignore[union-attr]
    model, trainable = prepare_model(base, config)
    examples = read_split(dataset_dir, "train")
    sampler = (
        LengthGroupedSampler(text_lengths(processor, examples), config.batch_size, config.seed)
        if config.length_bucketing
        else EpochSampler(len(examples), config.seed)
    )
    features = _image_features(
        config, workspace, accelerator, base, base_ref, processor, dataset_dir, examples, data_hash
    )
    loader = _make_loader(config, processor, dataset_dir, examples, sampler, features)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate, weight_decay=config.weight_decay
    )
    # Not prepared: Accelerate would step it once per process per step; the schedule is in optimizer steps.
    scheduler = _make_scheduler(config, optimizer)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    accelerator.register_for_checkpointing(scheduler)
    start_step = 0
    if resume_from is not None and state is not None:
        accelerator.load_state(str(resume_from))
        start_step = state.step
        mlflow_run_id = mlflow_run_id or state.mlflow_run_id
        if accelerator.is_main_process:
            print(f"resuming {output_dir} from step {start_step}", file=sys.stderr, flush=True)

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
    run_id = _active_mlflow_run_id(accelerator)
    if accelerator.is_main_process:
        import mlflow

        mlflow.set_tags(
            {
                "palitune.task": config.task,
                "palitune.base_model": config.base_model,
                "palitune.dataset_hash": data_hash or "unversioned",
                "palitune.config_hash": config.fingerprint(),
                "palitune.method": config.method.value,
            }
        )
    loop = _Loop(accelerator, model, optimizer, scheduler, loader, sampler, config, output_dir, run_id, on_log)
    loop.validation = _Validation(config, processor, dataset_dir) if config.eval_every else None
    try:
        with serve_cached_features(base) if features is not None else contextlib.nullcontext():
            final_loss = loop.run(start_step, image_token_id, image_tokens)
    except BaseException:
        _end_mlflow_run("FAILED", accelerator)
        raise
    result = TrainResult(
        output_dir / "adapter", base_ref, data_hash, final_loss, config.steps, trainable, run_id, start_step
    )
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with staged_dir(result.adapter_dir) as tmp:  # a crash never leaves half an adapter in place
            accelerator.unwrap_model(model).save_pretrained(tmp, safe_serialization=True)
            processor.save_pretrained(tmp)
            info = {**asdict(result), "adapter_dir": str(result.adapter_dir), "config": config.model_dump(mode="json")}
            (tmp / RUN_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    accelerator.end_training()
    return result


def _image_features(
    config: RunConfig,
    workspace: Workspace,
    accelerator: Accelerator,
    base: Any,
    base_ref: str,
    processor: PaliGemmaProcessor,
    dataset_dir: Path,
    examples: list[Example],
    data_hash: str | None,
) -> ImageFeatures | None:
    """The frozen vision tower's cached features of the train images, or ``None`` when not used."""
    if not config.feature_cache:
        return None
    blocker = cache_blocker(base)
    if blocker is not None:
        if accelerator.is_main_process:
            print(f"image feature cache off: {blocker}", file=sys.stderr, flush=True)
        return None
    base.model.vision_tower.to(accelerator.device)
    key = cache_key(
        dataset=dataset_identity(dataset_dir, examples, data_hash),
        base_ref=base_ref,
        model=base,
        processor=processor,
        precision=config.precision.value,
        device=accelerator.device,
    )
    with accelerator.main_process_first():  # one process computes, the others read what it wrote
        return load_or_compute_features(
            workspace.root / "cache" / "image-features",
            key,
            base,
            processor,
            dataset_dir,
            examples,
            batch_size=config.batch_size,
            autocast=accelerator.autocast,
        )


def _make_loader(
    config: RunConfig,
    processor: PaliGemmaProcessor,
    dataset_dir: Path,
    examples: list[Example],
    sampler: EpochSampler,
    features: ImageFeatures | None = None,
) -> DataLoader:
    return DataLoader(
        examples,  # type: ignore[arg-type]
        batch_size=config.batch_size,
        sampler=sampler,
        drop_last=len(examples) >= config.batch_size,
        collate_fn=TrainCollator(processor, dataset_dir, features),
    )


def _make_scheduler(config: RunConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = int(config.warmup_ratio * config.steps)
    if config.scheduler is Scheduler.COSINE:
        return get_cosine_schedule_with_warmup(optimizer, warmup, config.steps)
    if config.scheduler is Scheduler.LINEAR:
        return get_linear_schedule_with_warmup(optimizer, warmup, config.steps)
    return get_constant_schedule_with_warmup(optimizer, warmup)


class _Validation:
    """Score a fixed slice of the validation split with the task's metric."""

    def __init__(self, config: RunConfig, processor: PaliGemmaProcessor, dataset_dir: Path):
        self.config, self.processor, self.dataset_dir = config, processor, dataset_dir
        self.examples = read_split(dataset_dir, "val")[: config.eval_examples]

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        # evaluation depends on training's model loading; imported here, at use, not at import
        from evaluation.generate import generate_answers
        from evaluation.score import example_record, score_records

        if not self.examples:
            return {}
        outputs = generate_answers(
            model,  # type: ignore[arg-type]
            self.processor,
            self.dataset_dir,
            self.examples,
            max_new_tokens=self.config.max_new_tokens,
        )
        records = [example_record(self.dataset_dir, e, o) for e, o in zip(self.examples, outputs, strict=True)]
        scored = score_records(self.config.task, records)
        return {f"{self.config.task}/val/{name}": value for name, value in scored.metrics.items()}


class _Loop:
    """The optimizer steps, logging, checkpoints and validation of one run."""

    validation: _Validation | None = None

    def __init__(
        self,
        accelerator: Accelerator,
        model: torch.nn.Module,
        optimizer: Any,
        scheduler: torch.optim.lr_scheduler.LambdaLR,
        loader: DataLoader,
        sampler: EpochSampler,
        config: RunConfig,
        output_dir: Path,
        run_id: str | None,
        on_log: ProgressCallback | None,
    ):
        self.accelerator, self.model, self.optimizer, self.scheduler = accelerator, model, optimizer, scheduler
        self.loader, self.sampler, self.config, self.output_dir = loader, sampler, config, output_dir
        self.run_id, self.on_log = run_id, on_log

    def micro_batches(self, start_micro: int) -> Iterator[dict[str, torch.Tensor]]:
        """Micro-batches from position ``start_micro`` on, epoch after epoch, in replayable order."""
        per_epoch = len(self.loader)
        epoch, offset = divmod(start_micro, per_epoch)
        while True:
            batches = self.accelerator.skip_first_batches(self.loader, offset) if offset else self.loader
            # An Accelerate loader sets its sampler's epoch from its own counter when iterated:
            # set that counter too, or a resumed run would replay epoch 0's order.
            if hasattr(batches, "set_epoch"):
                batches.set_epoch(epoch)
            self.sampler.set_epoch(epoch)
            yield from batches
            epoch, offset = epoch + 1, 0

    def run(self, start_step: int, image_token_id: int, image_tokens: int) -> float:
        """Train from ``start_step`` to ``config.steps``; returns the mean loss of the last window."""
        config, accelerator, model = self.config, self.accelerator, self.model
        accumulation = config.grad_accumulation
        batches = self.micro_batches(start_step * accumulation)
        trainable = [p for p in model.parameters() if p.requires_grad]
        window = _Window(image_token_id)
        logged = float("nan")
        progress = _progress(accelerator, config.steps, start_step)
        if self.validation is not None and start_step == 0:
            self.validate(0)  # the starting point of the validation curve
        model.train()
        for step in range(start_step + 1, config.steps + 1):
            micro_batches = [next(batches) for _ in range(accumulation)]
            if step == start_step + 1:
                preflight(micro_batches[0], image_token_id, image_tokens)
            self.accumulate(micro_batches, window)
            grad_norm = accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            window.steps += 1
            progress.update(1)
            if step % config.log_every == 0 or step == config.steps:
                metrics = window.metrics(accelerator, config, grad_norm, float(self.scheduler.get_last_lr()[0]))
                logged = metrics["train/loss"]
                self.log(step, metrics)
                progress.set_postfix(loss=f"{logged:.4f}")
                window = _Window(image_token_id)
            if self.validation is not None and (step % config.eval_every == 0 or step == config.steps):
                self.validate(step)
            if config.checkpoint_every and (step % config.checkpoint_every == 0 or step == config.steps):
                self.checkpoint(step)
        progress.close()
        return logged

    def accumulate(self, micro_batches: list[dict[str, torch.Tensor]], window: _Window) -> None:
        """Backpropagate one optimizer step's micro-batches, each token weighing the same.

        Each micro-batch's summed token loss is divided by the supervised tokens of the whole
        step, over every micro-batch and every rank, so the accumulated gradient is that of
        the one batch they make up. DDP, FSDP and DeepSpeed average gradients over ranks:
        the factor ``num_processes`` turns that average back into the sum the division needs.
        """
        accelerator, model = self.accelerator, self.model
        local = sum(supervised_token_count(batch) for batch in micro_batches)
        step_tokens = accelerator.reduce(torch.tensor(local, device=accelerator.device), reduction="sum")
        # An all-masked step (preflight refuses one only at the start) gives zero gradients, not nan.
        scale = accelerator.num_processes / step_tokens.clamp(min=1).to(torch.float32)
        for micro, batch in enumerate(micro_batches):
            syncing = micro == len(micro_batches) - 1
            with accelerator.no_sync(model) if not syncing else contextlib.nullcontext():
                loss_sum, tokens = token_loss_sum(model, batch)
                accelerator.backward(loss_sum * scale)
            window.add_micro(loss_sum.detach().float(), tokens, batch)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.accelerator.log(metrics, step=step)
        if self.accelerator.is_main_process:
            shown = " ".join(f"{k.removeprefix('train/')} {v:.4g}" for k, v in metrics.items())
            print(f"step {step}/{self.config.steps} {shown}", file=sys.stderr, flush=True)
            if self.on_log is not None:
                self.on_log(step, metrics)

    def validate(self, step: int) -> None:
        if self.accelerator.is_main_process and self.validation is not None:
            # Under the run's autocast: a bf16 base feeds bf16 activations to fp32 trained modules.
            with self.accelerator.autocast():
                metrics = self.validation(self.accelerator.unwrap_model(self.model))
            self.log(step, metrics)
            self.model.train()
        self.accelerator.wait_for_everyone()

    def checkpoint(self, step: int) -> None:
        """Save the whole state beside its final place; only a complete one is moved there."""
        accelerator, staged = self.accelerator, staging_dir(self.output_dir, step)
        if accelerator.is_main_process and staged.exists():
            shutil.rmtree(staged)
        accelerator.wait_for_everyone()
        try:
            accelerator.save_state(str(staged))  # every rank: each writes its own RNG state
        except Exception as err:  # disk full, no permission: say where, and what is kept
            raise abandon_checkpoint(self.output_dir, step, err) from err
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            state = CheckpointState(step, self.config.fingerprint(), self.run_id)
            finish_checkpoint(self.output_dir, state, self.config.keep_checkpoints)
        accelerator.wait_for_everyone()


class _Window:
    """What happened since the last log: summed token losses, token counts, time."""

    def __init__(self, image_token_id: int) -> None:
        self.image_token_id, self.steps, self.start = image_token_id, 0, time.perf_counter()
        # loss sum, supervised tokens, image tokens, attended tokens (text and image, no padding)
        self.sums = torch.zeros(4, dtype=torch.float64)

    def add_micro(self, loss_sum: torch.Tensor, supervised: int, batch: dict[str, torch.Tensor]) -> None:
        image = int((batch["input_ids"] == self.image_token_id).sum())
        attended = int(batch["attention_mask"].sum())
        self.sums += torch.tensor([float(loss_sum.cpu()), supervised, image, attended], dtype=torch.float64)

    def metrics(self, accelerator: Accelerator, config: RunConfig, grad_norm: Any, lr: float) -> dict[str, float]:
        seconds = max(time.perf_counter() - self.start, 1e-9)
        loss_sum, supervised, image, attended = accelerator.reduce(
            self.sums.to(accelerator.device), reduction="sum"
        ).tolist()
        samples = self.steps * config.batch_size * config.grad_accumulation * accelerator.num_processes
        return {
            "train/loss": loss_sum / max(supervised, 1),  # per supervised token, as the gradient weighs them
            "train/lr": lr,
            "train/grad_norm": float(grad_norm) if grad_norm is not None else math.nan,
            "train/samples_per_s": samples / seconds,
            "train/supervised_tokens_per_s": supervised / seconds,  # answer tokens scored
            "train/image_tokens_per_s": image / seconds,
            "train/tokens_per_s": attended / seconds,  # every position computed: image, prompt and answer
            "train/peak_memory_mb": _peak_memory_mb(accelerator),
        }


def _peak_memory_mb(accelerator: Accelerator) -> float:
    if accelerator.device.type == "cuda":
        return torch.cuda.max_memory_allocated(accelerator.device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _progress(accelerator: Accelerator, total: int, initial: int) -> Any:
    from tqdm.auto import tqdm

    # Only the main process draws it, and only on a terminal: logs stay readable.
    enabled = accelerator.is_main_process and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", unit="step")


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
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
