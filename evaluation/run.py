"""Evaluate a model (a base, or a base plus adapter) on one split of a dataset version."""

from __future__ import annotations

from pathlib import Path

from data.schema import read_split
from data.tasks import get_task
from data.versioning import recorded_hash
from evaluation.generate import generate_answers
from evaluation.report import EvaluationReport, ScoredPrediction
from evaluation.score import example_record, score_records
from models.loading import load_for_inference


def evaluate(
    base_ref: str,
    dataset_dir: Path,
    *,
    adapter_dir: Path | None = None,
    split: str = "test",
    batch_size: int = 64,
    max_new_tokens: int | None = None,
    progress: bool = False,
) -> EvaluationReport:
    """Generate on ``split`` and score every example with its task's metrics.

    Args:
        base_ref: a resolved base reference (folder or hub id).
        dataset_dir: the dataset version's folder.
        adapter_dir: a trained adapter for ``base_ref``; ``None`` scores the base itself.
        max_new_tokens: generation budget; default the task's (``evaluation.generate``).
        progress: draw a progress bar on a terminal.
    """
    examples = read_split(dataset_dir, split)
    tasks = {e.task for e in examples}
    if len(tasks) != 1:
        raise ValueError(f"{dataset_dir}/{split}.jsonl: expected one task, found {sorted(tasks)}")
    task = get_task(tasks.pop())
    model, processor = load_for_inference(base_ref, adapter_dir)
    outputs = generate_answers(
        model,
        processor,
        dataset_dir,
        examples,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens or task.max_new_tokens,
        progress=progress,
    )
    records = [example_record(dataset_dir, example, output) for example, output in zip(examples, outputs, strict=True)]
    scored = score_records(task.name, records, source=Path(dataset_dir) / f"{split}.jsonl")
    predictions = [
        ScoredPrediction(example.id, example.prefix, output, record["answers"], score)
        for example, output, record, score in zip(examples, outputs, records, scored.scores, strict=True)
    ]
    return EvaluationReport(
        task=task.name,
        split=split,
        model=base_ref if adapter_dir is None else f"{base_ref} + {adapter_dir}",
        dataset_hash=recorded_hash(Path(dataset_dir)),
        metrics={f"{task.name}/{split}/{name}": value for name, value in scored.metrics.items()},
        predictions=predictions,
        details=scored.details,
    )
