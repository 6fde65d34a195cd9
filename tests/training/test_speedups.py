"""The speed-ups change how fast a run goes, not what it learns.

- ``feature_cache``: the frozen vision tower's features, computed once, give the losses of
  the uncached run; the cache is keyed by what the features depend on.
- ``length_bucketing``: every example once per epoch, replayable, less padding; an example's
  loss does not depend on how much its batch pads it.
"""

from pathlib import Path

import pytest
import torch

from data.schema import read_split
from data.synthetic import SplitSizes, write_synthetic
from data.workspace import Workspace
from models.loading import load_base, load_processor
from training.collate import TrainCollator, text_batch
from training.config import load_config
from training.feature_cache import FEATURES_FILE, cache_blocker, cache_key, key_digest
from training.sampling import EpochSampler, LengthGroupedSampler, text_lengths
from training.train import train

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "tiny" / "64px_vqa_lora.yaml"


def test_text_batch_is_the_processors_token_layout(tiny_base: Path, small_vqa: Path) -> None:
    processor = load_processor(str(tiny_base))
    examples = read_split(small_vqa, "train")[:6]
    full = TrainCollator(processor, small_vqa)(examples)
    text = text_batch(processor, examples)
    for key in ("input_ids", "attention_mask", "token_type_ids", "labels"):
        assert torch.equal(torch.as_tensor(full[key]), text[key]), key


def _batches(sampler: EpochSampler, batch_size: int) -> list[list[int]]:
    order = list(sampler)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def test_length_grouped_order_is_a_replayable_permutation_with_like_sized_batches() -> None:
    lengths = [int(n) for n in torch.randint(1, 200, (1003,), generator=torch.Generator().manual_seed(1))]
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(1003)), "every example once per epoch"
    assert list(LengthGroupedSampler(lengths, 8, 3)) == first, "the same (seed, epoch), the same order"
    sampler.set_epoch(1)
    assert list(sampler) != first, "a new epoch, a new order"
    sampler.set_epoch(0)

    def padded(batches: list[list[int]]) -> int:
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    grouped = _batches(sampler, 8)
    assert len(grouped[-1]) == 1003 % 8, "the one partial batch comes last (drop_last drops exactly it)"
    plain = _batches(EpochSampler(1003, 3), 8)
    assert padded(grouped) < 0.7 * padded(plain)
    assert padded(grouped) < 1.05 * sum(lengths)


def test_an_examples_loss_does_not_depend_on_its_padding(tiny_base: Path, small_vqa: Path) -> None:
    model, processor = load_base(str(tiny_base))
    model.train()
    example = read_split(small_vqa, "train")[0]
    alone = dict(TrainCollator(processor, small_vqa)([example]))
    fill = {"input_ids": processor.tokenizer.pad_token_id, "attention_mask": 0, "token_type_ids": 0, "labels": -100}
    padded = {
        k: v if k == "pixel_values" else torch.cat([torch.full((1, 9), fill[k], dtype=v.dtype), v], dim=1)
        for k, v in alone.items()
    }
    with torch.no_grad():
        assert model(**padded).loss.item() == pytest.approx(model(**alone).loss.item(), abs=1e-5)


def test_an_epoch_costs_the_same_loss_bucketed_or_not(tiny_base: Path, tmp_path: Path) -> None:
    # Answers of very different lengths (receipts read into JSON), one fixed model.
    data = write_synthetic("extract", tmp_path / "extract", sizes=SplitSizes(48, 1, 1))
    model, processor = load_base(str(tiny_base))
    examples = read_split(data, "train")
    collate = TrainCollator(processor, data)

    def epoch(sampler: EpochSampler) -> tuple[float, int, int]:
        total, tokens, positions = 0.0, 0, 0
        with torch.no_grad():
            for batch_ids in _batches(sampler, 8):
                batch = collate([examples[i] for i in batch_ids])
                supervised = int((batch["labels"][:, 1:] != -100).sum())
                total += model(**batch).loss.item() * supervised
                tokens, positions = tokens + supervised, positions + batch["input_ids"].numel()
        return total / tokens, tokens, positions

    plain = epoch(EpochSampler(len(examples), 0))
    grouped = epoch(LengthGroupedSampler(text_lengths(processor, examples), 8, 0))
    assert grouped[0] == pytest.approx(plain[0], rel=1e-5), "the same mean loss per answer token"
    assert grouped[1] == plain[1]
    assert grouped[2] < plain[2], "fewer positions computed"


