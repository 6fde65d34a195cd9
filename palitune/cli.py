"""The ``palitune`` command: every stage by hand, without Dagster."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data.workspace import Workspace


def _base_build(args: argparse.Namespace, ws: Workspace) -> int:
    from models.loading import TINY_DIR_NAME
    from models.tiny_base import TinyBaseSpec, build_tiny_base

    out = Path(args.out) if args.out else ws.models / TINY_DIR_NAME
    print(build_tiny_base(out, TinyBaseSpec(seed=args.seed)))
    return 0


def _data_synth(args: argparse.Namespace, ws: Workspace) -> int:
    from data.synthetic import SplitSizes, write_synthetic

    out = Path(args.out) if args.out else ws.datasets / args.task
    sizes = SplitSizes(args.train, args.val, args.test)
    print(write_synthetic(args.task, out, seed=args.seed, sizes=sizes, image_size=args.image_size))
    return 0


def _data_repro(args: argparse.Namespace, ws: Workspace) -> int:
    from data.pipeline import reproduce
    from data.versioning import ensure_repo

    ensure_repo(ws.root, ws.dvc_remote)
    for path in reproduce(ws.root, args.task or None):
        print(path)
    return 0


def _data_validate(args: argparse.Namespace, ws: Workspace) -> int:
    from data.validate import validate_dataset

    report = validate_dataset(Path(args.dataset))
    for problem in report.problems:
        print(problem)
    examples = sum(n for per_task in report.counts.values() for n in per_task.values())
    verdict = "valid" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"{args.dataset}: {examples} examples, {verdict}", file=sys.stderr)
    return 0 if report.ok else 1


def _data_version(args: argparse.Namespace, ws: Workspace) -> int:
    from data.versioning import ensure_repo, version_dataset

    ensure_repo(ws.root, ws.dvc_remote)
    version = version_dataset(ws.root, Path(args.dataset))
    print(json.dumps({"hash": version.hash, "files": version.files, "dvc_file": str(version.dvc_file)}))
    return 0


def _data_checkout(args: argparse.Namespace, ws: Workspace) -> int:
    from data.versioning import ensure_repo, restore_dataset

    ensure_repo(ws.root, ws.dvc_remote)
    print(restore_dataset(ws.root, args.hash, Path(args.out)).path)
    return 0


def _data_ingest(args: argparse.Namespace, ws: Workspace) -> int:
    from data.schema import DataError
    from data.sources import ingest

    columns = dict(item.split("=", 1) for item in args.column) if args.column else None
    try:
        out = ingest(
            args.format,
            Path(args.src),
            Path(args.out),
            task=args.task,
            columns=columns,
            config=args.config,
            split_ratios=args.split_ratios,
            seed=args.seed,
            eval_only=args.eval_only,
            keep_unlabelled=args.keep_unlabelled,
        )
    except DataError:
        raise
    except ValueError as err:  # arguments that do not fit the source (a task its format lacks, ...)
        raise DataError(args.src, None, None, str(err)) from None
    manifest = json.loads((out / "manifest.json").read_text())
    source, splits = manifest["source"], ("train", "val", "test")
    counts = {split: manifest["counts"].get(split, {}) for split in splits}
    read = {split: source["read"][split] for split in splits}
    report = {"format": source["format"], **counts, "read": read}
    print(json.dumps({"dataset": str(out), **report, "dropped": source["dropped"], "carved": source["carved"]}))
    return 0


def _split_ratios(text: str) -> tuple[float, ...]:
    """``0.8,0.1,0.1`` -> (0.8, 0.1, 0.1); ``ingest`` checks that they sum to 1."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers such as 0.8,0.1,0.1, got {text!r}") from None


def _train(args: argparse.Namespace, ws: Workspace) -> int:
    from training.train import main

    return main(["--config", args.config, *args.overrides])


def _evaluate(args: argparse.Namespace, ws: Workspace) -> int:
    from evaluation.run import evaluate
    from models.loading import resolve_base

    base = resolve_base(args.model, ws.models)
    report = evaluate(
        base,
        Path(args.dataset),
        adapter_dir=Path(args.adapter) if args.adapter else None,
        split=args.split,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        progress=True,
    )
    if args.output:
        from evaluation.pictures import write_pictures

        report.write(Path(args.output))
        write_pictures(report, Path(args.dataset), Path(args.output))
    print(json.dumps(report.summary(), indent=2))
    return 0


