"""The import graph: dependencies point down only (DESIGN.md "Dependency rules").

Every import of the source packages is read, module-level and inside functions alike, so a
late import cannot hide an upward edge.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("data", "models", "training", "evaluation", "registry", "palitune", "orchestration")

# what each package may import, besides itself; nothing may import orchestration
ALLOWED = {
    "data": set(),
    "models": {"data"},
    "evaluation": {"data", "models"},
    "training": {"data", "models", "evaluation"},
    "registry": {"data", "models", "evaluation"},
    "palitune": {"data", "models", "training", "evaluation", "registry"},
    "orchestration": {"data", "models", "training", "evaluation", "registry"},
}
# third-party modules only some packages may import: Dagster, DVC, the MLflow registry client
EXCLUSIVE = {
    "dagster": {"orchestration"},
    "dagster_pipes": {"orchestration", "training"},
    "dvc": {"data"},
    "mlflow.tracking": {"registry"},
    "mlflow.MlflowClient": {"registry"},
    "mlflow.entities.model_registry": {"registry"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """Every name ``path`` imports, as dotted paths (``from a import b`` gives ``a`` and ``a.b``)."""
    names = []
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            names.append((stem, node.lineno))
            names += [(f"{stem}.{alias.name}", node.lineno) for alias in node.names]
    return names


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    modules = _modules()
    edges: dict[str, set[str]] = defaultdict(set)
    problems = set()
    for module, path in modules.items():
        package, where = module.split(".")[0], path.relative_to(REPO)
        for name, line in _imports(path, module):
            for prefix, owners in EXCLUSIVE.items():
                if (name == prefix or name.startswith(prefix + ".")) and package not in owners:
                    problems.add(f"{where}:{line}: {package} imports {name} (only {', '.join(sorted(owners))} may)")
            top = name.split(".")[0]
            if top in PACKAGES and top != package and top not in ALLOWED[package]:
                problems.add(f"{where}:{line}: {package} imports {name}: an upward or sideways edge")
            if name in modules and name != module:
                edges[module].add(name)
    return edges, sorted(problems)


def test_every_dependency_points_down() -> None:
    _, problems = _graph()
    assert not problems, "\n".join(problems)


def test_no_import_cycle_between_modules() -> None:
    edges, _ = _graph()
    state: dict[str, str] = {}
    cycles: list[str] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_the_graph_is_read() -> None:
    """The reader finds the edges it is meant to judge, so an empty problem list means something."""
    edges, _ = _graph()
    assert "data.tasks" in edges["evaluation.score"]
    assert "models.loading" in edges["evaluation.run"]
    assert any(target.startswith("registry.") for target in edges["palitune.cli"])
