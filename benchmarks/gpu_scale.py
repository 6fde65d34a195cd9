"""PaliGemma 2 at its published sizes, random weights, trained by ``training.train`` itself:
samples/s, model-FLOPs MFU against the chip's dense bf16 peak, peak allocated and reserved memory.

    python -m benchmarks.gpu_scale                           # every shape in configs/gpu_scale, on the GPU
    python -m benchmarks.gpu_scale --shapes 3b-448-lora      # one shape
    python -m benchmarks.gpu_scale --shrink                  # the same code at tiny widths, on a CPU (a test)

Each shape is a file ``configs/gpu_scale/<shape>.yaml``: the architecture (a published
``config.json``: 3B is Gemma 2 2B + SigLIP So400m/14, 10B is Gemma 2 9B + the same SigLIP),
the image size, the run config fields of the fine-tune (method, LoRA with its dropout,
precision, gradient checkpointing, batch) and, for the headline shape, its targets.

What runs is the public entry point ``training.train.train``: Accelerate, peft as shipped,
the config's precision, checkpointing, data loader and optimizer, MLflow on SQLite, the adapter
saved at the end. The base is a local folder the run config names as ``base_model``, built
from the architecture without a download (``build_random_base``): the config, the model's
own random init in bf16 safetensors, and a processor (the tiny base's tokenizer, resized for
the image size). Weights are random, so shapes, memory and speed are the real model's; what
it says is not. The data is the synthetic task of the run config, rendered at the image size.

Samples/s and token counts are the loop's own metrics (``train/samples_per_s``,
``train/tokens_per_s``, ...) as its ``on_log`` callback receives them, averaged over the log
windows after the first (warm-up: CUDA context, kernel selection, allocator growth).

Model FLOPs per sample (``model_flops``) are counted from the architecture, never from the
kernels that ran, so recomputation (gradient checkpointing) and wasted work (logits at
unsupervised positions, padding) do not count, as in PaLM's MFU. Every matmul of ``N``
weights costs ``2N`` FLOPs per token forward; backward costs ``2N`` more for the gradient of
its input when a trained parameter lies before it (so the gradient must pass through), and
``2N`` more for the gradient of its weights when they train: ``6N`` per token for a trained
part, ``4N`` for a frozen part the gradient passes through (a LoRA run's language model and
output head), ``2N`` for a frozen part nothing before it trains (a frozen SigLIP). Attention
scores and values add ``4 d`` FLOPs per attended (query, key) pair per layer forward, ``d``
the summed width of the heads, and twice that backward where the gradient passes through;
pairs are those the mask allows: all ``S^2`` in SigLIP, and in Gemma the prefix (image and
prompt, ``P`` tokens) bidirectional with the suffix (``A`` answer tokens) causal:
``P^2 + A P + A (A + 1) / 2``. The output head counts at the ``A`` supervised positions only
(the loss needs no other logits). LoRA adds ``r (in + out)`` trained weights per adapted
matmul. MFU = model FLOPs per sample x samples/s / the chip's dense bf16 peak
(``PUBLISHED_BF16_PEAK``, by device name; where the name is unknown, and on a CPU, a large
bf16 matmul measured here stands in).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks.common import Section, matmul_peak
from training.model_shapes import ModelDims, dims_from_config

SHAPES_DIR = Path(__file__).resolve().parents[1] / "configs" / "gpu_scale"
DEFAULT_SHAPES = ("3b-448-lora", "3b-224-lora", "10b-224-lora", "3b-448-full")
GB = 1e9  # targets and columns in decimal gigabytes, as GPU memory is sold
# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, matched in this
# order against torch.cuda.get_device_name (e.g. "NVIDIA H100 80GB HBM3" is the SXM part).
PUBLISHED_BF16_PEAK: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM (reported as "H100 80GB HBM3")
    ("H200", 989e12),
    ("GH200", 989e12),
    ("H800", 989e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
)
# Shrunk widths and depths: every part of the layout kept (GQA, head dim, softcaps, image tokens).
SHRUNK_VISION = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
SHRUNK_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "query_pre_attn_scalar": 16,
    "vocab_size": 0,  # raised to the tokenizer's size by build_random_base
}
SHRUNK_RUN = {"batch_size": 2, "steps": 4, "log_every": 2, "num_threads": 1}
SHRUNK_TRAIN_EXAMPLES = 8


class ShapeError(ValueError):
    """A shape file that cannot be benchmarked; the message names the file and field."""


@dataclass(frozen=True)
class Shape:
    """One benchmarked fine-tune: ``configs/gpu_scale/<name>.yaml``."""

    name: str
    architecture: dict[str, Any]  # a PaliGemma config.json, at ``image_size``
    image_size: int
    run: dict[str, Any]  # run config fields; base_model, dataset and output_dir are filled in
    max_peak_reserved_gb: float | None = None
    min_mfu: float | None = None
    shrunk: bool = False  # tiny widths (--shrink): the code path, not the numbers; targets not judged


def load_shape(name: str, shrink: bool = False, shapes_dir: Path = SHAPES_DIR) -> Shape:
    """The shape ``name``; ``shrink`` keeps the layout at tiny widths and an eighth of the image side.

    Raises:
        ShapeError: the file or its architecture is missing, or a field is of the wrong kind.
    """
    path = shapes_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in shapes_dir.glob("*.yaml")))
        raise ShapeError(f"{path}: no such shape; known: {known}")
    data = yaml.safe_load(path.read_text()) or {}
    for key, kind in (("architecture", str), ("image_size", int), ("run", dict)):
        if not isinstance(data.get(key), kind):
            raise ShapeError(f"{path}: {key}: expected a {kind.__name__}, found {data.get(key)!r}")
    arch_path = shapes_dir / data["architecture"]
    if not arch_path.is_file():
        raise ShapeError(f"{path}: architecture: {arch_path} does not exist")
    arch = json.loads(arch_path.read_text())
    size, run = int(data["image_size"]), dict(data["run"])
    if shrink:
        patch = int(arch["vision_config"]["patch_size"])
        size = max(patch, (size // 8) // patch * patch)
        arch["vision_config"].update(SHRUNK_VISION)
        arch["text_config"].update(SHRUNK_TEXT)
        arch["projection_dim"] = arch["vision_config"]["projection_dim"] = SHRUNK_TEXT["hidden_size"]
        run.update(SHRUNK_RUN)
    tokens = (size // int(arch["vision_config"]["patch_size"])) ** 2
    arch["vision_config"].update(image_size=size, num_image_tokens=tokens)
    arch["text_config"]["num_image_tokens"] = tokens
    targets = data.get("targets") or {}
    return Shape(name, arch, size, run, targets.get("max_peak_reserved_gb"), targets.get("min_mfu"), shrink)


# ---------------------------------------------------------------------------------------------
# Model FLOPs


@dataclass(frozen=True)
class Trains:
    """Which parts learn: from the run config's method and freeze fields."""

    vision: bool
    projector: bool
    text: bool  # every weight of the language model (full fine-tune)
    lora_params: int = 0  # LoRA weights in the language model (A and B), trained
    lora_params_vision: int = 0  # LoRA weights that target SigLIP (not by default)

    @classmethod
    def of(cls, run: dict[str, Any], arch: dict[str, Any]) -> Trains:
        from training.config import Method, RunConfig

        config = RunConfig.model_validate({"base_model": "x", **run})
        full = config.method is Method.FULL
        text_lora, vision_lora = (0, 0) if full else lora_params(arch, config.lora.target_modules, config.lora.rank)
        return cls(not config.freeze_vision, not config.freeze_projector, full, text_lora, vision_lora)


