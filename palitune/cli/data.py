"""``palitune data``: synthetic datasets, ingestion, validation and DVC versions."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from data.workspace import Workspace
from palitune.cli.common import BAD_INPUT, OK, BadInput, Subparsers, log, progress, require_dir


def add_commands(sub: Subparsers) -> None:
    """Add ``data synth|repro|ingest|validate|version|checkout`` to the top-level subparsers ``sub``."""
    from data.tasks import TASKS

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="action", required=True)
    synth = data.add_parser("synth", help="render a synthetic dataset of one task")
    synth.add_argument("--task", default="vqa", choices=sorted(TASKS), help="task to render (default vqa)")
    synth.add_argument("--out", help="folder (default: dvc-data/<task> of the project)")
    synth.add_argument("--seed", type=int, default=0, help="every random choice derives from it (default 0)")
    synth.add_argument("--image-size", type=int, default=64, help="image width and height in pixels (default 64)")
    for split, n in (("train", 2000), ("val", 100), ("test", 200)):
        synth.add_argument(f"--{split}", type=int, default=n, help=f"{split} examples (default {n})")
    synth.set_defaults(func=_synth)
    repro = data.add_parser(
        "repro",
        help="render synthetic datasets through the project's DVC pipeline (params.yaml -> dvc-data/synthetic/TASK)",
    )
    repro.add_argument(
        "--task",
        action="append",
        choices=sorted(TASKS),
        help="task to render (repeatable; default: every task in params.yaml)",
    )
    repro.set_defaults(func=_repro)
    _add_ingest(data)
    validate = data.add_parser("validate", help="report every problem of a dataset folder (exit 2 if any)")
    validate.add_argument("dataset", help="dataset folder (train/val/test.jsonl and their images)")
    validate.set_defaults(func=_validate)
    version = data.add_parser("version", help="validate a dataset folder, DVC-version it and push it")
    version.add_argument("dataset", help="dataset folder to version (it is validated first)")
    _add_remote(version)
    version.set_defaults(func=_version)
    checkout = data.add_parser("checkout", help="restore a dataset version from its hash alone, from the remote")
    checkout.add_argument("hash", help="the dataset version: the 32-hex hash `data version` printed")
    checkout.add_argument(
        "--out", help="empty or new folder to copy it into (default: print where it was restored in the workspace)"
    )
    _add_remote(checkout)
    checkout.set_defaults(func=_checkout)


def _add_remote(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--remote",
        help="DVC remote: a name from the DVC config or a URL/folder (default: PALITUNE_DVC_REMOTE, "
        "else the DVC config's default remote)",
    )


def _add_ingest(data: Subparsers) -> None:
    from data.sources import DEFAULT_RATIOS, FORMATS

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
    ingest.set_defaults(func=_ingest)


def _split_ratios(text: str) -> tuple[float, ...]:
    """``0.8,0.1,0.1`` -> (0.8, 0.1, 0.1); ``ingest`` checks that they sum to 1."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers such as 0.8,0.1,0.1, got {text!r}") from None


def _synth(args: argparse.Namespace, ws: Workspace) -> int:
    from data.synthetic import SplitSizes, write_synthetic

    out = Path(args.out) if args.out else ws.datasets / args.task
    sizes = SplitSizes(args.train, args.val, args.test)
    print(write_synthetic(args.task, out, seed=args.seed, sizes=sizes, image_size=args.image_size))
    return 0


def _repro(args: argparse.Namespace, ws: Workspace) -> int:
    from data.pipeline import reproduce
    from data.versioning import ensure_repo

    ensure_repo(ws.project, ws.dvc_remote)
    for path in reproduce(ws.project, args.task or None):
        print(path)
    return 0


def _validate(args: argparse.Namespace, ws: Workspace) -> int:
    from data.validate import validate_dataset

    report = validate_dataset(require_dir(args.dataset, "dataset"), progress=progress)
    for problem in report.problems:
        print(problem)  # the data of this command: one problem a line, for grep
    examples = sum(n for per_task in report.counts.values() for n in per_task.values())
    verdict = "valid" if report.ok else f"{len(report.problems)} problem(s)"
    log.info("%s: %d examples, %s", args.dataset, examples, verdict)
    return OK if report.ok else BAD_INPUT


def _version(args: argparse.Namespace, ws: Workspace) -> int:
    from data.versioning import ensure_repo, version_dataset

    dataset = require_dir(args.dataset, "dataset")
    ensure_repo(ws.project, ws.dvc_remote)
    version = version_dataset(ws.project, dataset, remote=args.remote, progress=progress)
    print(json.dumps({"hash": version.hash, "files": version.files, "dvc_file": str(version.dvc_file)}))
    return 0


def _checkout(args: argparse.Namespace, ws: Workspace) -> int:
    import shutil

    from data.versioning import checkout_version, ensure_repo

    if not re.fullmatch(r"[0-9a-f]{32}", args.hash):
        raise BadInput(f"{args.hash!r} is not a dataset version: expected the 32-hex hash `data version` printed")
    out = Path(args.out).resolve() if args.out else None
    if out is not None and out.exists() and any(out.iterdir()):
        raise BadInput(f"--out {args.out}: exists and is not empty")
    ensure_repo(ws.project, ws.dvc_remote)
    version = checkout_version(ws, args.hash, remote=args.remote)
    if out is None or out == version.path:
        print(version.path)
    else:
        shutil.copytree(version.path, out, dirs_exist_ok=True)
        print(out)
    return 0


def _ingest(args: argparse.Namespace, ws: Workspace) -> int:
    from data.schema import DataError
    from data.sources import ingest

    require_dir(args.src, "source")
    bad = [item for item in args.column or () if "=" not in item]
    if bad:
        raise BadInput(f"--column {bad[0]!r}: expected ROLE=NAME, e.g. question=query")
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
            progress=progress,  # a bar per split on a terminal; nothing in logs or with -q
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
