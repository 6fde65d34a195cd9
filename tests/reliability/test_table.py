"""docs/reliability.md's tables are the suite's catalogue, and the catalogue names real tests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.reliability.catalogue import FAULTS, SECURITY
from tests.reliability.table import END, README, RELIABILITY, START, render, updated

REPO = Path(__file__).resolve().parents[2]


def test_reliability_tables_are_up_to_date() -> None:
    current = RELIABILITY.read_text(encoding="utf-8")
    assert updated(current) == current, "run: python -m tests.reliability.table"
    assert render() in current


def test_a_table_that_fell_behind_is_rewritten() -> None:
    current = RELIABILITY.read_text(encoding="utf-8")
    row = next(line for line in render().splitlines() if line.startswith("| dataset |"))
    stale = current.replace(row + "\n", "", 1)
    assert stale != current
    assert updated(stale) == current


def test_markers_must_appear_once() -> None:
    with pytest.raises(ValueError, match="expected one"):
        updated(f"{START}\n{END}\n{START}\n")


def test_readme_links_the_tables_and_holds_no_copy_of_them() -> None:
    readme = README.read_text(encoding="utf-8")
    assert "(docs/reliability.md)" in readme
    assert START not in readme and END not in readme


def test_every_listed_test_exists() -> None:
    for node in [f.test for f in FAULTS] + [d.test for d in SECURITY]:
        path, _, name = node.partition("::")
        function = name.split("[")[0]
        tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
        assert function in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}, node
