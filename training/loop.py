"""The optimisation loop of one run, nanoGPT style: maybe evaluate and checkpoint, accumulate
micro-steps, clip, step, log. Everything it reads and moves is one ``RunState``.

Only the main process validates and writes checkpoint metadata; every rank saves its own part
of Accelerate's state. The data order is replayable, so a resumed run sees the batches an
uninterrupted one would have. Nothing waits for the device between log steps: the window's
sums stay on it until a step logs.
"""

from __future__ import annotations

import math
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from transformers import PaliGemmaProcessor

from data.schema import read_split
from data.tasks import get_task
from training.checkpoints import CheckpointState, abandon_checkpoint, finish_checkpoint, staging_dir
from training.config import RunConfig
from training.loss import IGNORE_INDEX, token_loss_sum
from training.preflight import preflight
from training.sampling import EpochSampler

ProgressCallback = Callable[[int, dict[str, float]], None]


class Validation:
    """Score a fixed slice of the validation split with the task's metric."""

    def __init__(self, config: RunConfig, processor: PaliGemmaProcessor, dataset_dir: Path):
        self.config, self.processor, self.dataset_dir = config, processor, dataset_dir
        self.examples = read_split(dataset_dir, "val")[: config.eval_examples]
        # The task's budget unless the config sets one: the same as test and serving generate with.
        budget = config.max_new_tokens
        self.max_new_tokens = budget if budget is not None else get_task(config.task).max_new_tokens

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        """The task's metrics on the slice, named ``TASK/val/METRIC``; empty without val examples."""
        # Imported at use: only runs that validate load generation and the metric libraries.
        from evaluation.generate import generate_answers
        from evaluation.score import example_record, score_records

        if not self.examples:
            return {}
        outputs = generate_answers(
            model,  # type: ignore[arg-type]
            self.processor,
            self.dataset_dir,
            self.examples,
            max_new_tokens=self.max_new_tokens,
        )
        records = [example_record(self.dataset_dir, e, o) for e, o in zip(self.examples, outputs, strict=True)]
        scored = score_records(self.config.task, records)
        return {f"{self.config.task}/val/{name}": value for name, value in scored.metrics.items()}


@dataclass
class RunState:
    """One run as the loop sees it: its prepared parts, where it starts and where it reports."""

    config: RunConfig
    accelerator: Accelerator
    model: torch.nn.Module  # prepared by Accelerate
    optimizer: Any
    scheduler: torch.optim.lr_scheduler.LambdaLR  # not prepared: it counts optimizer steps
    loader: DataLoader
    sampler: EpochSampler
    output_dir: Path
    image_token_id: int
    image_tokens: int  # per example, as the model expects
    start_step: int = 0  # the checkpoint's step when resumed
    mlflow_run_id: str | None = None
    validation: Validation | None = None
    on_log: ProgressCallback | None = None


def train_loop(run: RunState) -> float:
    """Train from ``run.start_step`` to ``config.steps``; returns the mean loss of the last window.

    Raises:
        PreflightError: the first batch cannot teach anything.
        CheckpointError: a checkpoint could not be written.
    """
    config, accelerator, model = run.config, run.accelerator, run.model
    batches = micro_batches(run, run.start_step * config.grad_accumulation)
    trainable = [p for p in model.parameters() if p.requires_grad]
    window, logged = Window(run.image_token_id, accelerator.device), float("nan")
    progress = _progress(accelerator, config.steps, run.start_step)
    if run.validation is not None and run.start_step == 0:
        validate(run, 0)  # the starting point of the validation curve
    model.train()
    for step in range(run.start_step + 1, config.steps + 1):
        micro = [next(batches) for _ in range(config.grad_accumulation)]
        if step == run.start_step + 1:
            preflight(micro[0], run.image_token_id, run.image_tokens)
        accumulate(accelerator, model, micro, window)
        grad_norm = accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        window.steps += 1
        progress.update(1)
        if step % config.log_every == 0 or step == config.steps:
            metrics = window.metrics(accelerator, config, grad_norm, float(run.scheduler.get_last_lr()[0]))
            logged = metrics["train/loss"]
            log(run, step, metrics)
            progress.set_postfix(loss=f"{logged:.4f}")
            window = Window(run.image_token_id, accelerator.device)
        if run.validation is not None and (step % config.eval_every == 0 or step == config.steps):
            validate(run, step)
        if config.checkpoint_every and (step % config.checkpoint_every == 0 or step == config.steps):
            checkpoint(run, step)
    progress.close()
    return logged


def micro_batches(run: RunState, start_micro: int) -> Iterator[dict[str, torch.Tensor]]:
    """Micro-batches from position ``start_micro`` on, epoch after epoch, in replayable order."""
    epoch, offset = divmod(start_micro, len(run.loader))
    while True:
        batches = run.accelerator.skip_first_batches(run.loader, offset) if offset else run.loader
        # An Accelerate loader sets its sampler's epoch from its own counter when iterated:
        # set that counter too, or a resumed run would replay epoch 0's order.
        if hasattr(batches, "set_epoch"):
            batches.set_epoch(epoch)
        run.sampler.set_epoch(epoch)
        yield from batches
        epoch, offset = epoch + 1, 0


