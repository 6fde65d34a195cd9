"""``palitune predict``: answer prompts about images with a registered model or an adapter folder.

The inputs are ``--image`` files (repeatable), every image of an ``--images`` folder, or a
``--jsonl`` file of ``{"image": path, "prompt": ...}`` lines (a relative path is taken in the
JSONL's folder). All of them are checked before any model loads, so a typo costs nothing; a bad
input exits 2 naming the file (and line).

Output: with ``--out FILE.jsonl``, or for ``--images`` and ``--jsonl``, one JSON line per input,
in input order: ``{"image", "prompt", "text"}`` and for a segment model ``"objects": [{"label",
"box": [x0, y0, x1, y1], "mask": COCO RLE}]`` in the image's pixels. Lines are written and
flushed one batch at a time, so an interrupted run keeps every batch that was done. ``--image``
without ``--out`` prints the text alone (a segment model: the JSON object). A segment model is
refused (exit 1) when the mask codec in force is not the one that encoded its training data.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from data.workspace import Workspace
from palitune.cli.common import BAD_INPUT, Subparsers, fail, log

FALLBACK_MAX_NEW_TOKENS = 32  # an adapter folder that does not say which task it was trained on
DEFAULT_BATCH_SIZE = 16
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
REGISTRY_SCHEMES = ("models:/", "runs:/")


class InputError(ValueError):
    """A bad ``predict`` input (exit 2): the message names the file, and the line of a JSONL."""


@dataclass(frozen=True)
class Inputs:
    """The images to answer about, in order, as opened (``paths``) and as reported (``shown``)."""

    paths: list[str]
    shown: list[str]
    prompts: list[str]


def add_commands(sub: Subparsers) -> None:
    """Add ``predict`` to the top-level subparsers ``sub``."""
    predict = sub.add_parser(
        "predict",
        help="answer prompts about images (files, a folder or a JSONL) with a registered model or an adapter",
        description="Answer prompts about images with models:/NAME@ALIAS or an adapter folder, batched; "
        "--images and --jsonl write one JSON line per input.",
    )
    predict.add_argument(
        "--model",
        required=True,
        help="models:/palitune-vqa@champion, models:/NAME/VERSION or runs:/... (MLflow), or an adapter folder "
        "(with --base)",
    )
    predict.add_argument("--base", default="tiny", help="base model of an adapter folder (default tiny)")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", action="append", help="an image file (repeatable)")
    source.add_argument(
        "--images", type=Path, metavar="DIR", help="a folder: every image in it (by name, not recursive)"
    )
    source.add_argument(
        "--jsonl",
        type=Path,
        metavar="FILE",
        help='a file of {"image": path, "prompt": "..."} lines; a relative path is in the file\'s folder',
    )
    predict.add_argument(
        "--prompt",
        action="append",
        help="e.g. 'answer en what colour is the circle?': one for all images, or one per --image "
        "(not with --jsonl, whose lines carry theirs)",
    )
    predict.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write one JSON line per input here (default: stdout), flushed batch by batch",
    )
    predict.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"images per generate call (default {DEFAULT_BATCH_SIZE})",
    )
    predict.add_argument(
        "--max-new-tokens",
        type=int,
        help="adapter folders only (default: the budget of the task the folder was trained on, "
        f"else {FALLBACK_MAX_NEW_TOKENS})",
    )
    predict.set_defaults(func=_predict)


def read_jsonl_inputs(path: Path) -> Inputs:
    """The image/prompt pairs of a JSONL file, each image checked to exist; blank lines skipped.

    Raises:
        InputError: the file is missing, or a line is not a JSON object with a string ``image``
            and ``prompt`` naming an existing file (``FILE:LINE: why``).
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    paths, shown, prompts = [], [], []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except ValueError as err:
                raise InputError(f"{where}: not JSON ({err})") from None
            if not isinstance(row, dict):
                raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
            for key in ("image", "prompt"):
                if not isinstance(row.get(key), str) or not row[key]:
                    raise InputError(f"{where}: {key!r}: missing or not a string")
            image = path.parent / row["image"]
            if not image.is_file():
                raise InputError(f"{where}: image {row['image']!r}: no such file {image}")
            check_image(image, where=f"{where}: image {row['image']!r}")
            paths.append(str(image))
            shown.append(row["image"])
            prompts.append(row["prompt"])
    if not paths:
        raise InputError(f"{path}: no image/prompt lines")
    return Inputs(paths, shown, prompts)


def check_image(path: Path, *, where: str) -> None:
    """Raise ``InputError`` (``where: why``) when ``path`` is not an image PIL can identify.

    Only the header is read (PIL opens lazily), so a large folder is checked in moments; a file
    cut short after its header is found when it is decoded, in its batch.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            pass
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"{where}: not an image ({err})") from None


def folder_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` by name (suffixes ``IMAGE_SUFFIXES``, any case).

    Raises:
        InputError: not a folder, or one without images.
    """
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise InputError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    for path in found:
        check_image(path, where=str(path))
    return found


