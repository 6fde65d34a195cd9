"""``palitune evaluate``: generate and score a model, or score any model's predictions."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from data.workspace import Workspace
from palitune.cli.common import Subparsers, log, require_dir, require_file


def add_commands(sub: Subparsers) -> None:
    """Add ``evaluate run|score`` to the top-level subparsers ``sub``."""
    from data.tasks import TASKS

    evaluate = sub.add_parser("evaluate", help="evaluation").add_subparsers(dest="action", required=True)
    run = evaluate.add_parser("run", help="generate on a split and score it")
    run.add_argument("--model", required=True, help="'tiny', a hub id or a local path")
    run.add_argument("--adapter", help="adapter folder to apply to the model")
    run.add_argument("--dataset", required=True, help="dataset folder to generate on")
    run.add_argument("--split", default="test", choices=("train", "val", "test"), help="split to score (default test)")
    run.add_argument("--batch-size", type=int, default=64, help="prompts per generate call (default 64)")
    run.add_argument("--max-new-tokens", type=int, help="generation budget (default: the task's)")
    run.add_argument("--output", help="folder for report.json, predictions.jsonl and pictures (examples.png, ...)")
    run.set_defaults(func=_run)
    score = evaluate.add_parser(
        "score",
        help="score a predictions file of any model: one JSON object per line with 'prediction' and the targets",
    )
    score.add_argument("--task", required=True, choices=sorted(TASKS), help="task whose metrics score the file")
    score.add_argument(
        "--predictions",
        required=True,
        help="JSONL: prediction plus answers (vqa, docvqa, ocr), answer(s) (chartqa), fields (extract), "
        "references (caption), boxes + width + height (detect)",
    )
    score.add_argument("--output", help="write the metrics and per-example scores (input order) as JSON here")
    score.set_defaults(func=_score)


def _run(args: argparse.Namespace, ws: Workspace) -> int:
    from evaluation.run import evaluate
    from models.loading import resolve_base

    dataset = require_dir(args.dataset, "--dataset")  # checked before a model loads
    base = resolve_base(args.model, ws.models)
    report = evaluate(
        base,
        dataset,
        adapter_dir=Path(args.adapter) if args.adapter else None,
        split=args.split,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        progress=log.isEnabledFor(logging.INFO),  # drawn on a terminal only; -q hides it too
    )
    if args.output:
        from evaluation.pictures import write_pictures

        report.write(Path(args.output))
        write_pictures(report, Path(args.dataset), Path(args.output))
    print(json.dumps(report.summary(), indent=2))
    return 0


def _score(args: argparse.Namespace, ws: Workspace) -> int:
    from evaluation.score import read_predictions, score_records

    path = require_file(args.predictions, "--predictions")
    result = score_records(args.task, read_predictions(path), source=path)
    output = {
        "task": result.task,
        "predictions": str(path),
        "examples": len(result.scores),
        "metrics": result.metrics,
        "details": result.details,
        "scores": result.scores,
    }
    text = json.dumps(output, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    summary = {k: v for k, v in output.items() if k != "scores"}
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0
