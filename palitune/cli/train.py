"""``palitune train``: fine-tune, as ``python -m training.train`` does."""

from __future__ import annotations

import argparse

from data.workspace import Workspace
from palitune.cli.common import Subparsers


def add_commands(sub: Subparsers) -> None:
    """Add ``train`` to the top-level subparsers ``sub``."""
    train = sub.add_parser("train", help="fine-tune (same as python -m training.train)")
    train.add_argument("--config", required=True)
    train.add_argument("overrides", nargs="*", metavar="key.sub=value")
    train.set_defaults(func=_train)


def _train(args: argparse.Namespace, ws: Workspace) -> int:
    from training.train import main

    return main(["--config", args.config, *args.overrides])
