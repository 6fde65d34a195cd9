"""Checks that stop a run before it spends time: a method, precision or launch this machine
cannot run, and a first batch that cannot teach the model anything."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from models.loading import AttnImplementation
from training.config import ConfigError, Method, Precision, RunConfig


class PreflightError(ValueError):
    """The first batch cannot teach the model anything; the message says why and how to fix it."""


def check_runtime(config: RunConfig) -> None:
    """Refuse, before any work, a method or precision this machine cannot run.

    Raises:
        ConfigError: naming the field, why it cannot run here and what to use instead.
    """
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


def check_launch(config: RunConfig, accelerator: Accelerator) -> None:
    """Refuse a config the launch (``accelerate launch --config_file ...``) cannot run.

    Raises:
        ConfigError: gradient accumulation under DeepSpeed, which steps inside backward.
    """
    if accelerator.distributed_type == DistributedType.DEEPSPEED and config.grad_accumulation > 1:
        raise ConfigError("grad_accumulation: DeepSpeed steps inside backward; use 1 and a larger batch_size")


def preflight(batch: dict[str, torch.Tensor], image_token_id: int, image_tokens: int) -> None:
    """Fail before the first step on a batch that cannot teach anything, saying how to fix it.

    These are the classic PaliGemma fine-tuning bugs: no suffix in the labels, a prefix-LM
    mask that treats the answer as prompt, and image tokens that do not match the model.

    Args:
        batch: a collated micro-batch (``input_ids``, ``labels``, ``token_type_ids``).
        image_token_id: the model's ``<image>`` token.
        image_tokens: image tokens per example the model expects.

    Raises:
        PreflightError: which of the bugs the batch has, and how to fix it.
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
