"""Can the tiny PaliGemma learn each synthetic task? Train, generate, score, report.

For each task: render the synthetic dataset at the pipeline's default size (params.yaml),
fine-tune the tiny base with the task's run config (its entry in the task table, e.g.
configs/tiny/64px_detect_full.yaml), then greedy-decode the test split with the task's
generation budget and score it as ``palitune evaluate`` does (``evaluation.score``): the
task's primary metric first, then the others it reports, for the untrained base and the
trained model. Detection adds the share of target boxes found at IoU >= 0.5.
``--predictions DIR`` keeps the trained model's outputs (``palitune evaluate score`` reads them).

    .venv/bin/python benchmarks/learnability.py [method=full ...] [--steps 1200] --tasks ocr detect
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.pipeline import default_params
from data.schema import Example, read_split
from data.synthetic import GENERATORS, SplitSizes, write_synthetic
from data.tasks import ImageSize, OutputParseError, get_task
from data.workspace import Workspace
from evaluation.generate import generate_answers
from evaluation.score import example_record, score_records
from models.loading import load_for_inference, resolve_base
from training.config import load_config
from training.train import train

REPO = Path(__file__).resolve().parents[1]
TEST_EXAMPLES = 200
BOX_RECALL = "box_recall@0.5"


def score(
    task_name: str, dataset: Path, base: str, adapter: Path | None, predictions: Path | None = None
) -> dict[str, float]:
    """The task's metrics of ``base`` (with ``adapter``, if given) on ``dataset``'s test split.

    Args:
        task_name: a task of the task table.
        dataset: a dataset folder with a ``test.jsonl`` of that task.
        base: the base model reference (``models.loading.resolve_base``).
        adapter: the trained adapter folder, or ``None`` for the untrained base.
        predictions: if given, a JSONL file to write each output with its targets to, one
            record per line, as ``palitune evaluate score`` reads them.

    Returns:
        What ``score_outputs`` returns for the greedy outputs, generated with the task's budget.
    """
    examples = read_split(dataset, "test")
    model, processor = load_for_inference(base, adapter)
    outputs = generate_answers(model, processor, dataset, examples)
    if predictions is not None:
        records = (example_record(dataset, example, output) for example, output in zip(examples, outputs, strict=True))
        predictions.parent.mkdir(parents=True, exist_ok=True)
        predictions.write_text("".join(json.dumps(record) + "\n" for record in records))
    return score_outputs(task_name, dataset, examples, outputs)


def score_outputs(task_name: str, root: Path, examples: Sequence[Example], outputs: Sequence[str]) -> dict[str, float]:
    """Score generated ``outputs`` of ``examples`` (images under ``root``) with the task's metrics.

    Returns:
        ``ScoreResult.metrics`` of ``evaluation.score.score_records`` (the primary metric
        first), plus ``box_recall@0.5`` for a task whose targets are boxes.

    Raises:
        DataError: an example's metric cannot be computed (see ``score_records``).
        ValueError: ``outputs`` and ``examples`` differ in length.
    """
    if len(outputs) != len(examples):
        raise ValueError(f"{len(outputs)} outputs for {len(examples)} examples: expected one each")
    records = [example_record(root, example, output) for example, output in zip(examples, outputs, strict=True)]
    result = score_records(task_name, records)
    metrics = dict(result.metrics)
    if get_task(task_name).target == "boxes":
        metrics[BOX_RECALL] = box_recall(records, result.scores)
    return metrics


def box_recall(records: Sequence[dict[str, Any]], box_f1: Sequence[float]) -> float:
    """Share of target boxes matched by a predicted box of the same label at IoU >= 0.5.

    Read from the per-image scores of ``score_records`` for detection: the F1 of an image's
    boxes at IoU 0.5, each target matched at most once, is ``2 * hits / (predicted + targets)``,
    so ``hits = F1 * (predicted + targets) / 2`` (predicted: the boxes its output parses to,
    none when it does not parse, as there). Matching is then exactly the scorer's.

    Args:
        records: detection records (``prediction``, ``boxes``, ``width``, ``height``).
        box_f1: ``ScoreResult.scores`` of ``score_records("detect", records)``, in their order.

    Returns:
        Matched target boxes over all target boxes, in [0, 1].

    Raises:
        ValueError: ``records`` hold no target box (recall is undefined).
    """
    task = get_task("detect")
    hits, targets = 0, 0
    for record, f1 in zip(records, box_f1, strict=True):
        try:
            predicted = task.parse_output(record["prediction"], ImageSize(record["width"], record["height"]))
        except OutputParseError:
            predicted = []
        hits += round(f1 * (len(predicted) + len(record["boxes"])) / 2)
        targets += len(record["boxes"])
    if not targets:
        raise ValueError("no target box in any record: box recall is undefined")
    return hits / targets


@dataclass(frozen=True)
class Row:
    """One task's line of the table: what trained, how long, and its metrics before and after."""

    task: str
    config: str
    train_seconds: float
    untrained: dict[str, float]
    trained: dict[str, float]

    def markdown(self) -> str:
        cells = [self.task, self.config, f"{self.train_seconds:.0f}", _cell(self.untrained), _cell(self.trained)]
        return "| " + " | ".join(cells) + " |"


def _cell(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3f}" for name, value in metrics.items())


def _run_task(name: str, args: argparse.Namespace, ws: Workspace, base: str, tracking_uri: str) -> Row:
    """Render, train and score one task."""
    train_size = args.train or default_params()["synthetic"][name]["train"]
    dataset = write_synthetic(name, ws.datasets / name, sizes=SplitSizes(train_size, 100, TEST_EXAMPLES))
    config_file = REPO / get_task(name).config
    steps = [f"steps={args.steps}"] if args.steps else []
    overrides = [f"task={name}", f"dataset={dataset}", f"output_dir=runs/{name}", *steps, *args.overrides]
    config = load_config(config_file, overrides)
    described = f"{config_file.stem}, {config.steps} steps, {train_size} train"
    start = time.perf_counter()
    result = train(config, ws, tracking_uri=tracking_uri)
    seconds = time.perf_counter() - start
    written = args.predictions / f"{name}.jsonl" if args.predictions else None
    before, after = score(name, dataset, base, None), score(name, dataset, base, result.adapter_dir, written)
    print(f"{name}: untrained {before} -> trained {after} ({seconds:.0f} s)", flush=True)
    return Row(name, described, seconds, before, after)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=sorted(GENERATORS))
    parser.add_argument("--steps", type=int, help="optimizer steps (default: the config's)")
    parser.add_argument("--train", type=int, help="train examples per task (default: params.yaml's)")
    parser.add_argument(
        "--predictions",
        type=Path,
        metavar="DIR",
        help="write the trained model's test outputs and targets to DIR/TASK.jsonl",
    )
    parser.add_argument("overrides", nargs="*", help="run config overrides, e.g. method=full")
    args = parser.parse_args()
    misplaced = [t for t in args.tasks if "=" in t]
    if misplaced:  # --tasks takes every word after it
        parser.error(f"{' '.join(misplaced)}: put run config overrides before --tasks")
    rows = []
    with tempfile.TemporaryDirectory(prefix="palitune-learn-") as tmp:
        ws = Workspace(Path(tmp))
        base = resolve_base("tiny", ws.models)
        for name in args.tasks:
            rows.append(_run_task(name, args, ws, base, f"sqlite:///{tmp}/mlflow.db"))
    print(f"\n| task | config | train s | untrained | trained |  {' '.join(args.overrides)}\n|---|---|---|---|---|")
    for row in rows:
        print(row.markdown())


if __name__ == "__main__":
    main()
