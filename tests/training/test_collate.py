"""The PaliGemma fine-tuning format: labels on the suffix only, token_type_ids marking it."""

from pathlib import Path

import torch

from data.schema import read_split
from models.loading import load_processor
from training.collate import TrainCollator


def test_labels_cover_exactly_the_suffix_and_eos(tiny_base: Path, small_vqa: Path) -> None:
    processor = load_processor(str(tiny_base))
    examples = read_split(small_vqa, "train")[:4]
    batch = TrainCollator(processor, small_vqa)(examples)
    tokenizer = processor.tokenizer
    for row, example in enumerate(examples):
        ids, labels, types = batch["input_ids"][row], batch["labels"][row], batch["token_type_ids"][row]
        suffix = types == 1
        # labels equal the inputs on the suffix and are masked everywhere else
        assert torch.equal(labels[suffix], ids[suffix])
        assert bool((labels[~suffix] == -100).all())
        # the suffix is the answer followed by <eos>: what teaches the model to stop
        assert ids[suffix][-1].item() == tokenizer.eos_token_id
        assert tokenizer.decode(ids[suffix][:-1]) == example.suffix
        # the prefix holds the image tokens, <bos>, the prompt and its closing newline
        prefix_ids = ids[(batch["attention_mask"][row] == 1) & ~suffix]
        assert (prefix_ids == processor.image_token_id).sum().item() == processor.image_seq_length
        assert tokenizer.decode(prefix_ids[processor.image_seq_length + 1 :]) == example.prefix + "\n"
