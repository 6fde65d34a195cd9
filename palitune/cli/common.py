"""What every stage's commands share: the subparsers they join, the handler type, the exit
codes, the log, early checks of paths and names, and progress bars.

Every command follows one exit-code scheme (``EXIT_CODES``), so a script or an orchestrator can
tell "fix the input" (2) from "retry may help" (1) without reading messages. Human messages go
through ``logging`` to stderr (``-v``/``-q`` choose how many); data a command prints (paths,
JSON) goes to stdout alone, so it can be piped.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from data.workspace import Workspace

Subparsers = argparse._SubParsersAction  # what ``add_subparsers`` returns; argparse names no public type
Handler = Callable[[argparse.Namespace, Workspace], int]

OK, FAILED, BAD_INPUT, KEPT_OUT = 0, 1, 2, 3
EXIT_CODES = (
    (OK, "done"),
    (BAD_INPUT, "bad input: a missing file or folder, an unknown name, an invalid config, dataset or flag"),
    (KEPT_OUT, "kept out by a promotion gate (registry promote: the champion stays)"),
    (FAILED, "anything else (a failed push, a crash): a retry may help"),
)

log = logging.getLogger("palitune")
MLFLOW_STORE_LOGGER = "mlflow.store.db.utils"
T = TypeVar("T")


class BadInput(ValueError):
    """Input the user can fix (a missing path, an unknown name): the command exits ``BAD_INPUT``
    with the message in one line."""


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the ``sys.stderr`` of the moment, so redirected or captured stderr gets the log."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _Formatter(logging.Formatter):
    """``palitune: error: ...`` for warnings and errors (the shape argparse uses), the bare message
    for information."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"palitune: {record.levelname.lower()}: {message}"
        return message


def configure_logging(verbosity: int) -> None:
    """Send palitune's log to stderr: ``verbosity`` -1 (``-q``) warnings and errors only, 0
    information too, 1 or more (``-v``) debug lines as well. Called once per ``main``."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    for handler in list(log.handlers):
        log.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    # MLflow says "Creating initial MLflow database tables" at INFO whenever a command opens a
    # store for the first time: noise between the command's own lines, unless -v asks for it.
    logging.getLogger(MLFLOW_STORE_LOGGER).setLevel(logging.NOTSET if verbosity > 0 else logging.WARNING)


def fail(message: object, code: int = FAILED) -> int:
    """Log ``palitune: error: <message>`` to stderr; returns ``code`` (the exit status)."""
    log.error("%s", message)
    return code


def require_file(path: str | Path, what: str) -> Path:
    """``path`` as a ``Path``, checked to be a file before anything loads.

    Raises:
        BadInput: it is missing or not a file; the message names ``what`` and the path.
    """
    found = Path(path)
    if not found.is_file():
        state = "is a folder, not a file" if found.is_dir() else "no such file"
        raise BadInput(f"{what} {found}: {state}")
    return found


def require_dir(path: str | Path, what: str) -> Path:
    """``path`` as a ``Path``, checked to be a folder before anything loads.

    Raises:
        BadInput: it is missing or not a folder; the message names ``what`` and the path.
    """
    found = Path(path)
    if not found.is_dir():
        state = "is a file, not a folder" if found.exists() else "no such folder"
        raise BadInput(f"{what} {found}: {state}")
    return found


def progress(items: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """``items``, with a tqdm bar on stderr when stderr is a terminal and the log is not quiet;
    in logs and pipes nothing is drawn."""
    from tqdm.auto import tqdm

    quiet = not sys.stderr.isatty() or log.getEffectiveLevel() > logging.INFO
    yield from tqdm(items, desc=desc, total=total, unit=unit, disable=quiet, file=sys.stderr)
