"""The GPU-scale benchmark: its shapes are the published architectures, its FLOP count is right
on a count done by hand, and it runs ``training.train`` end to end on a CPU at shrunk shapes."""

import json
import math
import re
from pathlib import Path

import pytest
import torch
from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

from benchmarks.gpu_scale import (
    DEFAULT_SHAPES,
    Shape,
    ShapeResult,
    Tokens,
    Trains,
    load_shape,
    main,
    model_flops,
    published_peak,
)
from training.model_shapes import ModelDims, dims_from_config


def _meta_model(arch: dict) -> PaliGemmaForConditionalGeneration:
    with torch.device("meta"):  # shapes only, no memory
        return PaliGemmaForConditionalGeneration(PaliGemmaConfig.from_dict(arch))


@pytest.mark.parametrize(("shape", "low", "high", "image_tokens"), [
    ("3b-448-lora", 3.0e9, 3.1e9, 1024), ("3b-224-lora", 3.0e9, 3.1e9, 256),
    ("10b-224-lora", 9.5e9, 9.8e9, 256), ("3b-448-full", 3.0e9, 3.1e9, 1024),
])  # fmt: skip
def test_every_shape_is_its_published_size_and_dims_count_its_matmuls(
    shape: str, low: float, high: float, image_tokens: int
) -> None:
    arch = load_shape(shape).architecture
    model = _meta_model(arch)
    assert low < sum(p.numel() for p in model.parameters()) < high  # published: 3 B and 10 B (9.66 B)
    dims = dims_from_config(arch)
    assert dims.image_tokens == image_tokens == arch["text_config"]["num_image_tokens"]

    def linear_weights(pattern: str) -> int:
        return sum(m.weight.numel() for n, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) and re.fullmatch(pattern, n))  # fmt: skip

    assert linear_weights(r".*language_model\.layers\..*") == dims.text_layers * dims.text_layer_linear
    assert linear_weights(r".*vision_tower\.encoder\..*") == dims.vision_layers * dims.vision_layer_linear
    assert linear_weights(r".*multi_modal_projector.*") == dims.projector_linear
    assert model.lm_head.weight.numel() == dims.head_linear
    assert model.model.vision_tower.embeddings.patch_embedding.weight.numel() == dims.patch_embed


def test_the_headline_shape_has_the_issue_targets_and_the_others_none() -> None:
    shapes = {name: load_shape(name) for name in DEFAULT_SHAPES}
    headline = shapes["3b-448-lora"]
    assert (headline.max_peak_reserved_gb, headline.min_mfu) == (40, 0.40)
    assert headline.run["batch_size"] == 8 and headline.run["lora"]["dropout"] == 0.05
    assert all(s.run["gradient_checkpointing"] and s.run["precision"] == "bf16" for s in shapes.values())
    assert all(s.min_mfu is None for name, s in shapes.items() if name != "3b-448-lora")


def test_lora_weights_of_paligemma2_3b_are_counted_from_the_target_regex() -> None:
    shape = load_shape("3b-448-lora")
    trains = Trains.of(shape.run, shape.architecture)
    # q 2304->2048, k and v 2304->1024, o 2048->2304, gate and up 2304->9216, down 9216->2304; 26 layers, r 16
    per_layer = (2304 + 2048) + 2 * (2304 + 1024) + (2048 + 2304) + 3 * (2304 + 9216)
    assert trains.lora_params == 16 * 26 * per_layer == 20_766_720
    assert (trains.lora_params_vision, trains.vision, trains.projector, trains.text) == (0, False, True, False)
    assert Trains.of(load_shape("3b-448-full").run, shape.architecture) == Trains(True, True, True)


HAND = ModelDims(image_size=2, patch=1, vision_hidden=2, vision_mlp=3, vision_layers=1, vision_heads=1,
                 text_family="gemma", text_hidden=2, text_mlp=3, text_layers=1, heads=1, kv_heads=1, head_dim=2,
                 vocab=10)  # fmt: skip
HAND_TOKENS = Tokens(image=4, prefix=6, answer=2)


def test_model_flops_match_a_count_by_hand() -> None:
    # Weights: patch embedding 3*1*2 = 6, SigLIP layer 4*2*2 + 2*2*3 = 28, projector 2*2 = 4,
    # Gemma layer q,k,v,o 4*2*2 + gate/up/down 3*2*3 = 34, head 2*10 = 20.
    weights = (HAND.patch_embed, HAND.vision_layer_linear, HAND.projector_linear, HAND.text_layer_linear)
    assert (*weights, HAND.head_linear) == (6, 28, 4, 34, 20)
    # LoRA (5 weights), frozen SigLIP, trained projector: SigLIP forward only (2N), projector 4N
    # (no gradient below it), Gemma and head 4N (gradient through, no weight gradient), LoRA 6N.
    lora = model_flops(HAND, Trains(vision=False, projector=True, text=False, lora_params=5), HAND_TOKENS)
    assert lora.vision == 2 * 6 * 4 + 2 * 28 * 4 == 272
    assert lora.projector == 4 * 4 * 4 == 64
    assert lora.text == 4 * 34 * 8 == 1088
    assert lora.head == 4 * 20 * 2 == 160  # supervised positions only
    assert lora.lora == 6 * 5 * 8 == 240
    # Attention, 4 d per allowed pair: SigLIP 16 pairs, forward only; Gemma prefix-LM 6*6 + 2*6 + 1 + 2 = 51
    # pairs, forward and twice that backward.
    assert lora.attention == 4 * 16 * 2 + 4 * 51 * 2 * 3 == 1352
    assert lora.total == 3176
    full = model_flops(HAND, Trains(vision=True, projector=True, text=True), HAND_TOKENS)
    # The patch embedding has nothing below it: 4N; every other part 6N; attention 3x forward.
    assert full.vision == 4 * 6 * 4 + 6 * 28 * 4
    assert (full.projector, full.text, full.head, full.lora) == (6 * 4 * 4, 6 * 34 * 8, 6 * 20 * 2, 0)
    assert full.attention == 3 * (4 * 16 * 2 + 4 * 51 * 2)
    assert full.total == 4344


