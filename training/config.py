"""The run config: one typed object, loaded from YAML, overridable from the command line.

Every field carries its help text, and the command line is generated from the fields
(``add_config_arguments``): ``--lora.rank 8`` and ``lora.rank=8`` both work, and ``--help``
lists every field with its default. Validation reports every error at once.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from data.tasks import TASKS
from models.loading import AttnImplementation


class Method(StrEnum):
    LORA = "lora"
    QLORA = "qlora"  # LoRA on a 4-bit nf4 base (bitsandbytes; GPU only)
    FULL = "full"


class Precision(StrEnum):
    """How weights are stored and matmuls computed (see ``training.precision``)."""

    FP32 = "fp32"
    BF16 = "bf16"  # bf16 autocast, fp32 trainable weights; on CPU only worth it for large matmuls (see benchmarks)
    FP16 = "fp16"  # as bf16 with fp16 and loss scaling; GPU only
    BF16_PURE = "bf16-pure"  # every weight, gradient and optimizer state in bf16, no autocast (method full)

    @property
    def accelerate_name(self) -> str:
        """Accelerate's ``mixed_precision``: autocast for bf16/fp16; none for fp32 and pure bf16."""
        return self.value if self in (Precision.BF16, Precision.FP16) else "no"


class Scheduler(StrEnum):
    COSINE = "cosine"
    LINEAR = "linear"
    CONSTANT = "constant"


class Optimizer(StrEnum):
    ADAMW = "adamw"  # torch's AdamW: its fused kernel on CUDA and CPU, foreach elsewhere
    ADAMW_8BIT = "adamw_8bit"  # bitsandbytes' 8-bit AdamW: a quarter of the state memory; CUDA only


class LoraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int = Field(16, gt=0, description="LoRA rank r.")
    alpha: int = Field(32, gt=0, description="LoRA alpha; the update is scaled by alpha / rank.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: str = Field(
        r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        description="Regex of module names to adapt. The default is the language model's attention "
        "and MLP: SigLIP also has q/k/v_proj, and a plain name list would adapt it too.",
    )


