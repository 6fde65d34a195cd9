"""Preflight: the classic PaliGemma fine-tuning bugs stop the run before its first step."""

from pathlib import Path

import pytest
import torch

from data.schema import read_split
from models.generation import prompt_batch
from models.images import open_image
from models.loading import load_processor
from training.collate import TrainCollator
from training.preflight import PreflightError, preflight

TOKENS = 16  # the tiny base's image tokens


@pytest.fixture
def batch(tiny_base: Path, small_vqa: Path) -> tuple[dict, int]:
    processor = load_processor(str(tiny_base))
    return dict(TrainCollator(processor, small_vqa)(read_split(small_vqa, "train")[:4])), processor.image_token_id


def test_a_good_batch_passes(batch) -> None:
    good, image_token = batch
    preflight(good, image_token, TOKENS)


def test_missing_token_type_ids(batch) -> None:
    good, image_token = batch
    del good["token_type_ids"]
    with pytest.raises(PreflightError, match=r"no token_type_ids.*suffix=\.\.\."):
        preflight(good, image_token, TOKENS)


def test_empty_loss_mask(batch) -> None:
    good, image_token = batch
    good["labels"] = torch.full_like(good["labels"], -100)
    with pytest.raises(PreflightError, match="loss mask is empty"):
        preflight(good, image_token, TOKENS)


def test_answer_inside_the_prompt(tiny_base: Path, small_vqa: Path) -> None:
    """The answer put in text= with labels copied from input_ids: token_type_ids are 0 on it."""
    processor = load_processor(str(tiny_base))
    examples = read_split(small_vqa, "train")[:2]
    batch = dict(
        prompt_batch(processor, [open_image(small_vqa, e.image) for e in examples], [e.prefix for e in examples])
    )
    batch["labels"] = batch["input_ids"].clone()
    with pytest.raises(PreflightError, match="token_type_ids are 0 on suffix tokens"):
        preflight(batch, processor.image_token_id, TOKENS)


def test_image_tokens_of_another_model(batch) -> None:
    good, image_token = batch
    with pytest.raises(PreflightError, match=r"image tokens per example \[16\] != 256"):
        preflight(good, image_token, 256)
