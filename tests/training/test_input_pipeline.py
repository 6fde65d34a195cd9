"""The input pipeline: preprocessed once per dataset version, read back as the same batches.

- ``preprocess_cache``: the stored token ids and pixels collate into exactly the tensors the
  processor builds; once stored, no training step opens an image or runs the tokenizer, and
  the losses are those of the uncached run.
- Features and pixels are stored in the training precision.
- DataLoader workers change where batches are collated, not what they hold.
"""

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from transformers import PreTrainedTokenizerBase

from data.schema import read_split
from data.workspace import Workspace
from models.loading import load_base, load_processor
from training.collate import TrainCollator
from training.config import load_config
from training.feature_cache import cache_key, feature_dtype, key_digest
from training.preprocess_cache import load_or_preprocess, preprocess_key
from training.train import train

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "tiny" / "64px_vqa_full.yaml"


def _key(tiny_base: Path, processor: Any, precision: str = "fp32") -> dict[str, Any]:
    model, _ = load_base(str(tiny_base))
    return cache_key(
        dataset="hash-a",
        base_ref=str(tiny_base),
        model=model,
        processor=processor,
        precision=precision,
        device=torch.device("cpu"),
    )


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_stored_split_collates_into_the_processors_batch(
    tiny_base: Path, small_vqa: Path, tmp_path: Path, precision: str
) -> None:
    processor = load_processor(str(tiny_base))
    examples = read_split(small_vqa, "train")
    dtype = feature_dtype(precision)
    key = preprocess_key(_key(tiny_base, processor, precision), processor, task="vqa", dtype=dtype, pixels=True)
    stored = load_or_preprocess(tmp_path, key, processor, small_vqa, examples, dtype=dtype, pixels=True)
    assert stored.pixels is not None and stored.pixel_dtype == dtype
    plain, cached = TrainCollator(processor, small_vqa), TrainCollator(processor, small_vqa, preprocessed=stored)
    for start in range(0, len(examples), 24):  # batches whose longest rows differ: padding is exercised
        batch = examples[start : start + 24]
        want, got = plain(batch), cached(batch)
        assert set(got) == set(want)
        for name in ("input_ids", "attention_mask", "token_type_ids", "labels"):
            assert torch.equal(got[name], want[name]), name
        # in the training precision: exactly the processor's values, rounded to that dtype
        assert got["pixel_values"].dtype == dtype
        assert torch.equal(got["pixel_values"], want["pixel_values"].to(dtype))
    # as a worker started by spawn receives it: pickled, the arrays re-mapped from the folder
    revived = pickle.loads(pickle.dumps(cached))
    back, direct = revived(examples[:5]), cached(examples[:5])
    assert back.keys() == direct.keys() and all(torch.equal(back[k], direct[k]) for k in direct)


def test_the_stored_split_is_keyed_by_task_precision_and_pixels(tiny_base: Path) -> None:
    processor = load_processor(str(tiny_base))

    def digest(task: str = "vqa", precision: str = "fp32", pixels: bool = True) -> str:
        key = _key(tiny_base, processor, precision)
        return key_digest(preprocess_key(key, processor, task=task, dtype=feature_dtype(precision), pixels=pixels))

    reference = digest()
    assert digest() == reference
    assert len({reference, digest(task="caption"), digest(precision="bf16"), digest(pixels=False)}) == 4
    feature_key = _key(tiny_base, processor)
    assert key_digest(preprocess_key(feature_key, processor, task="vqa", dtype=torch.float32, pixels=True)) != (
        key_digest(feature_key)
    ), "never the feature cache's entry"


def _run(workspace: Path, tiny_base: Path, name: str, *overrides: str) -> list[float]:
    config = load_config(
        CONFIG,
        [
            f"base_model={tiny_base}",
            "dataset=dvc-data/vqa",
            "steps=4",
            "batch_size=8",
            "log_every=1",
            "weight_decay=0.01",
            f"output_dir=runs/{name}",
            *overrides,
        ],
    )
    losses: list[float] = []
    train(
        config,
        Workspace(workspace),
        tracking_uri=f"sqlite:///{workspace}/mlflow.db",
        on_log=lambda _, metrics: losses.append(metrics["train/loss"]),
    )
    return losses


def _count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Count the calls of ``owner.name`` while still calling it: a spy, not a stand-in."""
    calls = [0]
    original: Callable[..., Any] = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


@pytest.mark.parametrize("feature_cache", ["false", "true"])
def test_once_preprocessed_no_step_opens_an_image_or_tokenizes(
    workspace: Path, tiny_base: Path, monkeypatch: pytest.MonkeyPatch, feature_cache: str
) -> None:
    fc = f"feature_cache={feature_cache}"
    plain = _run(workspace, tiny_base, "plain", fc, "preprocess_cache=false")
    opened = _count_calls(monkeypatch, Image, "open")
    tokenized = _count_calls(monkeypatch, PreTrainedTokenizerBase, "__call__")
    first = _run(workspace, tiny_base, "first", fc, "preprocess_cache=true")  # stores the split
    assert first == pytest.approx(plain, abs=1e-6)
    # the spies see the work when it is done: storing the split tokenizes, and decodes the
    # images unless the feature cache (built by the plain run) serves them
    assert tokenized[0] > 0 and (opened[0] > 0) == (feature_cache == "false")
    opened[0] = tokenized[0] = 0
    again = _run(workspace, tiny_base, "again", fc, "preprocess_cache=true")
    assert (opened[0], tokenized[0]) == (0, 0), "a whole run read its batches, decoding and tokenizing nothing"
    assert again == pytest.approx(plain, abs=1e-6)


def test_loader_workers_give_the_same_losses(workspace: Path, tiny_base: Path) -> None:
    inline = _run(workspace, tiny_base, "inline", "num_workers=0", "steps=3")
    workers = _run(workspace, tiny_base, "workers", "num_workers=1", "prefetch_factor=1", "steps=3")
    assert workers == pytest.approx(inline, abs=1e-6)


def test_a_bf16_run_caches_bf16_features_that_give_the_uncached_loss(
    tiny_base: Path, small_vqa: Path, tmp_path: Path
) -> None:
    from training.feature_cache import load_or_compute_features, serve_cached_features

    model, processor = load_base(str(tiny_base), dtype=torch.bfloat16)  # a bf16 run's frozen base
    model.eval()
    examples = read_split(small_vqa, "train")[:8]

    def autocast() -> Any:
        return torch.autocast("cpu", dtype=torch.bfloat16)

    key = _key(tiny_base, processor, "bf16")
    features = load_or_compute_features(
        tmp_path, key, model, processor, small_vqa, examples, batch_size=4, autocast=autocast
    )
    assert features.array.dtype.itemsize == 2 and features.dtype == torch.bfloat16, "half the bytes of fp32"
    assert features.key["feature_dtype"] == "bfloat16"
    with torch.no_grad(), autocast():
        from_pixels = model(**TrainCollator(processor, small_vqa)(examples)).loss
        with serve_cached_features(model):
            from_cache = model(**TrainCollator(processor, small_vqa, features)(examples)).loss
    assert from_cache.item() == pytest.approx(from_pixels.item(), abs=1e-6)