def lora_params(arch: dict[str, Any], target_modules: str, rank: int) -> tuple[int, int]:
    """LoRA weights ``r (in + out)`` of each linear layer whose name ``target_modules`` matches
    as a whole (peft's rule for a regex), as (language model, vision tower): read off the
    model built on the meta device, so nothing is allocated."""
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

    with torch.device("meta"):
        model = PaliGemmaForConditionalGeneration(PaliGemmaConfig.from_dict(arch))
    text = vision = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and re.fullmatch(target_modules, name):
            count = rank * (module.in_features + module.out_features)
            if "vision_tower" in name:
                vision += count
            else:
                text += count
    return text, vision


@dataclass(frozen=True)
class Tokens:
    """One example's sequence: image tokens, then prompt, then the supervised answer."""

    image: float
    prefix: float  # image tokens + prompt (bidirectional)
    answer: float  # supervised tokens (causal; the loss is taken there)


@dataclass(frozen=True)
class Flops:
    """Model FLOPs of one training example, by part (forward and backward)."""

    vision: float
    projector: float
    text: float
    attention: float
    head: float
    lora: float

    @property
    def total(self) -> float:
        return self.vision + self.projector + self.text + self.attention + self.head + self.lora


def _matmul(weights: float, tokens: float, trained: bool, grad_flows_in: bool) -> float:
    """2N per token forward, 2N for the input's gradient if it flows in, 2N for the weights' if trained."""
    return 2 * weights * tokens * (1 + grad_flows_in + trained)


