"""README's reliability tables are the suite's catalogue, and the catalogue names real tests."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.reliability.catalogue import FAULTS, SECURITY
from tests.reliability.table import README, render, updated

REPO = Path(__file__).resolve().parents[2]


def test_readme_tables_are_up_to_date() -> None:
    current = README.read_text(encoding="utf-8")
    assert updated(current) == current, "run: python -m tests.reliability.table"
    assert render() in current


def test_every_listed_test_exists() -> None:
    for node in [f.test for f in FAULTS] + [d.test for d in SECURITY]:
        path, _, name = node.partition("::")
        function = name.split("[")[0]
        tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
        assert function in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}, node
