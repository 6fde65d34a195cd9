"""Image features of a frozen vision tower, computed once per dataset version and reused.

When the SigLIP tower does not train, its output for an image is the same every epoch and
every run on the same data: running it again is pure waste (at 448 px it is a 400 M
parameter encoder over 1,024 patches per image). This module computes the tower's output
(``last_hidden_state``, before the projector, which may still train) for every training
image once, stores it under ``<workspace>/cache/image-features/<key>/`` as a memory-mapped
``.npy`` array, and serves it to the model in place of the pixels.

The key covers everything the features depend on: the dataset (its DVC hash, or for an
unversioned folder the bytes of ``train.jsonl`` and each image's size and mtime), the base
model (reference, hub commit, and each weight file's size and mtime for a local folder),
the vision config (image size, patch, widths), the image preprocessing, the precision (and the
dtype the features are stored in: the training precision's compute dtype, so a bf16 run
stores half the bytes of an fp32 one and loses nothing, as its projector casts its input to
bf16 anyway), a 4-bit base, and the device type. Change any of them and a new entry is
computed.

How features reach the model: the collator puts them in the batch under ``pixel_values``
(a ``[batch, tokens, hidden]`` tensor instead of ``[batch, 3, H, W]``), and
``serve_cached_features`` makes the vision tower pass such a tensor straight through. Every
wrapper in between (peft, DDP, PaliGemma's own forward with its projector, scaling and
merging into the text) runs unchanged, and real images still go through the tower, so
validation during training generates from pixels as usual.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from transformers import PaliGemmaForConditionalGeneration, PaliGemmaProcessor
from transformers.modeling_outputs import BaseModelOutputWithPooling

from data.atomic import staged_dir
from data.schema import Example
from models.images import open_image
from training.config import Precision
from training.precision import compute_dtype

FEATURES_FILE, INDEX_FILE, KEY_FILE = "features.npy", "index.json", "key.json"


def cache_blocker(model: PaliGemmaForConditionalGeneration) -> str | None:
    """Why the vision tower's features cannot be cached for ``model``, or ``None`` if they can.

    The features are only constant when no parameter of the tower trains and the tower has
    no dropout (SigLIP checkpoints ship with ``attention_dropout`` 0).
    """
    tower = model.model.vision_tower
    if any(p.requires_grad for p in tower.parameters()):
        return "the vision tower trains (freeze_vision: false, or LoRA targets it)"
    if float(getattr(model.config.vision_config, "attention_dropout", 0.0) or 0.0) > 0:
        return "the vision tower has attention dropout, so its training-mode output varies"
    return None


def _file_stats(folder: Path, pattern: str) -> list[tuple[str, int, int]]:
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.glob(pattern))]


def dataset_identity(dataset_dir: Path, examples: Sequence[Example], data_hash: str | None) -> str:
    """The DVC hash of a versioned dataset; else a digest of its train split and image files."""
    if data_hash:
        return data_hash
    digest = hashlib.sha256((Path(dataset_dir) / "train.jsonl").read_bytes())
    for image in sorted({e.image for e in examples}):
        stat = (Path(dataset_dir) / image).stat()
        digest.update(f"{image}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return "unversioned-" + digest.hexdigest()


def cache_key(
    *,
    dataset: str,
    base_ref: str,
    model: PaliGemmaForConditionalGeneration,
    processor: PaliGemmaProcessor,
    precision: str,
    device: torch.device,
) -> dict[str, Any]:
    """Everything the cached features depend on, as a JSON-able mapping."""
    folder = Path(base_ref)
    return {
        "dataset": dataset,
        "base_model": base_ref,
        "base_commit": getattr(model.config, "_commit_hash", None),
        "base_weights": _file_stats(folder, "*.safetensors") if folder.is_dir() else None,
        "vision_config": model.config.vision_config.to_dict(),  # type: ignore[union-attr]
        "image_processor": processor.image_processor.to_dict(),
        "precision": precision,
        "feature_dtype": str(feature_dtype(precision)).removeprefix("torch."),
        "quantized": bool(getattr(model, "is_loaded_in_4bit", False)),
        "device": device.type,
    }


def feature_dtype(precision: str) -> torch.dtype:
    """The dtype features are stored and served in: the precision's compute dtype."""
    return compute_dtype(Precision(precision))


