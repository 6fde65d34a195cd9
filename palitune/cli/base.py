"""``palitune base``: base models."""

from __future__ import annotations

import argparse
from pathlib import Path

from data.workspace import Workspace
from palitune.cli.common import Subparsers


def add_commands(sub: Subparsers) -> None:
    """Add ``base build`` to the top-level subparsers ``sub``."""
    base = sub.add_parser("base", help="base models").add_subparsers(dest="action", required=True)
    build = base.add_parser("build", help="write the tiny local PaliGemma under the workspace")
    build.add_argument("--out", help="folder (default: <workspace>/models/tiny-paligemma)")
    build.add_argument("--seed", type=int, default=0, help="seed of its random weights (default 0)")
    build.set_defaults(func=_build)


def _build(args: argparse.Namespace, ws: Workspace) -> int:
    from models.loading import TINY_DIR_NAME
    from models.tiny_base import TinyBaseSpec, build_tiny_base

    out = Path(args.out) if args.out else ws.models / TINY_DIR_NAME
    print(build_tiny_base(out, TinyBaseSpec(seed=args.seed)))
    return 0
