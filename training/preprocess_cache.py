"""Train examples decoded and tokenized once per dataset version, read back every step.

Decoding a PNG, resizing and normalising it, and tokenizing the prompt and answer give the
same tensors every epoch and every run on the same data: doing it per batch (what the HF
recipe's collator does) spends the host's time on work already done. This module does it
once and stores the results under ``<workspace>/cache/preprocessed/<key>/``:

- ``tokens.npy``: the token ids of every distinct ``(prefix, suffix)`` pair, unpadded, end to
  end (``offsets.npy`` says where each starts; ``prefix_lengths.npy`` how many of its ids
  are the first segment: image tokens, ``<bos>``, the prefix and ``\\n``);
- ``pixels.npy``: every train image's ``pixel_values`` in the training precision (left out
  when the feature cache serves the images), memory-mapped, as the feature cache is.

The key is the feature cache's (dataset, base, vision config, image processor, precision,
quantization, device) plus the tokenizer, the image token count, the task and whether
pixels are stored. A batch is then a few array reads and a padding: ``collate_cached``
builds exactly the tensors ``processor(text=, images=, suffix=)`` would (a test holds them
equal), so the losses are those of the uncached path.

Why pixels in the training precision lose nothing: under bf16/fp16 autocast the patch
embedding casts its input to the compute dtype, and a bf16 tower casts it to its own dtype,
so the model never sees the fp32 values.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from transformers import PaliGemmaProcessor

from data.atomic import staged_dir
from data.schema import Example
from models.generation import IMAGE_TOKEN
from models.images import open_image
from training.feature_cache import key_digest

TOKENS_FILE, OFFSETS_FILE, PREFIX_FILE, PIXELS_FILE = "tokens.npy", "offsets.npy", "prefix_lengths.npy", "pixels.npy"
INDEX_FILE, KEY_FILE = "index.json", "key.json"
_IMAGE_CHUNK = 64  # images preprocessed per call: bounds host memory while filling the memory map


def preprocess_key(
    feature_key: dict[str, Any], processor: PaliGemmaProcessor, *, task: str, dtype: torch.dtype, pixels: bool
) -> dict[str, Any]:
    """The feature cache's key plus what tokenization depends on; JSON-able."""
    tokenizer = processor.tokenizer
    folder = Path(str(tokenizer.name_or_path))
    files = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.glob("tokenizer*"))]
    return {
        **feature_key,
        "kind": "preprocessed",
        "task": task,
        "pixel_dtype": str(dtype).removeprefix("torch.") if pixels else None,
        "tokenizer": {
            "class": type(tokenizer).__name__,
            "name": str(tokenizer.name_or_path),
            "files": files if folder.is_dir() else None,
            "vocab": len(tokenizer),
            "special_tokens": tokenizer.special_tokens_map,
            "padding_side": tokenizer.padding_side,
        },
        "image_seq_length": processor.image_seq_length,
    }


class PreprocessedSplit:
    """The stored token ids (and pixels) of one train split, memory-mapped from disk."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._open()

    def _open(self) -> None:
        index = json.loads((self.folder / INDEX_FILE).read_text())
        self.key: dict[str, Any] = json.loads((self.folder / KEY_FILE).read_text())
        self.text_rows = {(prefix, suffix): row for row, (prefix, suffix) in enumerate(index["texts"])}
        self.image_rows: dict[str, int] = {image: row for row, image in enumerate(index["images"])}
        self.tokens = np.load(self.folder / TOKENS_FILE, mmap_mode="r")
        self.offsets = np.load(self.folder / OFFSETS_FILE)
        self.prefix_lengths = np.load(self.folder / PREFIX_FILE)
        self.pad_id, self.left = int(index["pad_id"]), index["padding_side"] == "left"
        pixels = self.folder / PIXELS_FILE
        self.pixels = np.load(pixels, mmap_mode="r") if pixels.is_file() else None
        dtype = self.key.get("pixel_dtype")
        self.pixel_dtype = getattr(torch, dtype) if dtype else None

    def __getstate__(self) -> dict[str, Any]:
        # A DataLoader worker started by spawn receives the collator pickled: send the folder,
        # not the arrays, and let the worker map them itself.
        return {"folder": self.folder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.folder = state["folder"]
        self._open()

    def covers(self, examples: Sequence[Example], *, pixels: bool) -> bool:
        """Whether every example's text (and image, with ``pixels``) is stored."""
        texts = all((e.prefix, e.suffix) in self.text_rows for e in examples)
        images = not pixels or (self.pixels is not None and all(e.image in self.image_rows for e in examples))
        return texts and images

    def text_batch(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        """What ``training.collate.text_batch`` returns for ``examples``, read instead of tokenized."""
        rows = [self.text_rows[(e.prefix, e.suffix)] for e in examples]
        starts, ends = self.offsets[rows], self.offsets[[r + 1 for r in rows]]
        width = int((ends - starts).max())
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row, start, end) in enumerate(zip(rows, starts, ends, strict=True)):
            length, first = int(end - start), int(self.prefix_lengths[row])
            lo = width - length if self.left else 0
            input_ids[i, lo : lo + length] = torch.from_numpy(self.tokens[start:end].astype(np.int64))
            attention[i, lo : lo + length] = 1
            types[i, lo + first : lo + length] = 1
        labels = input_ids.masked_fill(types == 0, -100)
        return {"input_ids": input_ids, "attention_mask": attention, "token_type_ids": types, "labels": labels}

    def pixel_values(self, images: Sequence[str]) -> torch.Tensor:
        """The stored ``pixel_values`` of ``images``, ``[len(images), 3, H, W]``."""
        if self.pixels is None or self.pixel_dtype is None:
            raise ValueError(f"{self.folder}: this entry stores no pixels (the feature cache serves the images)")
        tensor = torch.from_numpy(np.ascontiguousarray(self.pixels[[self.image_rows[i] for i in images]]))
        return tensor.view(self.pixel_dtype) if self.pixel_dtype == torch.bfloat16 else tensor