def model_flops(dims: ModelDims, trains: Trains, tokens: Tokens) -> Flops:
    """Forward and backward model FLOPs of one example (the rules in the module docstring).

    The gradient flows into a part when something before it trains: SigLIP's layers when the
    patch embedding (the vision tower) trains; the projector when the vision tower does; the
    language model and its head when anything trains before them, or in them (LoRA): counted
    for every layer, though strictly the first layer's input needs none when only its own
    LoRA weights train (under 1/layers of the language model's backward).
    """
    vision_grad = trains.vision or trains.lora_params_vision > 0
    vision = _matmul(dims.patch_embed, tokens.image, trains.vision, False) + _matmul(
        dims.vision_layers * dims.vision_layer_linear, tokens.image, trains.vision, vision_grad
    )
    projector = _matmul(dims.projector_linear, tokens.image, trains.projector, vision_grad)
    text_grad = vision_grad or trains.projector or trains.text or trains.lora_params > 0
    text_tokens = tokens.prefix + tokens.answer
    text = _matmul(dims.text_layers * dims.text_layer_linear, text_tokens, trains.text, text_grad)
    # Gemma ties the head to the input embeddings: a full fine-tune trains it.
    head = _matmul(dims.head_linear, tokens.answer, trains.text, text_grad)
    lora = 6 * trains.lora_params * text_tokens + 6 * trains.lora_params_vision * tokens.image
    image_pairs = tokens.image**2
    text_pairs = tokens.prefix**2 + tokens.answer * tokens.prefix + tokens.answer * (tokens.answer + 1) / 2
    attention = 4 * dims.vision_layers * image_pairs * dims.vision_hidden * (1 + 2 * vision_grad)
    attention += 4 * dims.text_layers * text_pairs * dims.heads * dims.head_dim * (1 + 2 * text_grad)
    return Flops(vision, projector, text, attention, head, lora)


def published_peak(device_name: str) -> float | None:
    """The dense bf16 peak FLOP/s of a GPU named ``device_name``, ``None`` when not in the table."""
    return next((peak for key, peak in PUBLISHED_BF16_PEAK if key in device_name), None)


# ---------------------------------------------------------------------------------------------
# The run


def build_random_base(folder: Path, arch: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """A base folder for ``arch`` as a hub checkpoint lays it out: config, bf16 safetensors, processor.

    The weights are the model's own random init, made on the GPU where there is one (seconds
    for 10 B, where a CPU takes minutes) and written in bf16, as the published checkpoints
    are. The processor is the tiny base's (a small BPE; the embedding keeps the published
    vocabulary) with its images resized to the architecture's size; its special and
    ``<image>`` ids are written into the config.

    Returns:
        The architecture as written (ids set, the vocabulary at least the tokenizer's).
    """
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

    from models.tiny_base import TinyBaseSpec, build_processor

    vision = arch["vision_config"]
    processor = build_processor(TinyBaseSpec(image_size=vision["image_size"], patch_size=vision["patch_size"]))
    tokenizer = processor.tokenizer
    arch = json.loads(json.dumps(arch))
    arch["image_token_index"] = processor.image_token_id
    text = arch["text_config"]
    text["vocab_size"] = max(int(text["vocab_size"]), len(tokenizer))
    ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id}
    ids["eos_token_id"] = tokenizer.eos_token_id
    arch.update(ids)
    text.update(ids)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), device:
            torch.manual_seed(seed)
            model = PaliGemmaForConditionalGeneration(PaliGemmaConfig.from_dict(arch))
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return arch


