"""Checks that stop a run before it spends time: a method, precision or launch this machine
cannot run, and a first batch that cannot teach the model anything."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Launch:
    """What a launch (``accelerate launch --config_file ...``) does that a run config must fit.

    Read from a running Accelerator (``Launch.of``) or from an accelerate config file
    (``Launch.from_file``), so the shipped launch files are checked with the same rules,
    without launching.
    """

    distributed_type: DistributedType
    fsdp_version: int | None = None
    zero_stage: int | None = None
    # DeepSpeed values set explicitly in its config; None where accelerate fills them ("auto").
    deepspeed_grad_accumulation: int | None = None
    deepspeed_gradient_clipping: float | None = None
    zero3_gathers_weights_on_save: bool = False
    zero3_init: bool = False  # ZeRO-3 builds the model already partitioned (zero3_init_flag)

    @property
    def shards_parameters(self) -> bool:
        """Each process holds a slice of every layer's parameters (FSDP, ZeRO stage 3)."""
        zero3 = self.distributed_type == DistributedType.DEEPSPEED and self.zero_stage == 3
        return self.distributed_type == DistributedType.FSDP or zero3

    @property
    def name(self) -> str:
        if self.distributed_type == DistributedType.FSDP:
            return f"FSDP{self.fsdp_version or 1}"
        if self.distributed_type == DistributedType.DEEPSPEED:
            return f"DeepSpeed ZeRO stage {self.zero_stage}"
        return str(self.distributed_type.value)

    @classmethod
    def of(cls, accelerator: Accelerator) -> Launch:
        """The launch ``accelerator`` runs under."""
        state = accelerator.state
        if state.distributed_type == DistributedType.DEEPSPEED:
            plugin = state.deepspeed_plugin
            return cls._from_deepspeed_json(plugin.deepspeed_config, zero3_init=bool(plugin.zero3_init_flag))
        if state.distributed_type == DistributedType.FSDP:
            return cls(DistributedType.FSDP, fsdp_version=int(state.fsdp_plugin.fsdp_version))
        return cls(DistributedType(state.distributed_type))

    @classmethod
    def from_file(cls, path: Path) -> Launch:
        """The launch an accelerate config file describes (what ``accelerate launch`` would run).

        Raises:
            ConfigError: the file cannot be read as an accelerate config.
        """
        from accelerate.commands.config.config_args import load_config_from_file

        try:
            cluster = load_config_from_file(str(path))
        except (OSError, ValueError, TypeError) as err:
            raise ConfigError(f"{path}: not an accelerate config ({err})") from err
        kind = DistributedType(cluster.distributed_type)
        if kind == DistributedType.FSDP:
            return cls(kind, fsdp_version=int((cluster.fsdp_config or {}).get("fsdp_version", 1)))
        if kind != DistributedType.DEEPSPEED:
            return cls(kind)
        plugin = dict(cluster.deepspeed_config or {})
        if plugin.get("deepspeed_config_file"):
            ds_file = Path(plugin["deepspeed_config_file"])
            init = _flag(plugin.get("zero3_init_flag"))
            return cls._from_deepspeed_json(json.loads(ds_file.read_text()), zero3_init=init)
        return cls(
            kind,
            zero_stage=int(plugin.get("zero_stage", 2)),
            deepspeed_grad_accumulation=_explicit_int(plugin.get("gradient_accumulation_steps")),
            deepspeed_gradient_clipping=_explicit_float(plugin.get("gradient_clipping")),
            zero3_gathers_weights_on_save=_flag(plugin.get("zero3_save_16bit_model")),
            zero3_init=_flag(plugin.get("zero3_init_flag")),
        )

    @classmethod
    def _from_deepspeed_json(cls, ds: dict[str, Any], *, zero3_init: bool) -> Launch:
        zero = ds.get("zero_optimization") or {}
        return cls(
            DistributedType.DEEPSPEED,
            zero_stage=int(zero.get("stage", 0)),
            deepspeed_grad_accumulation=_explicit_int(ds.get("gradient_accumulation_steps")),
            deepspeed_gradient_clipping=_explicit_float(ds.get("gradient_clipping")),
            zero3_gathers_weights_on_save=_flag(zero.get("stage3_gather_16bit_weights_on_model_save")),
            zero3_init=zero3_init,
        )