def gather_inputs(args: argparse.Namespace) -> Inputs:
    """The inputs ``args`` name, every path checked, before anything loads.

    Raises:
        InputError: a missing file or folder, a bad JSONL line, or prompts that do not match.
    """
    prompts: list[str] = args.prompt or []
    if args.jsonl is not None:
        if prompts:
            raise InputError("--prompt is not taken with --jsonl: each line carries its own prompt")
        return read_jsonl_inputs(args.jsonl)
    if args.images is not None:
        images = [str(p) for p in folder_images(args.images)]
        if len(prompts) != 1:
            raise InputError(f"give one --prompt for the {len(images)} images of {args.images}")
    else:
        images = list(args.image)
        missing = [i for i in images if not Path(i).is_file()]
        if missing:
            raise InputError(f"{missing[0]}: no such image file")
        for image in images:
            check_image(Path(image), where=image)
        if len(prompts) not in (1, len(images)):
            raise InputError("give one --prompt, or one per --image")
    return Inputs(images, images, prompts * len(images) if len(prompts) == 1 else prompts)


def adapter_budget(adapter_dir: Path) -> int:
    """The generation budget of the task ``adapter_dir`` was trained on, as its run info file
    (written by training beside the adapter) names it; ``FALLBACK_MAX_NEW_TOKENS`` for a
    folder without one (an adapter trained elsewhere).

    Raises:
        ConfigError: the run info file is there but is not JSON or names no known task.
    """
    from data.tasks import get_task
    from training.config import ConfigError
    from training.train import RUN_INFO_FILE

    path = adapter_dir / RUN_INFO_FILE
    if not path.is_file():
        return FALLBACK_MAX_NEW_TOKENS
    try:
        task = json.loads(path.read_text())["config"]["task"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: config.task: missing or not JSON; give --max-new-tokens") from None
    try:
        return get_task(str(task)).max_new_tokens
    except KeyError as err:
        raise ConfigError(f"{path}: config.task: {err.args[0]}") from None


def _predict(args: argparse.Namespace, ws: Workspace) -> int:
    from data.mask_codec.checkpoint import MaskCodecError
    from registry.serving import answer_in_batches

    try:
        inputs = gather_inputs(args)
        _check_model_and_options(args)
    except InputError as err:
        return fail(err, BAD_INPUT)
    try:
        predictor = _load(args, ws)
    except MaskCodecError as err:  # the model's codes mean masks only under its own codec
        return fail(f"{args.model}: {err}", BAD_INPUT)
    as_jsonl = args.out is not None or args.image is None
    done = 0
    with _output(args.out) as out, _progress(len(inputs.paths)) as bar:
        try:
            for answers in answer_in_batches(predictor, inputs.paths, inputs.prompts, args.batch_size):
                for offset, answer in enumerate(answers):
                    image, prompt = inputs.shown[done + offset], inputs.prompts[done + offset]
                    out.write(_line(image, prompt, answer, as_jsonl) + "\n")
                out.flush()
                done += len(answers)
                bar.update(len(answers))
        except (OSError, ValueError) as err:  # an image cut short after its header, a full disk
            kept = f"; the {done} lines before it are in {args.out}" if args.out is not None else ""
            return fail(f"the batch from {inputs.shown[done]} (input {done + 1} of {len(inputs.paths)}): {err}{kept}")
    return 0


def _line(image: str, prompt: str, answer: dict[str, Any], as_jsonl: bool) -> str:
    """One output line: the JSON record, or (``--image`` to stdout) the text, as before batching."""
    if as_jsonl:
        return json.dumps({"image": image, "prompt": prompt, **answer}, ensure_ascii=False)
    if "objects" in answer:
        return json.dumps({"image": image, **answer}, ensure_ascii=False)
    return str(answer["text"])


def _check_model_and_options(args: argparse.Namespace) -> None:
    """What can be checked of the model and the options without loading anything.

    Raises:
        InputError: a batch size or budget below 1, a missing adapter folder, an ``--out``
            that is a folder.
    """
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if not args.model.startswith(REGISTRY_SCHEMES) and not Path(args.model).is_dir():
        raise InputError(f"{args.model}: no such adapter folder (or give models:/NAME@ALIAS)")
    if args.out is not None and args.out.is_dir():
        raise InputError(f"--out {args.out}: is a folder; give a file such as predictions.jsonl")


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """``path`` opened for writing (its folder made), or stdout."""
    if path is None:
        yield sys.stdout
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        yield out


@contextmanager
def _progress(total: int) -> Iterator[Any]:
    """A tqdm bar on stderr when it is a terminal; silent in logs and pipes."""
    from tqdm.auto import tqdm

    quiet = not sys.stderr.isatty() or log.getEffectiveLevel() > logging.INFO  # -q hides it too
    with tqdm(total=total, desc="predict", unit="img", disable=quiet) as bar:
        yield bar


def _load(args: argparse.Namespace, ws: Workspace) -> Any:
    """The model ``--model`` names, loaded once, answering ``--batch-size`` images per call."""
    if args.model.startswith(REGISTRY_SCHEMES):
        from registry.serving import load_registered

        return load_registered(ws.tracking_uri, args.model, batch_size=args.batch_size)
    from models.loading import resolve_base
    from registry.serving import AdapterPredictor, require_adapter_codec

    adapter = Path(args.model)
    budget = args.max_new_tokens if args.max_new_tokens is not None else adapter_budget(adapter)
    require_adapter_codec(adapter)  # a refused codec is said before any base is built or loaded
    return AdapterPredictor(
        resolve_base(args.base, ws.models), adapter, max_new_tokens=budget, batch_size=args.batch_size
    )
