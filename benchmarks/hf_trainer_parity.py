"""palitune's loop against the plain HF Trainer recipe of the HF PaliGemma fine-tuning blog,
in one process, on the same model, data and hyper-parameters.

    .venv/bin/python -m benchmarks.hf_trainer_parity [--train 2000] [--steps 300] [--seeds 0 1 2]

The recipe (huggingface.co/blog/paligemma, "Fine-tuning PaliGemma"): ``transformers.Trainer``
with a collator that decodes each batch's images and calls the processor with ``suffix=``,
the vision tower and projector frozen, the language model fully trained, AdamW. palitune runs
the same as a run config (``method: full``, ``freeze_vision``/``freeze_projector: true``)
through ``training.train``: its caches cold, as on a dataset version's first run, and built
inside the timed call; it logs to an MLflow store (created once before timing, as a
workspace's is by its first run), which the HF recipe here does not (``report_to=[]``).

Both train the tiny base (the project's ``tiny`` preset, 64 px) on a synthetic shapes
counting set (``how many shapes are there?``, answers 1-4) for the same steps, batch,
learning rate, cosine schedule, warmup, weight decay, clipping and seed, in fp32 on the
CPU; the order of the two flips every seed. Reported per trainer (median over seeds):

- samples/s in the loop: optimizer steps after the first quarter x batch / their time
  (palitune: its own logged windows; HF: a callback's timestamps at the same steps);
- wall time of the whole call (model load, caches, training, saving);
- peak RSS growth over the process's RSS before the call (sampled every 5 ms), since
  ``ru_maxrss`` of one process cannot tell two trainers apart;
- exact match on the held-out test split, greedy decoding through ``evaluation``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import Section, machine
from data.schema import Example, read_split
from data.synthetic import SplitSizes, write_shapes_vqa
from data.workspace import Workspace
from models.loading import load_base, load_for_inference
from models.tiny_base import build_tiny_base
from training.collate import prompt
from training.config import RunConfig
from training.train import train

# The shared hyper-parameters: palitune's tiny full fine-tune config (configs/tiny/64px_vqa_full.yaml).
HPARAMS = {"batch_size": 32, "learning_rate": 1e-3, "weight_decay": 0.0, "warmup_ratio": 0.05, "max_grad_norm": 1.0}


class PeakRss:
    """The largest resident set size seen while open, minus the one at opening, in MiB."""

    def __enter__(self) -> PeakRss:
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def exact_match(model: Any, processor: Any, root: Path, examples: list[Example]) -> float:
    """VQA exact match (one answer per question: ``evaluation.vqa_metrics``) of greedy outputs."""
    from evaluation.generate import generate_answers
    from evaluation.score import example_record, score_records

    model.eval()
    with torch.no_grad():
        outputs = generate_answers(model, processor, root, examples)
    records = [example_record(root, e, o) for e, o in zip(examples, outputs, strict=True)]
    return float(score_records("vqa", records).metrics["vqa_accuracy"])


def run_hf_trainer(base: Path, data: Path, out: Path, steps: int, seed: int, timed_from: int) -> dict[str, Any]:
    """The blog's recipe: Trainer, a collator calling the processor with ``suffix=``, frozen
    vision tower and projector. Returns samples/s after step ``timed_from`` and the model's EM."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from models.images import open_image

    model, processor = load_base(str(base))
    for module in (model.model.vision_tower, model.model.multi_modal_projector):
        for param in module.parameters():
            param.requires_grad = False

    def collate_fn(examples: list[Example]) -> Any:
        images = [open_image(data, e.image) for e in examples]
        return processor(
            text=[prompt(e) for e in examples],
            images=images,
            suffix=[e.suffix for e in examples],
            return_tensors="pt",
            padding="longest",
        )

    stamps: dict[int, float] = {}

    class Stamp(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            stamps[state.global_step] = time.perf_counter()

    args = TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=int(HPARAMS["batch_size"]),
        learning_rate=HPARAMS["learning_rate"],
        weight_decay=HPARAMS["weight_decay"],
        warmup_steps=int(HPARAMS["warmup_ratio"] * steps),
        lr_scheduler_type="cosine",
        max_grad_norm=HPARAMS["max_grad_norm"],
        optim="adamw_torch",
        seed=seed,
        logging_steps=max(steps // 4, 1),
        save_strategy="no",
        report_to=[],
        remove_unused_columns=False,
        dataloader_pin_memory=False,
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=read_split(data, "train"),  # type: ignore[arg-type]
        data_collator=collate_fn,
        callbacks=[Stamp()],
    )
    trainer.train()
    trainer.save_model(str(out / "model"))
    samples = (steps - timed_from) * HPARAMS["batch_size"]
    return {"samples_per_s": samples / (stamps[steps] - stamps[timed_from]), "model": model, "processor": processor}


def run_palitune(
    base: Path, data: Path, workspace: Path, tracking_uri: str, steps: int, seed: int, window: int
) -> dict[str, Any]:
    """``training.train`` with the same recipe as a run config; samples/s of every logged window
    after the first (the first holds the start-up)."""
    config = RunConfig(
        base_model=str(base),
        task="vqa",
        dataset=str(data),
        output_dir=str(workspace / "run"),
        method="full",  # type: ignore[arg-type]
        freeze_vision=True,
        freeze_projector=True,
        steps=steps,
        scheduler="cosine",  # type: ignore[arg-type]
        seed=seed,
        log_every=window,
        resume=False,
        **HPARAMS,  # type: ignore[arg-type]
    )
    rates: list[float] = []
    result = train(
        config,
        Workspace(workspace),
        tracking_uri=tracking_uri,
        on_log=lambda step, metrics: rates.append(metrics["train/samples_per_s"]) if step > window else None,
    )
    model, processor = load_for_inference(str(base), result.adapter_dir)
    # windows of equal steps: the mean rate is samples / time over them
    return {"samples_per_s": len(rates) / sum(1 / r for r in rates), "model": model, "processor": processor}


def _create_store(tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri).search_experiments()


def measure(train_size: int, test_size: int, steps: int, seeds: list[int]) -> Section:
    window = max(steps // 4, 1)
    rows: dict[str, list[dict[str, float]]] = {"HF Trainer (blog recipe)": [], "palitune training.train": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = build_tiny_base(root / "tiny")
        data = write_shapes_vqa(root / "counting", sizes=SplitSizes(train_size, 8, test_size))
        test = read_split(data, "test")
        # A workspace's MLflow store exists after its first run: create it (tables, migrations)
        # before timing, as the imports are; each timed run still opens it, logs and ends a run.
        tracking_uri = f"sqlite:///{root}/mlflow.db"
        _create_store(tracking_uri)
        for i, seed in enumerate(seeds):
            runs: dict[str, Callable[[], dict[str, Any]]] = {
                "HF Trainer (blog recipe)": partial(
                    run_hf_trainer, base, data, root / f"hf-{seed}", steps, seed, window
                ),
                "palitune training.train": partial(
                    run_palitune, base, data, root / f"pt-{seed}", tracking_uri, steps, seed, window
                ),
            }
            for name in list(runs) if i % 2 == 0 else reversed(list(runs)):
                start = time.perf_counter()
                with PeakRss() as rss:
                    out = runs[name]()
                wall = time.perf_counter() - start
                em = exact_match(out["model"], out["processor"], data, test)
                rows[name].append(
                    {"samples_per_s": out["samples_per_s"], "wall_s": wall, "rss": rss.growth_mib, "em": em}
                )
    med = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in rows.items()}
    hf, pt = med["HF Trainer (blog recipe)"], med["palitune training.train"]
    table = [["trainer", "samples/s in the loop", "wall s", "peak RSS growth MiB", "test exact match", "per seed EM"]]
    for name, m in med.items():
        ems = " / ".join(f"{r['em']:.3f}" for r in rows[name])
        table.append(
            [name, f"{m['samples_per_s']:.1f}", f"{m['wall_s']:.1f}", f"{m['rss']:.0f}", f"{m['em']:.3f}", ems]
        )
    return Section(
        title=f"palitune vs the HF Trainer recipe: tiny full fine-tune, {train_size}-image counting set",
        command=f"python -m benchmarks.hf_trainer_parity --train {train_size} --test {test_size} --steps {steps} "
        f"--seeds {' '.join(map(str, seeds))}",
        table=table,
        ratios={
            "palitune vs HF Trainer samples/s in the loop": f"{pt['samples_per_s'] / hf['samples_per_s']:.2f}x",
            "HF Trainer wall time / palitune wall time": f"{hf['wall_s'] / pt['wall_s']:.2f}x",
            "palitune vs HF Trainer peak RSS growth": f"{pt['rss'] / max(hf['rss'], 1e-9):.2f}x",
            "test exact match, palitune - HF Trainer": f"{pt['em'] - hf['em']:+.3f}",
        },
        notes=[
            f"Same process, order flipped every seed; median over seeds {seeds}. {steps} steps x batch "
            f"{HPARAMS['batch_size']}, lr {HPARAMS['learning_rate']}, cosine, warmup {HPARAMS['warmup_ratio']}, "
            f"clip {HPARAMS['max_grad_norm']}, fp32; vision tower and projector frozen. "
            f"Machine: {machine()['cpu']}; {machine()['cores']}.",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2000, help="train images")
    parser.add_argument("--test", type=int, default=200, help="held-out images scored")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    measure(args.train, args.test, args.steps, args.seeds).print()


if __name__ == "__main__":
    main()