class ImageFeatures:
    """Cached vision-tower outputs, one row per image path, memory-mapped from disk."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._open()

    def __getstate__(self) -> dict[str, Any]:
        # A DataLoader worker started by spawn receives the collator pickled: send the folder,
        # not the mapped array, and let the worker map it itself.
        return {"folder": self.folder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.folder = state["folder"]
        self._open()

    def _open(self) -> None:
        self.rows: dict[str, int] = json.loads((self.folder / INDEX_FILE).read_text())
        self.key: dict[str, Any] = json.loads((self.folder / KEY_FILE).read_text())
        self.array = np.load(self.folder / FEATURES_FILE, mmap_mode="r")
        self.dtype = getattr(torch, self.key["dtype"])

    def lookup(self, images: Sequence[str]) -> torch.Tensor:
        """Features of ``images`` (paths relative to the dataset), ``[len(images), tokens, hidden]``."""
        rows = self.array[[self.rows[image] for image in images]]
        tensor = torch.from_numpy(np.ascontiguousarray(rows))
        return tensor.view(self.dtype) if self.dtype == torch.bfloat16 else tensor


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]


@torch.no_grad()
def _compute(
    model: PaliGemmaForConditionalGeneration,
    processor: PaliGemmaProcessor,
    dataset_dir: Path,
    images: list[str],
    batch_size: int,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
    dtype: torch.dtype,
) -> torch.Tensor:
    tower = model.model.vision_tower
    device = next(tower.parameters()).device
    was_training = tower.training
    tower.eval()  # no dropout (checked), so eval and train mode give the same output
    chunks = []
    for start in range(0, len(images), batch_size):
        pictures = [open_image(dataset_dir, image) for image in images[start : start + batch_size]]
        pixels = processor.image_processor(pictures, return_tensors="pt")["pixel_values"].to(device)
        with autocast():
            chunks.append(tower(pixels).last_hidden_state.to(dtype).cpu())
    tower.train(was_training)
    return torch.cat(chunks)


def load_or_compute_features(
    cache_root: Path,
    key: dict[str, Any],
    model: PaliGemmaForConditionalGeneration,
    processor: PaliGemmaProcessor,
    dataset_dir: Path,
    examples: Sequence[Example],
    *,
    batch_size: int,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> ImageFeatures:
    """The cached features for ``key``, computing and storing them first if there are none.

    Args:
        cache_root: folder of all cache entries; each entry is a sub-folder named by the key's digest.
        autocast: makes the context the training forward runs under, so features are
            computed in the run's precision.
    """
    folder = Path(cache_root) / key_digest(key)
    images = sorted({e.image for e in examples})
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Two runs on the same data and base (two Dagster runs, two CLI trainings) want the same
    # entry at once: both would compute it and publish it by renaming folders over each
    # other, one failing or moving the entry away while the other opens it. One lock per
    # entry: the first computes, the others wait and read what it wrote.
    with FileLock(folder.with_name(folder.name + ".lock")):
        if (folder / KEY_FILE).is_file():
            cached = ImageFeatures(folder)
            if not set(images) - cached.rows.keys() and cached.dtype == feature_dtype(key["precision"]):
                return cached
        dtype = feature_dtype(key["precision"])
        features = _compute(model, processor, dataset_dir, images, batch_size, autocast, dtype)
        return _store(folder, key, features, images)


def _store(folder: Path, key: dict[str, Any], features: torch.Tensor, images: list[str]) -> ImageFeatures:
    """Write the entry beside ``folder`` and move it in complete; returns it, memory-mapped."""
    with staged_dir(folder) as tmp:  # readers see a complete entry or none
        stored = features.view(torch.int16) if features.dtype == torch.bfloat16 else features
        np.save(tmp / FEATURES_FILE, stored.numpy())
        (tmp / INDEX_FILE).write_text(json.dumps({image: row for row, image in enumerate(images)}))
        dtype = str(features.dtype).removeprefix("torch.")
        (tmp / KEY_FILE).write_text(json.dumps({**key, "dtype": dtype}, indent=2, sort_keys=True, default=str) + "\n")
    print(f"image features: {len(images)} images cached in {folder}", file=sys.stderr, flush=True)
    return ImageFeatures(folder)


@contextlib.contextmanager
def serve_cached_features(model: PaliGemmaForConditionalGeneration) -> Iterator[None]:
    """While open, the vision tower returns a ``[batch, tokens, hidden]`` input as its output.

    Pixels (``[batch, 3, H, W]``) still go through the tower. The override lives on this one
    module instance and is removed on exit; no parameter or module name changes, so
    checkpoints and the saved adapter are those of the plain model.
    """
    tower = model.model.vision_tower
    tower_forward = tower.forward

    def forward(pixel_values: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if pixel_values.dim() == 3:  # cached features
            return BaseModelOutputWithPooling(last_hidden_state=pixel_values)
        return tower_forward(pixel_values, *args, **kwargs)

    tower.forward = forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        del tower.forward  # back to the class's forward