def _evaluate_score(args: argparse.Namespace, ws: Workspace) -> int:
    from evaluation.score import read_predictions, score_records

    path = Path(args.predictions)
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


def _registry_show(args: argparse.Namespace, ws: Workspace) -> int:
    from palitune.summary import print_lineage

    return print_lineage(ws, args.name)


def _registry_rollback(args: argparse.Namespace, ws: Workspace) -> int:

    from registry.models import registered_model
    from registry.promotion import rollback
    from registry.tracking import client_for

    client = client_for(ws.tracking_uri)
    registered_model(client, args.name)  # an unknown name is said as such, not as a missing alias
    try:
        new, old = rollback(client, args.name)
    except ValueError as err:
        print(f"palitune: error: {err}", file=sys.stderr)
        return 1
    print(f"{args.name}: champion is v{new} again (was v{old}, now previous-champion)")
    return 0


def _registry_promote(args: argparse.Namespace, ws: Workspace) -> int:

    from palitune.promote import promote
    from registry.promotion import PromotionPolicy
    from registry.tracking import client_for

    floors = {}
    for item in args.floor:
        metric, _, value = item.partition("=")
        try:
            floors[metric] = float(value)
        except ValueError:
            print(f"palitune: error: --floor {item!r}: expected METRIC=NUMBER, e.g. vqa_accuracy=0.5", file=sys.stderr)
            return 2
    policy = PromotionPolicy(
        margin=args.margin,
        slice_tolerance=args.slice_tolerance,
        min_slice_examples=args.min_slice_examples,
        floors=floors,
    )
    client = client_for(ws.tracking_uri)
    try:
        decision, holder, dataset_dir = promote(ws, client, args.name, version=args.version, policy=policy)
    except ValueError as err:
        print(f"palitune: error: {err}", file=sys.stderr)
        return 1
    verdict = "promoted" if decision.promote else "not promoted"
    print(f"{args.name}: {verdict} (scored on {dataset_dir})\n  {decision.reason}")
    print(f"  champion: {'v' + holder if holder else 'none'}")
    return 0 if decision.promote else 3


def _predict(args: argparse.Namespace, ws: Workspace) -> int:
    if len(args.prompt) not in (1, len(args.image)):
        print("palitune: error: give one --prompt, or one per --image", file=sys.stderr)
        return 2
    prompts = args.prompt * len(args.image) if len(args.prompt) == 1 else args.prompt
    if args.model.startswith(("models:/", "runs:/")):
        import mlflow
        import pandas as pd

        from registry.models import resolve_version
        from registry.tracking import client_for

        uri = ws.tracking_uri
        if args.model.startswith("models:/"):
            resolve_version(client_for(uri), args.model)  # an unknown name or alias, said plainly
        mlflow.set_tracking_uri(uri)
        model = mlflow.pyfunc.load_model(args.model)
        outputs = list(model.predict(pd.DataFrame({"image": args.image, "prompt": prompts})))
    else:
        from models.loading import resolve_base
        from registry.serving import AdapterPredictor

        predictor = AdapterPredictor(
            resolve_base(args.base, ws.models), Path(args.model), max_new_tokens=args.max_new_tokens
        )
        outputs = predictor.predict(args.image, prompts)
    for output in outputs:
        print(output)
    return 0


def _registry_export(args: argparse.Namespace, ws: Workspace) -> int:
    import tempfile

    from models.loading import resolve_base
    from registry.models import download_adapter, resolve_version
    from registry.serving import export_merged
    from registry.tracking import client_for

    if not args.merged:
        print(
            "palitune: error: only --merged exports are supported (the adapter alone is the version)", file=sys.stderr
        )
        return 2
    client = client_for(ws.tracking_uri)
    version = resolve_version(client, args.ref)  # NAME@ALIAS or NAME@VERSION; unknown ones raise
    with tempfile.TemporaryDirectory(prefix="palitune-export-") as scratch:
        adapter = download_adapter(client, version, Path(scratch))
        base = resolve_base(version.tags.get("palitune.base_model", "tiny"), ws.models)
        print(export_merged(base, adapter, Path(args.out)))
    return 0


