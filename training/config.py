"""The run config: one typed object, loaded from YAML, overridable from the command line.

Every field carries its help text; validation reports every error at once.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Method(StrEnum):
    LORA = "lora"
    FULL = "full"


class LoraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int = Field(16, gt=0, description="LoRA rank r.")
    alpha: int = Field(32, gt=0, description="LoRA alpha; the update is scaled by alpha / rank.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: str = Field(
        r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        description="Regex of module names to adapt. The default keeps LoRA on the language "
        "model: SigLIP also has q/k/v_proj, and a plain name list would adapt it too.",
    )


class RunConfig(BaseModel):
    """One fine-tuning run."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field("tiny", description="'tiny' (built locally), a hub id or a local path.")
    task: str = Field("vqa", description="Task name from data.tasks.")
    dataset: str = Field("synthetic/vqa", description="Dataset folder; relative paths are under the workspace.")
    output_dir: str = Field("runs/tiny-vqa-lora", description="Run folder; relative paths are under the workspace.")
    method: Method = Field(Method.LORA, description="lora or full.")
    lora: LoraConfig = Field(default_factory=LoraConfig)  # type: ignore[arg-type]
    train_projector: bool = Field(True, description="Train the multimodal projector fully (LoRA runs).")
    freeze_vision: bool = Field(True, description="Keep the vision tower frozen.")
    steps: int = Field(1000, gt=0, description="Optimizer steps.")
    batch_size: int = Field(32, gt=0, description="Examples per step per process.")
    learning_rate: float = Field(2e-3, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Fraction of steps of linear warmup.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    seed: int = Field(0, description="Seed for weights of new modules and data order.")
    log_every: int = Field(50, gt=0, description="Log the loss every N steps.")
    num_threads: int = Field(0, ge=0, description="torch threads on CPU; 0 keeps torch's default.")
    experiment: str = Field("palitune", description="MLflow experiment name.")

    def fingerprint(self) -> str:
        """A short hash of the whole config: equal configs train equal runs."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class ConfigError(ValueError):
    """A run config that does not validate; the message lists every problem."""


def _set_dotted(data: dict[str, Any], dotted: str, value: str) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        data = data.setdefault(key, {})
    data[keys[-1]] = yaml.safe_load(value)  # "3" -> 3, "true" -> True, "1e-3" -> str: pydantic coerces


def load_config(path: Path | None, overrides: list[str] = ()) -> RunConfig:  # type: ignore[assignment]
    """Load a run config from YAML and apply ``key.sub=value`` overrides.

    Raises:
        ConfigError: naming the file and every invalid field.
    """
    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
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
        problems = "\n".join(f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{path or 'config'}: {err.error_count()} invalid field(s)\n{problems}") from None
