"""The order examples are trained in: replayable shuffles, optionally grouped by length.

Both samplers depend only on ``(seed, epoch)``, so the order of any epoch can be replayed:
that is what makes a resumed run see the batches an uninterrupted one would have seen.
Under several processes Accelerate hands out whole batches round-robin (batch ``i`` to rank
``i % n``), so a length-grouped batch stays one batch on one rank.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler
from transformers import PaliGemmaProcessor

from data.schema import Example

# Batches per "mega-batch" sorted by length: large enough to find like-sized neighbours,
# small enough that which examples meet in a batch stays random (as Hugging Face's
# LengthGroupedSampler does with 50).
BATCHES_PER_GROUP = 50


def _permutation(size: int, seed: int, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(size, generator=generator)


class EpochSampler(Sampler[int]):
    """A shuffle that depends only on (seed, epoch): the order of any epoch can be replayed."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(_permutation(self.size, self.seed, self.epoch).tolist())

    def __len__(self) -> int:
        return self.size


class LengthGroupedSampler(EpochSampler):
    """A replayable shuffle whose consecutive ``batch_size`` chunks hold examples of similar length.

    Each epoch: shuffle as ``EpochSampler``; cut the order into groups of
    ``BATCHES_PER_GROUP`` batches; sort each group by length (longest first), cut it into
    batches; shuffle the order of the full batches and put the one partial batch, if any,
    last (a DataLoader's ``BatchSampler`` then cuts exactly these batches, and
    ``drop_last`` drops exactly that one). Every example is still seen once per epoch.

    Padding a batch to its longest row is then padding like to like: fewer pad tokens, less
    compute. PaliGemma's loss per example does not depend on the padding (left padding and
    rotary positions: a constant shift of positions changes nothing), so only which
    examples share a batch differs from the plain shuffle.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int):
        super().__init__(len(lengths), seed)
        self.lengths, self.batch_size = torch.as_tensor(list(lengths)), batch_size

    def __iter__(self) -> Iterator[int]:
        order = _permutation(self.size, self.seed, self.epoch)
        group = self.batch_size * BATCHES_PER_GROUP
        batches: list[torch.Tensor] = []
        for start in range(0, self.size, group):
            members = order[start : start + group]
            # stable sort: ties keep their shuffled order
            ranked = members[torch.sort(self.lengths[members], descending=True, stable=True).indices]
            batches += list(ranked.split(self.batch_size))
        partial = [b for b in batches if len(b) < self.batch_size]
        full = [b for b in batches if len(b) == self.batch_size]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch + 7_919)
        shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
        # Only the last group can be short, so there is at most one partial batch.
        return iter(torch.cat([*shuffled, *partial]).tolist() if batches else [])


def text_lengths(processor: PaliGemmaProcessor, examples: Sequence[Example]) -> list[int]:
    """Text tokens of each example (prefix and suffix; the image tokens are the same for all)."""
    tokenizer = processor.tokenizer
    prefixes = tokenizer([e.prefix for e in examples], add_special_tokens=False)["input_ids"]
    suffixes = tokenizer([e.suffix for e in examples], add_special_tokens=False)["input_ids"]
    return [len(p) + len(s) for p, s in zip(prefixes, suffixes, strict=True)]
