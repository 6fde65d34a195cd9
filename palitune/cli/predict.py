"""``palitune predict``: answer prompts about images with a registered model or an adapter folder.

One line per image: the generated text, or for a segment model a JSON object
``{"image", "text", "objects": [{"label", "box": [x0, y0, x1, y1], "mask": COCO RLE}]}``, the
objects in the image's pixels. A segment model is refused (exit 1) when the mask codec in force
is not the one that encoded its training data.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from data.workspace import Workspace
from palitune.cli.common import Subparsers, fail

FALLBACK_MAX_NEW_TOKENS = 32  # an adapter folder that does not say which task it was trained on


def add_commands(sub: Subparsers) -> None:
    """Add ``predict`` to the top-level subparsers ``sub``."""
    predict = sub.add_parser("predict", help="answer a prompt about an image with a registered model or an adapter")
    predict.add_argument(
        "--model", required=True, help="models:/palitune-vqa@champion (MLflow), or an adapter folder (with --base)"
    )
    predict.add_argument("--base", default="tiny", help="base model of an adapter folder (default tiny)")
    predict.add_argument("--image", action="append", required=True, help="image file (repeatable)")
    predict.add_argument("--prompt", action="append", required=True, help="e.g. 'answer en what colour is the circle?'")
    predict.add_argument(
        "--max-new-tokens",
        type=int,
        help="adapter folders only (default: the budget of the task the folder was trained on, "
        f"else {FALLBACK_MAX_NEW_TOKENS})",
    )
    predict.set_defaults(func=_predict)


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

    if len(args.prompt) not in (1, len(args.image)):
        return fail("give one --prompt, or one per --image", 2)
    prompts = args.prompt * len(args.image) if len(args.prompt) == 1 else args.prompt
    try:
        answers = _answers(args, ws, prompts)
    except MaskCodecError as err:
        return fail(f"{args.model}: {err}")
    for image, answer in zip(args.image, answers, strict=True):
        if "objects" in answer:
            print(json.dumps({"image": image, **answer}, ensure_ascii=False))
        else:
            print(answer["text"])
    return 0


def _answers(args: argparse.Namespace, ws: Workspace, prompts: list[str]) -> list[dict[str, Any]]:
    if args.model.startswith(("models:/", "runs:/")):
        from registry.serving import answer_registered

        return answer_registered(ws.tracking_uri, args.model, args.image, prompts)
    from models.loading import resolve_base
    from registry.serving import AdapterPredictor, require_adapter_codec

    adapter = Path(args.model)
    budget = args.max_new_tokens if args.max_new_tokens is not None else adapter_budget(adapter)
    require_adapter_codec(adapter)  # a refused codec is said before any base is built or loaded
    predictor = AdapterPredictor(resolve_base(args.base, ws.models), adapter, max_new_tokens=budget)
    return predictor.answers(args.image, prompts)
