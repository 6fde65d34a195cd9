"""Batch prediction from the registry: images/s of batched ``palitune predict`` vs one image at a time.

    .venv/bin/python -m benchmarks.predict_throughput [--images 64] [--batch 16] [--tokens 16] [--repeats 3]

A tiny-base adapter (LoRA weights set to seeded noise, so every image gets its own answer) is
registered in a SQLite MLflow store and aliased ``champion``; ``models:/palitune-vqa@champion``
is loaded once as MLflow pyfunc, as ``palitune predict`` loads it. Both ways answer the same
synthetic test images with one prompt in this process, in turn, ``--repeats`` times: the
baseline calls the model once per image, the candidate runs ``answer_in_batches`` with
``--batch`` images per call (what ``palitune predict --batch-size`` does). Outputs are compared,
the ratio of the median wall times printed. Model loading is not timed (it is paid once either way).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from benchmarks.common import Section, interleaved
from data.schema import read_split
from data.synthetic import SplitSizes, write_shapes_vqa
from models.loading import load_base
from models.tiny_base import build_tiny_base
from registry.models import CHAMPION, register_adapter
from registry.serving import RegisteredPredictor, answer_in_batches, load_registered
from registry.tracking import client_for, open_run

NAME = "palitune-vqa"
PROMPT = "answer en what colour is the circle?"


def noisy_adapter(base: Path, out: Path, seed: int = 0) -> Path:
    """A LoRA adapter for ``base`` whose weights are seeded noise (std 0.3): an untrained tiny
    model answers nearly every image with nothing, which would time only the first token."""
    from peft import LoraConfig, get_peft_model

    model, processor = load_base(str(base))
    lora = get_peft_model(
        model, LoraConfig(r=4, target_modules=r".*language_model.*\.(q_proj|v_proj|o_proj|down_proj)")
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in lora.named_parameters():
            if "lora_" in name:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.3)
    lora.save_pretrained(str(out))
    processor.save_pretrained(out)
    return out


def champion(root: Path, tokens: int) -> str:
    """Register a noisy tiny adapter in a SQLite store under ``root`` as the champion; its URI."""
    base = build_tiny_base(root / "models" / "tiny-paligemma")
    adapter = noisy_adapter(base, root / "adapter")
    uri = f"sqlite:///{root}/mlflow.db"
    client = client_for(uri)
    run_id = open_run(client, "palitune", root / "artifacts", run_name="predict-throughput", tags={})
    version = register_adapter(
        client, run_id, adapter, NAME, {"palitune.base_model": "tiny"}, max_new_tokens=tokens, models_dir=base.parent
    )
    client.set_registered_model_alias(NAME, CHAMPION, version.version)
    return uri


def measure(images: int = 64, batch: int = 16, tokens: int = 16, repeats: int = 3) -> Section:
    with tempfile.TemporaryDirectory() as tmp:
        uri = champion(Path(tmp), tokens)
        data = write_shapes_vqa(Path(tmp) / "vqa", sizes=SplitSizes(1, 1, images))
        paths = [str(data / example.image) for example in read_split(data, "test")]
        prompts = [PROMPT] * len(paths)
        predictor: RegisteredPredictor = load_registered(uri, f"models:/{NAME}@{CHAMPION}", batch_size=batch)
        outputs: dict[str, list[str]] = {}

        def one_by_one() -> None:
            outputs["one"] = [predictor.answers([p], [q])[0]["text"] for p, q in zip(paths, prompts, strict=True)]

        def batched() -> None:
            chunks = answer_in_batches(predictor, paths, prompts, batch)
            outputs["batched"] = [answer["text"] for chunk in chunks for answer in chunk]

        times = interleaved({"one": one_by_one, "batched": batched}, repeats)
    same = sum(a == b for a, b in zip(outputs["batched"], outputs["one"], strict=True))
    distinct = len(set(outputs["batched"]))
    rows = [["mode", "seconds (median)", "images/s"]]
    rows.append(["one image per call (baseline)", f"{times['one']:.2f}", f"{len(paths) / times['one']:.1f}"])
    rows.append([f"batch {batch}", f"{times['batched']:.2f}", f"{len(paths) / times['batched']:.1f}"])
    return Section(
        title="Batch prediction from the registry: batched vs one image at a time",
        command=f"python -m benchmarks.predict_throughput --images {images} --batch {batch} --tokens {tokens}",
        table=rows,
        ratios={
            f"batch {batch} vs one-by-one images/s": f"{times['one'] / times['batched']:.1f}x",
            "identical outputs": f"{same}/{len(paths)}",
        },
        notes=[
            f"models:/{NAME}@{CHAMPION} from a SQLite MLflow store, loaded once as pyfunc (not timed); tiny base "
            f"(64 px) with a noisy LoRA adapter ({distinct} distinct answers over {len(paths)} images), one prompt, "
            f"up to {tokens} new tokens, greedy with the KV cache, {torch.get_num_threads()} torch threads; "
            f"median of {repeats} interleaved repetitions."
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="synthetic test images to answer about")
    parser.add_argument("--batch", type=int, default=16, help="images per call of the batched way")
    parser.add_argument("--tokens", type=int, default=16, help="new-token budget of the registered model")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (the median is kept)")
    args = parser.parse_args()
    measure(args.images, args.batch, args.tokens, args.repeats).print()


if __name__ == "__main__":
    main()