def _run(workspace: Path, tiny_base: Path, name: str, *overrides: str) -> tuple[list[float], Path]:
    config = load_config(
        CONFIG,
        [
            f"base_model={tiny_base}",
            "dataset=dvc-data/vqa",
            "steps=8",
            "batch_size=8",
            "log_every=1",
            f"output_dir=runs/{name}",
            *overrides,
        ],
    )
    losses: list[float] = []
    result = train(
        config,
        Workspace(workspace),
        tracking_uri=f"sqlite:///{workspace}/mlflow.db",
        on_log=lambda _, metrics: losses.append(metrics["train/loss"]),
    )
    return losses, result.adapter_dir


def _cache_entries(workspace: Path) -> list[Path]:
    return sorted((workspace / "cache" / "image-features").glob(f"*/{FEATURES_FILE}"))


def test_cached_features_train_the_same_losses_and_adapter(workspace: Path, tiny_base: Path) -> None:
    from safetensors.torch import load_file

    plain, plain_adapter = _run(workspace, tiny_base, "plain", "feature_cache=false")
    assert _cache_entries(workspace) == []
    cached, cached_adapter = _run(workspace, tiny_base, "cached", "feature_cache=true")
    assert len(_cache_entries(workspace)) == 1
    assert cached == pytest.approx(plain, abs=1e-5)
    a, b = (
        load_file(plain_adapter / "adapter_model.safetensors"),
        load_file(cached_adapter / "adapter_model.safetensors"),
    )
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key

    entry = _cache_entries(workspace)[0]
    written = entry.stat().st_mtime_ns
    again, _ = _run(workspace, tiny_base, "again", "feature_cache=true")
    assert again == pytest.approx(plain, abs=1e-5)
    assert _cache_entries(workspace) == [entry] and entry.stat().st_mtime_ns == written, "reused, not recomputed"


def test_the_cache_is_off_when_the_vision_tower_trains(tiny_base: Path) -> None:
    from training.peft_setup import prepare_model

    for overrides, blocked in ((["freeze_vision=true"], False), (["freeze_vision=false"], True)):
        model, _ = load_base(str(tiny_base))
        prepare_model(model, load_config(CONFIG, overrides))
        assert (cache_blocker(model) is not None) == blocked, overrides


def test_the_cache_key_changes_with_dataset_base_and_image_size(tiny_base: Path, tmp_path: Path) -> None:
    from models.tiny_base import TinyBaseSpec, build_tiny_base

    def digest(base: Path, dataset: str = "hash-a", precision: str = "fp32") -> str:
        model, processor = load_base(str(base))
        key = cache_key(
            dataset=dataset,
            base_ref=str(base),
            model=model,
            processor=processor,
            precision=precision,
            device=torch.device("cpu"),
        )
        return key_digest(key)

    reference = digest(tiny_base)
    assert digest(tiny_base) == reference
    assert digest(tiny_base, dataset="hash-b") != reference
    assert digest(tiny_base, precision="bf16") != reference
    other_size = build_tiny_base(tmp_path / "96px", TinyBaseSpec(image_size=96))
    assert digest(other_size) != reference
    rebuilt = build_tiny_base(tmp_path / "rebuilt", TinyBaseSpec(seed=1))  # same shapes, other weights
    assert digest(rebuilt) != digest(build_tiny_base(tmp_path / "rebuilt-0", TinyBaseSpec(seed=0)))
