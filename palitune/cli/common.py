"""What every stage's commands share: the subparsers they join, the handler type, errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from data.workspace import Workspace

Subparsers = argparse._SubParsersAction  # what ``add_subparsers`` returns; argparse names no public type
Handler = Callable[[argparse.Namespace, Workspace], int]


def fail(message: object, code: int = 1) -> int:
    """Print ``palitune: error: <message>`` to stderr; returns ``code`` (the exit status)."""
    print(f"palitune: error: {message}", file=sys.stderr)
    return code
