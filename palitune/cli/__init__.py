"""The ``palitune`` command: every stage by hand, without Dagster."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

from data.workspace import Workspace
from palitune.cli import base, data, evaluate, pipeline, predict, registry, summary, train
from palitune.cli.common import BAD_INPUT, EXIT_CODES, FAILED, BadInput, configure_logging, fail, log

# Each stage module adds its own subcommands; their order is the order of ``palitune --help``.
STAGES = (base, data, train, evaluate, registry, predict, summary, pipeline)
DISTRIBUTION = "palitune"


def version() -> str:
    """The installed distribution's version (pyproject's ``version``), as pip knows it."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _epilog() -> str:
    lines = "\n".join(f"  {code}  {meaning}" for code, meaning in sorted(EXIT_CODES))
    return f"exit status (every command):\n{lines}\n\nthe workspace is $PALITUNE_HOME (default ./workspace)"


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``palitune`` command; each parsed command names its handler in ``func``."""
    parser = argparse.ArgumentParser(
        prog="palitune", description=__doc__, epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"palitune {version()}", help="print the version")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v", "--verbose", action="count", default=0, help="more messages on stderr (debug lines too)"
    )
    loudness.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in STAGES:
        stage.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default: the process's arguments) in the workspace
    ``PALITUNE_HOME`` names.

    Returns:
        The exit status of ``EXIT_CODES``: 0 done, 2 bad input (a usage error included; the
        message on stderr says where and why, in one line where it can), 3 kept out by a
        promotion gate, 1 anything else.
    """
    from data.pipeline import PipelineError
    from data.schema import DataError
    from data.versioning import PushError
    from models.loading import ModelError
    from registry.errors import UnknownModelError
    from training.config import ConfigError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version (0) and usage errors (2), returned like any status
        return exit_.code if isinstance(exit_.code, int) else FAILED
    configure_logging(-1 if args.quiet else args.verbose)
    ws = Workspace.from_env()
    log.debug("workspace %s, command %s", ws.root, " ".join(argv if argv is not None else sys.argv[1:]))
    try:
        return int(args.func(args, ws))
    except PushError as err:  # the input was fine; the remote was not: a retry may help
        return fail(err, FAILED)
    except (BadInput, DataError, PipelineError, ConfigError, ModelError, UnknownModelError) as err:
        return fail(err, BAD_INPUT)
