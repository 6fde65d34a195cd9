"""The ``evaluate.Metric`` every palitune module is: its task's scorer behind evaluate's API.

A module sets what differs (the task whose scorer it runs, its card's texts, its columns,
how they become records, its links); computing is the same for all: the columns become
records (``records``), ``evaluation.score.score_records`` scores them, the metrics come back
unchanged (``metric_outputs``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import datasets
import evaluate

from evaluation.evaluate_modules.records import answer_features, answer_records, metric_outputs
from evaluation.score import ScoreResult, score_records


class PalituneMetric(evaluate.Metric):
    """Scores ``predictions`` against ``references`` with the scorer of ``task``.

    Attributes (named apart from evaluate's own ``description``, ``features``, ...):
        task: the task table entry whose metric the module is.
        card_description, card_citation, card_inputs: the metric card's texts.
        columns: the columns evaluate checks, as a function (``datasets.Features``).
        to_records: ``(predictions, references) -> records`` for ``score_records``.
        links: ``reference_urls`` and ``codebase_urls`` of the card.
    """

    task: ClassVar[str]
    card_description: ClassVar[str]
    card_citation: ClassVar[str]
    card_inputs: ClassVar[str]
    columns: ClassVar[Callable[[], datasets.Features]] = staticmethod(answer_features)
    to_records: ClassVar[Callable[..., list[dict[str, Any]]]] = staticmethod(answer_records)
    links: ClassVar[dict[str, list[str]]] = {}

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=self.card_description,
            citation=self.card_citation,
            inputs_description=self.card_inputs,
            features=type(self).columns(),
            **self.links,
        )

    def _compute(self, predictions: list[Any], references: list[Any], return_details: bool = False) -> dict[str, Any]:
        result = score_records(self.task, type(self).to_records(predictions, references))
        return {**metric_outputs(result, return_details=return_details), **self.extra_outputs(result)}

    def extra_outputs(self, result: ScoreResult) -> dict[str, Any]:
        """Outputs beside the metrics (none unless a module says)."""
        return {}