def _summary(args: argparse.Namespace, ws: Workspace) -> int:
    from palitune.summary import print_summary

    return print_summary(ws, task=args.task)


def build_parser() -> argparse.ArgumentParser:
    from data.sources import DEFAULT_RATIOS, FORMATS
    from data.tasks import TASKS

    parser = argparse.ArgumentParser(prog="palitune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    base = sub.add_parser("base", help="base models").add_subparsers(dest="action", required=True)
    build = base.add_parser("build", help="write the tiny local PaliGemma under the workspace")
    build.add_argument("--out", help="folder (default: <workspace>/models/tiny-paligemma)")
    build.add_argument("--seed", type=int, default=0)
    build.set_defaults(func=_base_build)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="action", required=True)
    synth = data.add_parser("synth", help="render a synthetic dataset of one task")
    synth.add_argument("--task", default="vqa", choices=sorted(TASKS), help="task to render (default vqa)")
    synth.add_argument("--out", help="folder (default: <workspace>/datasets/<task>)")
    synth.add_argument("--seed", type=int, default=0, help="every random choice derives from it (default 0)")
    synth.add_argument("--image-size", type=int, default=64, help="image width and height in pixels (default 64)")
    for split, n in (("train", 2000), ("val", 100), ("test", 200)):
        synth.add_argument(f"--{split}", type=int, default=n, help=f"{split} examples (default {n})")
    synth.set_defaults(func=_data_synth)
    repro = data.add_parser(
        "repro",
        help="render synthetic datasets through the workspace's DVC pipeline (params.yaml -> synthetic/TASK)",
    )
    repro.add_argument(
        "--task",
        action="append",
        choices=sorted(TASKS),
        help="task to render (repeatable; default: every task in params.yaml)",
    )
    repro.set_defaults(func=_data_repro)
    ingest = data.add_parser(
        "ingest",
        help="convert a Roboflow export, COCO, or a Hugging Face dataset folder into a dataset",
    )
    ingest.add_argument("--format", choices=FORMATS, help="layout of the source (default: detected from its files)")
    ingest.add_argument("src", help="source folder, as downloaded")
    ingest.add_argument("--out", required=True, help="dataset folder to write (replaced only on success)")
    ingest.add_argument("--task", help="task of the examples (default: inferred from the source)")
    ingest.add_argument(
        "--column",
        action="append",
        metavar="ROLE=NAME",
        help="hf only: map a role (image, question, answers, captions) to a column",
    )
    ingest.add_argument("--config", metavar="NAME", help="hf only: the config of a hub folder that has several")
    ingest.add_argument(
        "--split-ratios",
        type=_split_ratios,
        default=(DEFAULT_RATIOS.train, DEFAULT_RATIOS.val, DEFAULT_RATIOS.test),
        metavar="TRAIN,VAL,TEST",
        help="shares used to carve the splits a source lacks, grouped by image (default "
        f"{DEFAULT_RATIOS.train:g},{DEFAULT_RATIOS.val:g},{DEFAULT_RATIOS.test:g}; they sum to 1)",
    )
    ingest.add_argument("--seed", type=int, default=0, help="seed of that carving (default 0)")
    ingest.add_argument("--eval-only", action="store_true", help="put every example in test (train stays empty)")
    ingest.add_argument(
        "--keep-unlabelled",
        action="store_true",
        help="write rows without a label to unlabelled.jsonl for prediction (default: drop and count them)",
    )
    ingest.set_defaults(func=_data_ingest)
    validate = data.add_parser("validate", help="report every problem of a dataset folder (exit 1 if any)")
    validate.add_argument("dataset")
    validate.set_defaults(func=_data_validate)
    version = data.add_parser("version", help="validate a dataset folder, DVC-version it and push it")
    version.add_argument("dataset")
    version.set_defaults(func=_data_version)
    checkout = data.add_parser("checkout", help="restore a dataset version from its hash")
    checkout.add_argument("hash")
    checkout.add_argument("--out", required=True)
    checkout.set_defaults(func=_data_checkout)

    train = sub.add_parser("train", help="fine-tune (same as python -m training.train)")
    train.add_argument("--config", required=True)
    train.add_argument("overrides", nargs="*", metavar="key.sub=value")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser("evaluate", help="evaluation").add_subparsers(dest="action", required=True)
    run = evaluate.add_parser("run", help="generate on a split and score it")
    run.add_argument("--model", required=True, help="'tiny', a hub id or a local path")
    run.add_argument("--adapter", help="adapter folder to apply to the model")
    run.add_argument("--dataset", required=True)
    run.add_argument("--split", default="test")
    run.add_argument("--batch-size", type=int, default=64, help="prompts per generate call (default 64)")
    run.add_argument("--max-new-tokens", type=int, help="generation budget (default: the task's)")
    run.add_argument("--output", help="folder for report.json, predictions.jsonl and pictures (examples.png, ...)")
    run.set_defaults(func=_evaluate)
    score = evaluate.add_parser(
        "score",
        help="score a predictions file of any model: one JSON object per line with 'prediction' and the targets",
    )
    score.add_argument("--task", required=True, choices=sorted(TASKS))
    score.add_argument(
        "--predictions",
        required=True,
        help="JSONL: prediction plus answers (vqa, docvqa, ocr), answer(s) (chartqa), fields (extract), "
        "references (caption), boxes + width + height (detect)",
    )
    score.add_argument("--output", help="write the metrics and per-example scores (input order) as JSON here")
    score.set_defaults(func=_evaluate_score)

    registry = sub.add_parser("registry", help="model versions: lineage, promotion, rollback, export").add_subparsers(
        dest="action", required=True
    )
    show = registry.add_parser("show", help="every version of a registered model with its aliases and lineage")
    show.add_argument("name", help="registered model, e.g. palitune-vqa")
    show.set_defaults(func=_registry_show)
    promote = registry.add_parser(
        "promote",
        help="score challenger and champion on the challenger's test set; move champion if it wins "
        "(exit 0 promoted, 3 kept)",
    )
    promote.add_argument("name", help="registered model, e.g. palitune-vqa")
    promote.add_argument("--version", help="the version to judge (default: the one holding alias 'challenger')")
    promote.add_argument("--margin", type=float, default=0.0, help="the gain's CI lower bound must exceed this")
    promote.add_argument("--slice-tolerance", type=float, default=0.05, help="largest mean loss allowed on a slice")
    promote.add_argument("--min-slice-examples", type=int, default=20, help="smaller slices are not judged")
    promote.add_argument(
        "--floor", action="append", default=[], metavar="METRIC=VALUE", help="absolute minimum (repeatable)"
    )
    promote.set_defaults(func=_registry_promote)
    back = registry.add_parser("rollback", help="give champion back to previous-champion (the two aliases swap)")
    back.add_argument("name", help="registered model, e.g. palitune-vqa")
    back.set_defaults(func=_registry_rollback)
    export = registry.add_parser("export", help="the adapter of NAME@ALIAS merged into its base, one safetensors model")
    export.add_argument("ref", help="NAME@ALIAS (palitune-vqa@champion) or NAME@VERSION")
    export.add_argument("--merged", action="store_true", help="merge the LoRA adapter into the base (required)")
    export.add_argument("--out", required=True, help="folder to write (replaced only when complete)")
    export.set_defaults(func=_registry_export)

    predict = sub.add_parser("predict", help="answer a prompt about an image with a registered model or an adapter")
    predict.add_argument(
        "--model", required=True, help="models:/palitune-vqa@champion (MLflow), or an adapter folder (with --base)"
    )
    predict.add_argument("--base", default="tiny", help="base model of an adapter folder (default tiny)")
    predict.add_argument("--image", action="append", required=True, help="image file (repeatable)")
    predict.add_argument("--prompt", action="append", required=True, help="e.g. 'answer en what colour is the circle?'")
    predict.add_argument("--max-new-tokens", type=int, default=32, help="adapter folders only (default 32)")
    predict.set_defaults(func=_predict)

    summary = sub.add_parser("summary", help="where to look: MLflow run, model versions, aliases, data")
    summary.add_argument("--task", default="vqa")
    summary.set_defaults(func=_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    from data.pipeline import PipelineError
    from data.schema import DataError
    from models.loading import ModelError
    from registry.errors import RegistryError
    from training.config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args, Workspace.from_env()))
    except (
        DataError,
        PipelineError,
        ConfigError,
        ModelError,
        RegistryError,
    ) as err:  # bad input: the message says where and why
        print(f"palitune: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