class RunConfig(BaseModel):
    """One fine-tuning run."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(
        "tiny",
        description="A preset ('tiny', built locally; 'paligemma2-3b-pt-448', ...: see models.presets), "
        "a hub id or a local folder.",
    )
    task: str = Field("vqa", description="Task name from data.tasks.")
    dataset: str = Field(
        "dvc-data/synthetic/vqa", description="Dataset folder; relative paths are under the project (DVC repository)."
    )
    output_dir: str = Field("runs/tiny-vqa-lora", description="Run folder; relative paths are under the workspace.")
    method: Method = Field(Method.LORA, description="lora, qlora (4-bit base, GPU only) or full.")
    lora: LoraConfig = Field(default_factory=LoraConfig)  # type: ignore[arg-type]
    freeze_vision: bool = Field(True, description="Keep the SigLIP vision tower frozen.")
    freeze_projector: bool = Field(False, description="Keep the multimodal projector frozen (else trained fully).")
    precision: Precision = Field(
        Precision.FP32,
        description="fp32; bf16 or fp16 (GPU): a frozen base is stored in that type, trainable weights and "
        "optimizer state stay fp32, matmuls run under autocast; bf16-pure (method full only): every weight, "
        "gradient and optimizer state in bf16, half the memory of bf16 and coarser updates.",
    )
    attn_implementation: AttnImplementation = Field(
        AttnImplementation.AUTO,
        description="Attention kernel of the vision and text towers: auto (sdpa where the tower supports it, "
        "else eager: Gemma 2, the text tower of PaliGemma 2, refuses sdpa for its logit softcapping), eager, "
        "sdpa or flex_attention (needs a GPU to train). PaliGemma's prefix-LM mask rules out flash_attention_2.",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute each vision and text layer's activations in backward instead of keeping them "
        "(non-reentrant torch.utils.checkpoint): the same loss and gradients, activation memory of about one "
        "layer instead of all, about a third more compute per step.",
    )
    feature_cache: bool = Field(
        True,
        description="Compute the frozen vision tower's image features once per dataset version, base model, "
        "image size and precision (stored under <workspace>/cache/image-features) and reuse them every epoch "
        "and run instead of re-encoding the pixels. Used only when no vision-tower parameter trains; the "
        "losses are those of the uncached run. Costs disk: tokens x vision width x 2-4 bytes per image.",
    )
    length_bucketing: bool = Field(
        False,
        description="Batch examples of similar text length together (sorted within groups of 50 shuffled "
        "batches, then the batches shuffled), so less of each batch is padding. Every example is still "
        "seen once per epoch and its loss does not depend on its padding, but batches of like examples "
        "learn worse: off by default (tiny model, 20k images: OCR exact match 0.595 with it, 0.78 without; "
        "DocVQA 0.565 vs 0.725).",
    )
    preprocess_cache: bool = Field(
        True,
        description="Decode every train image and tokenize every train example once per dataset version, base "
        "model, image size, task and precision (stored under <workspace>/cache/preprocessed) instead of once per "
        "step: no training step opens an image or runs the tokenizer. The losses are those of the uncached run. "
        "Costs disk: the pixels of each image in the training precision (none with the feature cache on).",
    )
    num_workers: int = Field(
        0,
        ge=0,
        description="DataLoader worker processes. 0 collates in the training process: with both caches on a "
        "batch is a few array lookups, and workers only add start-up and inter-process copies (measured on a "
        "2-core CPU); raise it when batches are decoded (caches off) on a machine with spare cores.",
    )
    prefetch_factor: int = Field(2, gt=0, description="Batches each DataLoader worker prepares ahead (num_workers>0).")
    steps: int = Field(1000, gt=0, description="Optimizer steps.")
    batch_size: int = Field(32, gt=0, description="Examples per micro-batch per process.")
    grad_accumulation: int = Field(1, gt=0, description="Micro-batches per optimizer step.")
    learning_rate: float = Field(2e-3, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(
        0.0, ge=0, description="AdamW weight decay; never applied to biases and norm weights (as the HF Trainer)."
    )
    optimizer: Optimizer = Field(
        Optimizer.ADAMW,
        description="adamw (torch's; its fused kernel on CUDA and CPU, foreach elsewhere) or adamw_8bit (bitsandbytes' "
        "8-bit state, a quarter of AdamW's state memory; needs a CUDA GPU and bitsandbytes).",
    )
    scheduler: Scheduler = Field(Scheduler.COSINE, description="Learning-rate decay after warmup.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Fraction of steps of linear warmup.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    seed: int = Field(0, description="Seed for weights of new modules and data order.")
    log_every: int = Field(50, gt=0, description="Log loss, lr, grad norm and throughput every N steps.")
    checkpoint_every: int = Field(
        0, ge=0, description="Save the full training state every N steps (0: only the final adapter)."
    )
    keep_checkpoints: int = Field(2, gt=0, description="Checkpoints kept; older ones are deleted.")
    resume: bool = Field(True, description="Resume from the latest checkpoint in output_dir when there is one.")
    eval_every: int = Field(0, ge=0, description="Score the validation split every N steps (0: never).")
    eval_examples: int = Field(64, gt=0, description="Validation examples scored each time.")
    max_new_tokens: int | None = Field(
        None,
        gt=0,
        description="Generation budget of validation scoring; unset: the task's own (data.tasks), the budget "
        "test and serving generate with.",
    )
    num_threads: int = Field(0, ge=0, description="torch threads on CPU; 0 keeps torch's default.")
    experiment: str = Field("palitune", description="MLflow experiment name.")

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(sorted(TASKS))}")
        return task

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.checkpoint_every and self.checkpoint_every > self.steps:
            raise ValueError(f"checkpoint_every ({self.checkpoint_every}) is larger than steps ({self.steps})")
        if self.precision is Precision.BF16_PURE and self.method is not Method.FULL:
            raise ValueError(
                f"precision bf16-pure is for method full; method {self.method.value} already keeps its frozen "
                "base in bf16 with precision bf16 (its adapter in fp32)"
            )
        return self

    def fingerprint(self) -> str:
        """A short hash of what the run learns from: equal fingerprints train equal runs.

        Fields that change only where or how often things are written (``output_dir``,
        logging, checkpoints, ``resume``, ``experiment``, threads) are left out.
        """
        values = self.model_dump(mode="json", exclude=RUNTIME_FIELDS)
        canonical = json.dumps(values, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


RUNTIME_FIELDS = {
    "output_dir",
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
    "resume",
    "experiment",
    "num_threads",
    "feature_cache",  # the same losses with or without it (tested), so a run may resume either way
    "gradient_checkpointing",  # the same too (tested): memory traded for compute
    "attn_implementation",  # the same attention, other kernels (tested equal to float noise)
    "preprocess_cache",  # the same batches, read instead of decoded (tested)
    "num_workers",  # where batches are collated, not what they hold
    "prefetch_factor",
}


class ConfigError(ValueError):
    """A run config that does not validate; the message lists every problem."""


def _set_dotted(data: dict[str, Any], dotted: str, value: str) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        child = data.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted}={value}: {key} is not a group of fields")
        data = child
    data[keys[-1]] = yaml.safe_load(value)  # "3" -> 3, "true" -> True, "1e-3" -> str: pydantic coerces


def load_config(path: Path | None, overrides: list[str] = ()) -> RunConfig:  # type: ignore[assignment]
    """Load a run config from YAML and apply ``key.sub=value`` overrides.

    Raises:
        ConfigError: naming the file and every invalid field.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of config fields")
        data = loaded
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r}: expected key=value")
        _set_dotted(data, key.strip(), value)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in e['loc']) or '(config)'}: {_message(e)}" for e in err.errors()
        )
        raise ConfigError(f"{path or 'config'}: {err.error_count()} invalid field(s)\n{problems}") from None


