"""Load a PaliGemma base: the tiny local preset, a local folder or a hub id, one code path.

``tiny`` is built on first use under the workspace's ``models/`` folder; every other
reference goes straight to ``from_pretrained`` (safetensors only, no remote code). What is
loaded is checked first: a base's image size must tile into its patches, an adapter folder
must be complete, unpickled and made for the base it is applied to.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from transformers import AutoProcessor, PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor

from models.presets import preset_for
from models.tiny_base import build_tiny_base, tiny_base_is_current

TINY_PRESET = "tiny"
TINY_DIR_NAME = "tiny-paligemma"
PICKLED_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"})  # unpickling can run code


class AttnImplementation(StrEnum):
    """The attention kernel of both towers, as transformers names it."""

    AUTO = "auto"  # per tower: sdpa where the tower supports it, else eager (Gemma 2's softcapping)
    EAGER = "eager"
    SDPA = "sdpa"
    FLEX_ATTENTION = "flex_attention"


class ModelError(ValueError):
    """A base, model or adapter palitune will not load or run as asked; the message says why."""


class ModelFolderError(ModelError):
    """A base, model or adapter folder palitune will not load; the message names the file and field."""


def resolve_base(ref: str, models_dir: Path) -> str:
    """The ``from_pretrained`` reference for ``ref`` (a preset name, a hub id or a folder);
    builds the tiny base when asked for it."""
    if ref != TINY_PRESET:
        preset = preset_for(ref)
        return preset.ref if preset is not None else ref
    path = Path(models_dir) / TINY_DIR_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two runs starting at once (two task partitions) would each build it and rename their
    # build over the other's; the first builds, the second finds it current.
    with FileLock(path.with_name(path.name + ".lock")):
        if not tiny_base_is_current(path):
            build_tiny_base(path)
    return str(path)


def load_processor(ref: str) -> PaliGemmaProcessor:
    """The processor of a resolved base reference (or of an adapter folder that holds one)."""
    processor = AutoProcessor.from_pretrained(ref, trust_remote_code=False)
    if not isinstance(processor, PaliGemmaProcessor):
        raise TypeError(f"{ref}: expected a PaliGemmaProcessor, found {type(processor).__name__}")
    return processor


Loaded = tuple[PaliGemmaForConditionalGeneration, PaliGemmaProcessor]


def load_base(
    ref: str,
    *,
    dtype: torch.dtype = torch.float32,
    quantize_4bit: bool = False,
    attn_implementation: AttnImplementation = AttnImplementation.AUTO,
) -> Loaded:
    """Model and processor of a resolved base reference (a folder or a hub id).

    Args:
        dtype: the dtype of the weights (see ``training.precision`` for which one a run uses).
        quantize_4bit: load the weights in 4-bit nf4 with bf16 compute (QLoRA; bitsandbytes
            on a CUDA GPU).
        attn_implementation: the attention kernel; checked against each tower before any
            weight is read.

    Raises:
        ModelError: a tower of this base does not support ``attn_implementation``.
    """
    config = PaliGemmaConfig.from_pretrained(ref, trust_remote_code=False)
    kwargs: dict[str, Any] = {"attn_implementation": attention_implementations(config, attn_implementation, ref)}
    if quantize_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["device_map"] = {"": torch.cuda.current_device()}
        dtype = torch.bfloat16
    model = PaliGemmaForConditionalGeneration.from_pretrained(
        ref, dtype=dtype, use_safetensors=True, trust_remote_code=False, **kwargs
    )
    processor = load_processor(ref)
    check_image_size(ref, model, processor)
    return model, processor


def attention_implementations(config: PaliGemmaConfig, choice: AttnImplementation, ref: str) -> dict[str, str]:
    """The attention kernel of each tower for ``choice``, as ``from_pretrained`` takes it.

    What transformers 5 allows, read from each tower's class: SigLIP and Gemma take eager,
    sdpa and flex_attention; Gemma 2 (PaliGemma 2's text tower) refuses sdpa, which has no
    attention-logit softcapping; PaliGemma itself refuses flash_attention_2, which would
    drop the bidirectional prefix of its prefix-LM mask (so it is not offered). ``auto``
    takes sdpa where a tower allows it (fused, no (seq x seq) weights kept per head for
    backward) and eager elsewhere; flex_attention is not the default because it compiles
    its kernels on first use and cannot train on a CPU.

    Raises:
        ModelError: naming the tower, its model class and the choices it allows.
    """
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    chosen: dict[str, str] = {}
    for key, tower in (("vision_config", "vision"), ("text_config", "text")):
        model_class: Any = MODEL_MAPPING[type(getattr(config, key))]
        allowed = [
            name
            for name, supported in (
                ("eager", True),
                ("sdpa", model_class._supports_sdpa),
                ("flex_attention", model_class._supports_flex_attn),
            )
            if supported
        ]
        if choice is AttnImplementation.AUTO:
            chosen[key] = "sdpa" if "sdpa" in allowed else "eager"
        elif choice.value in allowed:
            chosen[key] = choice.value
        else:
            raise ModelError(
                f"attn_implementation: {choice.value}: the {tower} tower of {ref} ({model_class.__name__}) does not "
                f"support it; use auto or one of {', '.join(allowed)}"
            )
    return chosen


def check_image_size(ref: str, model: PaliGemmaForConditionalGeneration, processor: PaliGemmaProcessor) -> None:
    """Refuse a base whose image size the vision tower cannot tile exactly.

    SigLIP cuts the image into ``patch_size`` squares; a size that is not a multiple silently
    drops the last pixels, and a processor resizing to another size than the tower's feeds it
    images it was not built for.

    Raises:
        ModelFolderError: naming the config file and field, with sizes that would work.
    """
    vision: Any = model.config.vision_config
    size, patch = int(vision.image_size), int(vision.patch_size)
    if size % patch:
        lower = size - size % patch
        raise ModelFolderError(
            f"{ref}/config.json: vision_config.image_size: {size} is not a multiple of vision_config.patch_size "
            f"{patch} (the last {size % patch} pixels would be dropped); use {lower or patch} or {lower + patch}"
        )
    resize = getattr(processor.image_processor, "size", None) or {}
    if isinstance(resize, dict) and {resize.get("height"), resize.get("width")} - {None, size}:
        raise ModelFolderError(
            f"{ref}/preprocessor_config.json: size: resizes to {resize} but the vision tower takes {size}x{size}; "
            "save the processor of the same checkpoint"
        )


def check_model_folder(folder: Path) -> None:
    """Refuse an adapter or model folder that is missing, incomplete or holds pickled weights.

    Training writes the adapter beside its place and moves it in complete, so a folder that
    is not there means the run has not finished (or was killed).

    Raises:
        ModelFolderError: naming the folder or file and what to do.
    """
    if not folder.is_dir():
        raise ModelFolderError(
            f"{folder}: no such adapter or model folder (a run's adapter appears only once training has "
            "written all of it)"
        )
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLED_SUFFIXES)
    if pickled:
        raise ModelFolderError(
            f"{folder / pickled[0]}: pickled weights are refused (unpickling can run code); save with safetensors"
        )
    adapter = (folder / "adapter_config.json").is_file()
    weights = (folder / "adapter_model.safetensors").is_file() if adapter else any(folder.glob("*.safetensors"))
    if not weights or not (adapter or (folder / "config.json").is_file()):
        raise ModelFolderError(
            f"{folder}: incomplete: an adapter needs adapter_config.json and adapter_model.safetensors, "
            "a model config.json and *.safetensors"
        )


@contextmanager
def peft_wrapping() -> Iterator[None]:
    """Around peft wrapping a model: peft reads transformers' deprecated
    ``is_gradient_checkpointing``, a FutureWarning about peft's code that its callers cannot act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        yield


def load_for_inference(base_ref: str, adapter_dir: Path | None = None) -> tuple[Any, PaliGemmaProcessor]:
    """The base alone, the base with a LoRA adapter applied, or a fully fine-tuned folder."""
    if adapter_dir is None:
        return load_base(base_ref)
    adapter_dir = Path(adapter_dir)
    check_model_folder(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        return load_base(str(adapter_dir))
    from peft import PeftModel

    base, _ = load_base(base_ref)
    try:
        with peft_wrapping():
            model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False)
    except (RuntimeError, ValueError) as err:  # size mismatch, target modules not found
        raise _adapter_mismatch(adapter_dir, base_ref, str(err).strip().splitlines()[-1].strip()) from None
    _check_adapter_fits(model, adapter_dir, base_ref)
    return model.eval(), load_processor(str(adapter_dir))


def _check_adapter_fits(model: Any, adapter_dir: Path, base_ref: str) -> None:
    """Every tensor of the adapter file found its module, with its shape.

    peft loads non-strictly: an adapter of a deeper base loads onto a shallower one, the
    extra layers' weights silently dropped.
    """
    from peft import get_peft_model_state_dict
    from safetensors import safe_open

    loaded = {key: tuple(value.shape) for key, value in get_peft_model_state_dict(model).items()}
    with safe_open(str(adapter_dir / "adapter_model.safetensors"), framework="pt") as f:
        saved = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    problems = [f"{key}: not in this base" for key in sorted(saved.keys() - loaded.keys())]
    problems += [f"{key}: missing from the adapter" for key in sorted(loaded.keys() - saved.keys())]
    problems += [
        f"{key}: shape {list(saved[key])} vs {list(loaded[key])}"
        for key in sorted(saved.keys() & loaded.keys())
        if saved[key] != loaded[key]
    ]
    if problems:
        raise _adapter_mismatch(adapter_dir, base_ref, f"{len(problems)} tensor(s) differ, e.g. {problems[0]}")


def _adapter_mismatch(adapter_dir: Path, base_ref: str, detail: str) -> ModelFolderError:
    config = adapter_dir / "adapter_config.json"
    try:
        trained_on = json.loads(config.read_text()).get("base_model_name_or_path")
    except (OSError, ValueError):
        trained_on = None
    return ModelFolderError(
        f"{config}: base_model_name_or_path: the adapter was trained on {trained_on!r} and does not fit "
        f"base {base_ref!r} ({detail}); load it with the base it was trained on"
    )
