"""Evaluate a model (a base, or a base plus adapter) on one split of a dataset version."""

from __future__ import annotations

from pathlib import Path

from data.schema import read_split
from data.tasks import get_task
from data.versioning import recorded_hash
from evaluation.generate import generate_answers
from evaluation.metrics import METRICS
from evaluation.report import EvaluationReport, ScoredPrediction
from training.model_loading import load_for_inference


def evaluate(
    base_ref: str,
    dataset_dir: Path,
    *,
    adapter_dir: Path | None = None,
    split: str = "test",
    batch_size: int = 64,
    max_new_tokens: int = 16,
    limit: int | None = None,
) -> EvaluationReport:
    """Generate on ``split`` and score every example with its task's metric.

    Args:
        base_ref: a resolved base reference (folder or hub id).
        dataset_dir: the dataset version's folder.
        adapter_dir: a trained adapter for ``base_ref``; ``None`` scores the base itself.
        limit: score only the first N examples (smoke runs).
    """
    examples = read_split(dataset_dir, split)[:limit]
    tasks = {e.task for e in examples}
    if len(tasks) != 1:
        raise ValueError(f"{dataset_dir}/{split}.jsonl: expected one task, found {sorted(tasks)}")
    task = get_task(tasks.pop())
    model, processor = load_for_inference(base_ref, adapter_dir)
    outputs = generate_answers(
        model, processor, dataset_dir, examples, batch_size=batch_size, max_new_tokens=max_new_tokens
    )
    metric = METRICS[task.metric]
    predictions = []
    for example, output in zip(examples, outputs, strict=True):
        answers = example.answers or [example.suffix]
        prediction = task.parse_output(output)
        score = metric(prediction, answers)
        predictions.append(ScoredPrediction(example.id, example.prefix, prediction, answers, score))
    value = sum(p.score for p in predictions) / max(len(predictions), 1)
    return EvaluationReport(
        task=task.name,
        split=split,
        model=base_ref if adapter_dir is None else f"{base_ref} + {adapter_dir}",
        dataset_hash=recorded_hash(Path(dataset_dir)),
        metrics={f"{task.name}/{split}/{task.metric}": value},
        predictions=predictions,
    )