def _message(error: Any) -> str:
    """Pydantic's message for one error; for an unknown key, the closest field names too (else
    every field there is), since a typo (``learnig_rate``) is the usual cause and "Extra inputs
    are not permitted" alone does not say what was meant."""
    if error["type"] != "extra_forbidden":
        return str(error["msg"])
    *parents, key = (str(p) for p in error["loc"])
    model: type[BaseModel] = RunConfig
    for name in parents:
        annotation = model.model_fields[name].annotation if name in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return str(error["msg"])
        model = annotation
    nested = [dotted for dotted, _ in config_fields(model) if "." in dotted]  # lora_rank -> lora.rank
    close = difflib.get_close_matches(key, [*model.model_fields, *nested], n=2, cutoff=0.6)
    prefix = "".join(f"{name}." for name in parents)
    if close:
        return f"{error['msg']}; did you mean {' or '.join(repr(prefix + c) for c in close)}?"
    where = f" of {prefix.rstrip('.')}" if parents else ""
    return f"{error['msg']} (the fields{where}: {', '.join(model.model_fields)})"


def config_fields(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[tuple[str, Any]]:
    """Every leaf field as ``(dotted name, FieldInfo)``, groups flattened."""
    fields = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields += config_fields(annotation, f"{prefix}{name}.")
        else:
            fields.append((f"{prefix}{name}", info))
    return fields


_OVERRIDE_DEST = "config_overrides"


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one ``--NAME VALUE`` option per config field, help from the field."""
    parser.add_argument("--config", type=Path, help="run config YAML (see configs/); fields below override it")
    group = parser.add_argument_group("run config fields (also accepted as positional NAME=VALUE)")
    for dotted, info in config_fields():
        annotation = info.annotation
        choices = (
            [m.value for m in annotation] if isinstance(annotation, type) and issubclass(annotation, StrEnum) else None
        )
        default = info.get_default(call_default_factory=True)
        shown = default.value if isinstance(default, StrEnum) else default
        group.add_argument(
            f"--{dotted}",
            dest=_OVERRIDE_DEST,
            action=_Override,
            metavar=dotted.rsplit(".", 1)[-1].upper(),
            choices=choices,
            help=f"{info.description} (default: {shown})",
        )
    parser.add_argument("overrides", nargs="*", metavar="NAME=VALUE", help="override config fields, e.g. lora.rank=8")


class _Override(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        items = list(getattr(namespace, self.dest, None) or [])
        items.append(f"{str(option_string).removeprefix('--')}={values}")
        setattr(namespace, self.dest, items)


def config_overrides(args: argparse.Namespace) -> list[str]:
    """Every override ``add_config_arguments`` parsed, ``--NAME VALUE`` options first, as ``NAME=VALUE``:
    what another command line (``palitune train``) passes on to ``python -m training.train``."""
    return [*(getattr(args, _OVERRIDE_DEST, None) or []), *args.overrides]


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The config ``add_config_arguments`` options describe: file, then options and NAME=VALUE."""
    return load_config(args.config, config_overrides(args))