def _explicit_int(value: Any) -> int | None:
    return None if value in (None, "auto") else int(value)


def _explicit_float(value: Any) -> float | None:
    return None if value in (None, "auto") else float(value)


def _flag(value: Any) -> bool:
    return str(value).lower() == "true"


def check_launch(config: RunConfig, accelerator: Accelerator) -> None:
    """Refuse a config the launch (``accelerate launch --config_file ...``) cannot run.

    Raises:
        ConfigError: see ``check_launch_fits``.
    """
    check_launch_fits(config, Launch.of(accelerator))


def check_launch_fits(config: RunConfig, launch: Launch) -> None:
    """Refuse a config ``launch`` would run wrongly or hang on, naming the field to change.

    Raises:
        ConfigError: in-loop validation with sharded parameters; a DeepSpeed config whose
            accumulation or clipping contradicts the run config; ZeRO-3 that cannot gather
            the weights to save them, or that partitions them before the feature cache runs.
    """
    if launch.shards_parameters and config.eval_every:
        raise ConfigError(
            f"eval_every: {config.eval_every} validates on the main process only, but {launch.name} shards every "
            "layer's parameters over the processes, and a sharded layer runs only when every process runs it "
            "too: generation on one process would wait for the others forever. Set eval_every=0 under this "
            "launch and score the saved adapter afterwards (palitune evaluate run), or launch data parallel."
        )
    if launch.distributed_type != DistributedType.DEEPSPEED:
        return
    if launch.deepspeed_grad_accumulation not in (None, config.grad_accumulation):
        raise ConfigError(
            f"grad_accumulation: {config.grad_accumulation}, but the DeepSpeed config sets gradient_accumulation_steps "
            f"{launch.deepspeed_grad_accumulation}; DeepSpeed would use its own. Make them equal, or set DeepSpeed's "
            "to auto (palitune then passes the run config's)."
        )
    if launch.deepspeed_gradient_clipping not in (None, config.max_grad_norm):
        raise ConfigError(
            f"max_grad_norm: {config.max_grad_norm}, but the DeepSpeed config sets gradient_clipping "
            f"{launch.deepspeed_gradient_clipping}, and DeepSpeed clips inside its step. Make them equal, or "
            "leave gradient_clipping out (palitune then passes max_grad_norm)."
        )
    if launch.zero_stage == 3 and not launch.zero3_gathers_weights_on_save:
        raise ConfigError(
            "deepspeed_config: ZeRO stage 3 without zero3_save_16bit_model: true (DeepSpeed's "
            "stage3_gather_16bit_weights_on_model_save) cannot gather the sharded weights, so the adapter could "
            "not be saved at the end of training. Set it in the accelerate config."
        )
    if launch.zero_stage == 3 and launch.zero3_init and config.feature_cache and config.freeze_vision:
        raise ConfigError(
            "feature_cache: ZeRO-3 with zero3_init_flag builds the base already partitioned over the processes, "
            "so its vision tower cannot run outside DeepSpeed's engine to cache image features. Set "
            "feature_cache=false, or zero3_init_flag: false in the accelerate config."
        )


def fit_deepspeed_config(config: RunConfig, accelerator: Accelerator) -> None:
    """Give DeepSpeed the run's accumulation and clipping where its config leaves them to us
    (``fill_deepspeed_config``); nothing to do under another launch."""
    if accelerator.state.distributed_type == DistributedType.DEEPSPEED:
        fill_deepspeed_config(config, accelerator.state.deepspeed_plugin.deepspeed_config)


def fill_deepspeed_config(config: RunConfig, ds: dict[str, Any]) -> None:
    """Set ``ds``'s (a DeepSpeed config) accumulation and clipping from ``config`` where unset or auto.

    DeepSpeed accumulates and clips inside its own step, so ``max_grad_norm`` only holds if
    its config says so; accelerate would otherwise fill ``gradient_clipping`` with 1.0.
    ``check_launch`` has already refused values that contradict the run config.
    """
    if ds.get("gradient_clipping") in (None, "auto"):
        ds["gradient_clipping"] = config.max_grad_norm
    if ds.get("gradient_accumulation_steps") in (None, "auto"):
        ds["gradient_accumulation_steps"] = config.grad_accumulation


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