@dataclass
class ShapeResult:
    shape: Shape
    device: str
    samples_per_s: float = math.nan
    flops: Flops | None = None
    peak_flops: float = math.nan
    peak_source: str = ""
    loop_peak_memory_mb: float = math.nan  # train/peak_memory_mb: CUDA max allocated, or the process's max RSS
    peak_allocated_gb: float = math.nan
    peak_reserved_gb: float = math.nan
    seconds: float = math.nan  # the whole train() call: load, data, loop, save
    final_loss: float = math.nan
    error: str = ""
    logs: list[dict[str, float]] = field(default_factory=list)

    @property
    def mfu(self) -> float:
        if self.flops is None:
            return math.nan
        return self.flops.total * self.samples_per_s / self.peak_flops

    def verdicts(self) -> list[tuple[str, str]]:
        """(claim, PASS/FAIL/not judged) per target; judged on a CUDA GPU only, never on shrunk shapes."""
        if self.shape.max_peak_reserved_gb is None and self.shape.min_mfu is None:
            return []
        name = self.shape.name
        if self.device != "cuda" or self.shape.shrunk or self.error:
            why = self.error or "no CUDA GPU or shrunk shapes: the targets are for an H100/H200-class GPU"
            return [(f"{name} targets", f"not judged ({why})")]
        verdicts = []
        if self.shape.max_peak_reserved_gb is not None:
            ok = self.peak_reserved_gb <= self.shape.max_peak_reserved_gb
            claim = f"{name} peak reserved {self.peak_reserved_gb:.1f} GB <= {self.shape.max_peak_reserved_gb:g} GB"
            verdicts.append((claim, "PASS" if ok else "FAIL"))
        if self.shape.min_mfu is not None:
            ok = self.mfu >= self.shape.min_mfu
            verdicts.append((f"{name} MFU {100 * self.mfu:.1f} % >= {100 * self.shape.min_mfu:g} %",
                             "PASS" if ok else "FAIL"))  # fmt: skip
        return verdicts


def steady(logs: list[dict[str, float]], key: str) -> float:
    """The mean of ``key`` over the log windows after the first (warm-up), or the only one."""
    values = [log[key] for log in logs if key in log]
    if not values:
        raise KeyError(f"the training loop logged no {key!r}; metrics seen: {sorted(logs[0]) if logs else []}")
    kept = values[1:] or values
    return sum(kept) / len(kept)


def run_shape(shape: Shape, workdir: Path, peak: tuple[float, str], keep: bool = True) -> ShapeResult:
    """Train ``shape`` through ``training.train.train`` in ``workdir`` and measure it.

    ``keep=False`` deletes the base and the run folder afterwards: 6 GB (3B) to 20 GB (10B)
    of bf16 weights, and a full fine-tune's saved model, on a GPU machine's small disk.
    """
    from data.synthetic import SplitSizes, write_synthetic
    from data.workspace import Workspace
    from training.config import RunConfig
    from training.train import train

    cuda = torch.cuda.is_available()
    result = ShapeResult(shape, "cuda" if cuda else "cpu", peak_flops=peak[0], peak_source=peak[1])
    base = workdir / "models" / shape.name
    arch = build_random_base(base, shape.architecture)
    run = dict(shape.run)
    train_examples = max(SHRUNK_TRAIN_EXAMPLES, 2 * int(run.get("batch_size", 8)))
    write_synthetic(run.get("task", "vqa"), workdir / "dvc-data" / shape.name,
                    sizes=SplitSizes(train=train_examples, val=2, test=2), image_size=shape.image_size)  # fmt: skip
    run.update(base_model=str(base), dataset=f"dvc-data/{shape.name}", output_dir=f"runs/{shape.name}")
    config = RunConfig.model_validate(run)

    def on_log(step: int, metrics: dict[str, float]) -> None:
        if "train/samples_per_s" in metrics:
            result.logs.append(dict(metrics))

    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        trained = train(config, Workspace(workdir), tracking_uri=f"sqlite:///{workdir}/mlflow.db", on_log=on_log)
    except torch.OutOfMemoryError as err:
        result.error = f"out of memory: {str(err).splitlines()[0]}"
    finally:
        if cuda:
            result.peak_allocated_gb = torch.cuda.max_memory_allocated() / GB
            result.peak_reserved_gb = torch.cuda.max_memory_reserved() / GB
    result.seconds = time.perf_counter() - start
    if not keep:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(workdir / "runs" / shape.name, ignore_errors=True)
    if result.error:
        return result
    result.final_loss = trained.final_loss
    result.samples_per_s = steady(result.logs, "train/samples_per_s")
    result.loop_peak_memory_mb = max(log["train/peak_memory_mb"] for log in result.logs)
    per_sample = {k: steady(result.logs, f"train/{k}_per_s") / result.samples_per_s
                  for k in ("image_tokens", "tokens", "supervised_tokens")}  # fmt: skip
    answer = per_sample["supervised_tokens"]
    tokens = Tokens(per_sample["image_tokens"], per_sample["tokens"] - answer, answer)
    result.flops = model_flops(dims_from_config(arch), Trains.of(shape.run, arch), tokens)
    return result


