"""The task table: each task's prompt prefix, how its target renders to the suffix, how
generated text parses back, and which metric scores it. See DESIGN.md "Tasks".

The metric is named here and implemented in ``evaluation.metrics`` (``data`` imports no
other palitune package).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """How one vision task is phrased for PaliGemma and scored."""

    name: str
    prefix_template: str
    metric: str
    render_suffix: Callable[[str], str] = str.strip
    parse_output: Callable[[str], str] = str.strip

    def prefix(self, **fields: str) -> str:
        """The prompt prefix, e.g. ``answer en what colour is the circle?``."""
        return self.prefix_template.format(**fields)


TASKS: dict[str, Task] = {
    task.name: task
    for task in [
        Task("vqa", "answer en {question}", metric="vqa_accuracy"),
    ]
}


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name raises with the known ones listed."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None
