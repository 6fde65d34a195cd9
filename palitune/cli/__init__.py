"""The ``palitune`` command: every stage by hand, without Dagster."""

from __future__ import annotations

import argparse
import sys

from data.workspace import Workspace
from palitune.cli import base, data, evaluate, predict, registry, summary, train

# Each stage module adds its own subcommands; their order is the order of ``palitune --help``.
STAGES = (base, data, train, evaluate, registry, predict, summary)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``palitune`` command; each parsed command names its handler in ``func``."""
    parser = argparse.ArgumentParser(prog="palitune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        stage.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default: the process's arguments) in the workspace
    ``PALITUNE_HOME`` names.

    Returns:
        The exit status: 0 on success, 1 for bad input (the message on stderr says where and
        why), 2 for a usage error, and what the command documents otherwise (``registry
        promote`` exits 3 when the champion is kept).
    """
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