def chip_peak() -> tuple[float, str]:
    """The dense bf16 peak MFU is taken against, and where it comes from."""
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        published = published_peak(name)
        if published is not None:
            return published, f"{name}, published dense bf16 peak {published / 1e12:.0f} TFLOP/s"
        measured = matmul_peak(torch.bfloat16, "cuda")
        return measured, f"{name} (not in the table), bf16 matmul measured here {measured / 1e12:.0f} TFLOP/s"
    measured = matmul_peak(torch.bfloat16, "cpu", size=512, repeats=3)
    return measured, f"CPU, bf16 matmul (512) measured here {measured / 1e12:.3f} TFLOP/s"


def _gb(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}"


def section(results: Iterable[ShapeResult], peak_source: str, shrink: bool) -> Section:
    """The results as a table, the targets' verdicts and how the numbers were made."""
    rows = [["shape", "method", "batch", "samples/s", "model TFLOP/sample", "TFLOP/s", "MFU",
             "peak allocated GB", "peak reserved GB", "loop peak MB", "final loss"]]  # fmt: skip
    ratios: dict[str, str] = {}
    results = list(results)
    for r in results:
        run = r.shape.run
        if r.error:
            rows.append([r.shape.name, str(run.get("method")), str(run.get("batch_size")), r.error, *["-"] * 7])
            continue
        assert r.flops is not None
        rows.append([r.shape.name, str(run.get("method")), str(run.get("batch_size")), f"{r.samples_per_s:.3g}",
                     f"{r.flops.total / 1e12:.4g}", f"{r.flops.total * r.samples_per_s / 1e12:.4g}",
                     f"{100 * r.mfu:.1f} %", _gb(r.peak_allocated_gb), _gb(r.peak_reserved_gb),
                     f"{r.loop_peak_memory_mb:.0f}", f"{r.final_loss:.3f}"])  # fmt: skip
    for r in results:
        ratios.update(r.verdicts())
    notes = [
        f"Peak: {peak_source}. "
        + (
            "Shrunk shapes (--shrink): the code path of the real ones, not their numbers. " if shrink else ""
        )  # fmt: skip
        + "Samples/s: the loop's train/samples_per_s, mean of the log windows after the first. MFU: model FLOPs "
        "(6N trained, 4N frozen with the gradient passing through, 2N frozen forward-only, per token; attention "
        "by the mask's pairs; the head at supervised positions; no recomputation) x samples/s / peak. Memory: "
        "CUDA allocator peaks over the whole train() call (load, loop, save). For reference, Roboflow's PaliGemma 2 "
        "3B-448 notebooks on an A100-40GB trained LoRA at 2.39 samples/s and the language model alone at 3.35.",
        "Whole train() call per shape (base load, data, loop, adapter save), seconds: "
        + ", ".join(f"{r.shape.name} {r.seconds:.0f}" for r in results),
    ]
    return Section(
        title="GPU scale: PaliGemma 2 at published shapes through training.train, random weights",
        command="python -m benchmarks.gpu_scale" + (" --shrink" if shrink else ""),
        table=rows,
        ratios=ratios,
        notes=notes,
    )


def measure(
    shapes: Iterable[str] = DEFAULT_SHAPES, shrink: bool = False, workdir: Path | None = None, keep: bool = False
) -> Section:
    """Train each shape in turn and tabulate it (``benchmarks.run_all`` calls this on a GPU).

    ``keep``: leave each shape's base and run folders in ``workdir`` (default: deleted after its run).
    """
    peak = chip_peak()
    with tempfile.TemporaryDirectory(prefix="gpu-scale-") as tmp:
        root = Path(workdir or tmp)
        results = []
        for name in shapes:
            print(f"== gpu_scale {name}{' (shrunk)' if shrink else ''}", file=sys.stderr, flush=True)
            results.append(run_shape(load_shape(name, shrink), root / name, peak, keep))
    return section(results, peak[1], shrink)


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit 1 when a shape ran out of memory or a target failed on a GPU."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(DEFAULT_SHAPES), help="shape files in configs/gpu_scale")
    parser.add_argument("--shrink", action="store_true", help="tiny widths and images: the same code on a CPU")
    parser.add_argument("--workdir", type=Path, help="bases, data and runs go here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep each shape's base and run folders in --workdir")
    args = parser.parse_args(argv)
    if not args.shrink and not torch.cuda.is_available():
        parser.error("the published shapes need a CUDA GPU; use --shrink on a CPU")
    result = measure(args.shapes, args.shrink, args.workdir, args.keep)
    result.print()
    failed = [row[0] for row in result.table[1:] if row[3].startswith("out of memory")]
    failed += [claim for claim, verdict in result.ratios.items() if verdict == "FAIL"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