def load_or_preprocess(
    cache_root: Path,
    key: dict[str, Any],
    processor: PaliGemmaProcessor,
    dataset_dir: Path,
    examples: Sequence[Example],
    *,
    dtype: torch.dtype,
    pixels: bool,
) -> PreprocessedSplit:
    """The stored entry for ``key``, preprocessing ``examples`` and storing them first if needed.

    Args:
        dtype: the pixels' dtype (the training precision's compute dtype).
        pixels: store pixel values too (``False`` when cached features replace the images).
    """
    folder = Path(cache_root) / key_digest(key)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # As the feature cache: one lock per entry, the first run computes, the others read it.
    with FileLock(folder.with_name(folder.name + ".lock")):
        if (folder / KEY_FILE).is_file():
            cached = PreprocessedSplit(folder)
            if cached.covers(examples, pixels=pixels):
                return cached
        return _store(folder, key, processor, dataset_dir, examples, dtype if pixels else None)


def _tokenize(processor: PaliGemmaProcessor, texts: list[tuple[str, str]]) -> tuple[list[list[int]], list[int]]:
    """Each text's ids unpadded, and how many of them are the first (unsupervised) segment."""
    tokenizer = processor.tokenizer
    image_tokens = IMAGE_TOKEN * processor.image_seq_length
    encoded = tokenizer(
        [f"{image_tokens}{tokenizer.bos_token}{prefix}\n" for prefix, _ in texts],
        text_pair=[suffix + tokenizer.eos_token for _, suffix in texts],
        return_token_type_ids=True,
    )
    ids = [list(row) for row in encoded["input_ids"]]
    firsts = [len(types) - sum(types) for types in encoded["token_type_ids"]]
    return ids, firsts


def _store(
    folder: Path,
    key: dict[str, Any],
    processor: PaliGemmaProcessor,
    dataset_dir: Path,
    examples: Sequence[Example],
    dtype: torch.dtype | None,
) -> PreprocessedSplit:
    """Write the entry beside ``folder`` and move it in complete; returns it, memory-mapped."""
    texts = sorted({(e.prefix, e.suffix) for e in examples})
    images = sorted({e.image for e in examples}) if dtype is not None else []
    ids, firsts = _tokenize(processor, texts)
    tokenizer = processor.tokenizer
    with staged_dir(folder) as tmp:  # readers see a complete entry or none
        np.save(tmp / TOKENS_FILE, np.asarray([i for row in ids for i in row], dtype=np.int32))
        np.save(tmp / OFFSETS_FILE, np.cumsum([0, *(len(row) for row in ids)], dtype=np.int64))
        np.save(tmp / PREFIX_FILE, np.asarray(firsts, dtype=np.int32))
        if dtype is not None:
            _store_pixels(tmp / PIXELS_FILE, processor, dataset_dir, images, dtype)
        index = {"texts": texts, "images": images, "pad_id": tokenizer.pad_token_id}
        (tmp / INDEX_FILE).write_text(json.dumps({**index, "padding_side": tokenizer.padding_side}))
        (tmp / KEY_FILE).write_text(json.dumps(key, indent=2, sort_keys=True, default=str) + "\n")
    print(f"preprocessed: {len(texts)} texts, {len(images)} images cached in {folder}", file=sys.stderr, flush=True)
    return PreprocessedSplit(folder)


def _store_pixels(
    path: Path, processor: PaliGemmaProcessor, dataset_dir: Path, images: list[str], dtype: torch.dtype
) -> None:
    """Preprocess ``images`` chunk by chunk into a memory-mapped ``.npy`` (bf16 stored as int16)."""
    stored: np.memmap[Any, Any] | None = None
    for start in range(0, len(images), _IMAGE_CHUNK):
        pictures = [open_image(dataset_dir, image) for image in images[start : start + _IMAGE_CHUNK]]
        chunk = processor.image_processor(pictures, return_tensors="pt")["pixel_values"].to(dtype)
        array = (chunk.view(torch.int16) if dtype == torch.bfloat16 else chunk).numpy()
        if stored is None:
            shape = (len(images), *array.shape[1:])
            stored = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=shape)
        stored[start : start + len(array)] = array
    if stored is not None:
        stored.flush()
        del stored