def accumulate(
    accelerator: Accelerator, model: torch.nn.Module, micro_batches: list[dict[str, torch.Tensor]], window: Window
) -> None:
    """Backpropagate one optimizer step's micro-batches, each token weighing the same.

    Each micro-batch's summed token loss is divided by the supervised tokens of the whole
    step, over every micro-batch and every rank, so the accumulated gradient is that of
    the one batch they make up. Two factors undo what the libraries do to that loss:
    ``accelerator.backward`` (and DeepSpeed's engine) divides it by the accumulation steps,
    and DDP, FSDP and DeepSpeed average gradients over ranks, where the division needs their sum.

    ``accelerator.accumulate`` syncs gradients on a step's last micro-batch only (DDP's
    ``no_sync``, FSDP2's ``set_requires_gradient_sync``, DeepSpeed's accumulation boundary);
    the Accelerator counts ``grad_accumulation`` micro-batches per step (``make_accelerator``).
    """
    local = torch.stack([_supervised(batch) for batch in micro_batches]).sum()
    step_tokens = accelerator.reduce(local, reduction="sum")
    # An all-masked step (preflight refuses one only at the start) gives zero gradients, not nan.
    undo = accelerator.num_processes * accelerator.gradient_accumulation_steps
    scale = undo / step_tokens.clamp(min=1).to(torch.float32)
    for batch in micro_batches:
        with accelerator.accumulate(model):
            loss_sum, _ = token_loss_sum(model, batch)
            accelerator.backward(loss_sum * scale)
        window.add_micro(loss_sum.detach(), batch)


def _supervised(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The tokens ``batch`` is scored on (``training.loss``), as a device tensor: no host sync."""
    return (batch["labels"][:, 1:] != IGNORE_INDEX).sum()


def log(run: RunState, step: int, metrics: dict[str, float]) -> None:
    """Log ``metrics`` to the trackers; on the main process also to stderr and ``run.on_log``."""
    run.accelerator.log(metrics, step=step)
    if run.accelerator.is_main_process:
        shown = " ".join(f"{k.removeprefix('train/')} {v:.4g}" for k, v in metrics.items())
        print(f"step {step}/{run.config.steps} {shown}", file=sys.stderr, flush=True)
        if run.on_log is not None:
            run.on_log(step, metrics)


def validate(run: RunState, step: int) -> None:
    """Score the validation slice on the main process and log it; the other ranks wait."""
    if run.accelerator.is_main_process and run.validation is not None:
        # Under the run's autocast: a bf16 base feeds bf16 activations to fp32 trained modules.
        with run.accelerator.autocast():
            metrics = run.validation(run.accelerator.unwrap_model(run.model))
        log(run, step, metrics)
        run.model.train()
    run.accelerator.wait_for_everyone()


def checkpoint(run: RunState, step: int) -> None:
    """Save the whole state beside its final place; only a complete one is moved there.

    Raises:
        CheckpointError: saving failed (disk full, no permission); the last whole one is kept.
    """
    accelerator, staged = run.accelerator, staging_dir(run.output_dir, step)
    if accelerator.is_main_process and staged.exists():
        shutil.rmtree(staged)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(staged))  # every rank: each writes its own RNG state
    except Exception as err:  # disk full, no permission: say where, and what is kept
        raise abandon_checkpoint(run.output_dir, step, err) from err
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = CheckpointState(step, run.config.fingerprint(), run.mlflow_run_id)
        finish_checkpoint(run.output_dir, state, run.config.keep_checkpoints)
    accelerator.wait_for_everyone()


class Window:
    """What happened since the last log: summed token losses, token counts, time.

    The sums stay on the device: adding a micro-batch queues work but never waits for it;
    only ``metrics`` (a log step) reads them back.
    """

    def __init__(self, image_token_id: int, device: torch.device | str = "cpu") -> None:
        self.image_token_id, self.steps, self.start = image_token_id, 0, time.perf_counter()
        # loss sum, supervised tokens, image tokens, attended tokens (text and image, no padding)
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)

    def add_micro(self, loss_sum: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        """Count one micro-batch: its summed loss, supervised, image and attended tokens."""
        counts = (
            loss_sum.detach(),
            _supervised(batch),
            (batch["input_ids"] == self.image_token_id).sum(),
            batch["attention_mask"].sum(),
        )
        self.sums += torch.stack([c.to(self.sums.device, torch.float64) for c in counts])

    def metrics(self, accelerator: Accelerator, config: RunConfig, grad_norm: Any, lr: float) -> dict[str, float]:
        """The window's ``train/*`` metrics, summed over every rank."""
        seconds = max(time.perf_counter() - self.start, 1e-9)
        loss_sum, supervised, image, attended = accelerator.reduce(
            self.sums.to(accelerator.device), reduction="sum"
        ).tolist()  # the one host sync of the window
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
