"""The GPU-scale benchmark: the shipped config is PaliGemma 2 3B, and the whole benchmark runs
end to end on a CPU in its small shape."""

import torch
from transformers import PaliGemmaForConditionalGeneration

from benchmarks.gpu_scale import measure, paligemma_config, synthetic_batch
from training.config import Method


def test_the_shipped_config_is_the_published_paligemma2_3b_architecture() -> None:
    config = paligemma_config("3b", 448)
    vision, text = config.vision_config, config.text_config
    assert (vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers) == (1152, 4304, 27)
    assert (vision.num_attention_heads, vision.patch_size, vision.vision_use_head) == (16, 14, False)
    assert type(text).__name__ == "Gemma2Config"
    assert (text.hidden_size, text.intermediate_size, text.num_hidden_layers) == (2304, 9216, 26)
    assert (text.num_attention_heads, text.num_key_value_heads, text.head_dim) == (8, 4, 256)
    assert (text.vocab_size, config.image_token_id, config.projection_dim) == (257216, 257152, 2304)
    assert text.num_image_tokens == 1024 and paligemma_config("3b", 224).text_config.num_image_tokens == 256
    with torch.device("meta"):  # shapes only, no memory
        model = PaliGemmaForConditionalGeneration(config)
    assert 3.0e9 < sum(p.numel() for p in model.parameters()) < 3.1e9  # published: 3 B


def test_synthetic_batch_supervises_only_the_answer() -> None:
    config = paligemma_config("small", 56)
    batch = synthetic_batch(config, 3, torch.device("cpu"))
    assert bool((batch["input_ids"] == config.image_token_id).sum(1).eq(16).all())
    supervised = batch["labels"] != -100
    assert torch.equal(supervised, batch["token_type_ids"] == 1)
    assert bool((batch["input_ids"][:, -1] == 1).all()), "answers end with <eos>"


def test_small_shape_runs_every_measurement_on_cpu() -> None:
    section = measure("small", (56,), steps=1, batches={Method.LORA: 2, Method.FULL: 2}, new_tokens=4,
                      generation_batch=2, device="cpu")  # fmt: skip
    rows = section.table[1:]
    assert [row[1] for row in rows] == ["lora", "full"]
    assert all(float(row[3]) > 0 for row in rows), "samples/s"
    assert all(row[7].endswith("%") for row in rows), "MFU against the measured peak"
    assert any("generation batch 2 vs 1" in name for name in section.ratios)
    assert "## GPU scale" in section.markdown()