def test_text_matmuls_of_a_full_fine_tune_are_6n_per_token_as_in_the_usual_rule() -> None:
    dims = dims_from_config(load_shape("3b-448-full").architecture)
    tokens = Tokens(image=1024, prefix=1024 + 32, answer=32)
    flops = model_flops(dims, Trains(True, True, True), tokens)
    assert flops.text == 6 * dims.text_layers * dims.text_layer_linear * (1024 + 64)
    pairs = 1056**2 + 32 * 1056 + 32 * 33 // 2
    assert flops.attention == 3 * (4 * 27 * 1024**2 * 1152 + 4 * 26 * pairs * 8 * 256)
    assert 0.05 < flops.attention / flops.total < 0.08  # 1.1 of 17 TFLOP per example


def test_published_peaks_by_device_name() -> None:
    assert published_peak("NVIDIA H100 80GB HBM3") == 989e12  # the SXM part's name
    assert published_peak("NVIDIA H100 PCIe") == 756e12
    assert published_peak("NVIDIA H200") == 989e12
    assert published_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert published_peak("Some Future Accelerator") is None


def test_targets_are_judged_on_a_gpu_only() -> None:
    shape = Shape("3b-448-lora", {}, 448, {}, max_peak_reserved_gb=40, min_mfu=0.40)
    flops = model_flops(HAND, Trains(False, True, False), HAND_TOKENS)
    fast = ShapeResult(shape, "cuda", samples_per_s=1.0, flops=flops, peak_flops=flops.total * 2, peak_reserved_gb=39)
    assert [v for _, v in fast.verdicts()] == ["PASS", "PASS"]  # 50 % MFU, 39 GB
    slow = ShapeResult(shape, "cuda", samples_per_s=0.5, flops=flops, peak_flops=flops.total * 2, peak_reserved_gb=41)
    assert [v for _, v in slow.verdicts()] == ["FAIL", "FAIL"]  # 25 % MFU, 41 GB
    cpu = ShapeResult(shape, "cpu", samples_per_s=1.0, flops=flops, peak_flops=1.0)
    assert [v.startswith("not judged") for _, v in cpu.verdicts()] == [True]
    shrunk = Shape("3b-448-lora", {}, 56, {}, max_peak_reserved_gb=40, min_mfu=0.40, shrunk=True)
    tiny_on_gpu = ShapeResult(shrunk, "cuda", samples_per_s=1.0, flops=flops, peak_flops=flops.total)
    assert [v.startswith("not judged") for _, v in tiny_on_gpu.verdicts()] == [True]


def test_shrunk_shape_trains_through_training_train_on_cpu(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--shrink", "--shapes", "3b-448-lora", "--workdir", str(tmp_path), "--keep"]) == 0
    out = capsys.readouterr().out
    header, row = (
        [cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")
    )
    cells = dict(zip(header, row, strict=True))
    samples = float(cells["samples/s"])
    assert 0.1 < samples < 1000
    mfu = float(cells["MFU"].removesuffix(" %"))
    assert 0 < mfu < 100
    # The FLOPs per sample are the formula's for the sequence the loop reported: 16 image tokens.
    shape = load_shape("3b-448-lora", shrink=True)
    arch = json.loads((tmp_path / "3b-448-lora" / "models" / "3b-448-lora" / "config.json").read_text())
    assert arch["text_config"]["num_image_tokens"] == 16 == dims_from_config(arch).image_tokens
    per_sample = float(cells["model TFLOP/sample"]) * 1e12
    lower_bound = model_flops(dims_from_config(arch), Trains.of(shape.run, arch), Tokens(16, 16, 1))
    assert lower_bound.total < per_sample < 100 * lower_bound.total
    assert math.isclose(float(cells["TFLOP/s"]), float(cells["model TFLOP/sample"]) * samples, rel_tol=0.01)
    assert float(cells["loop peak MB"]) > 0 and cells["peak allocated GB"] == "n/a"  # no CUDA here
    # Random weights: the loss is about that of a uniform guess over the vocabulary.
    assert abs(float(cells["final loss"]) - math.log(arch["text_config"]["vocab_size"])) < 3
    assert "targets: not judged" in out
    # The run was training.train's, with the shipped LoRA and the shape's precision and checkpointing.
    adapter = tmp_path / "3b-448-lora" / "runs" / "3b-448-lora" / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["lora_dropout"] == 0.05
    recorded = json.loads((adapter / "palitune_run.json").read_text())["config"]
    assert (recorded["precision"], recorded["gradient_checkpointing"], recorded["method"]) == ("bf16", True, "lora")
