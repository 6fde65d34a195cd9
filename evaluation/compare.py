"""Paired comparison of two evaluation reports on the same examples: is the challenger really better?

Both reports must score the same examples of the same task, split and dataset version. Examples are
paired by ``id`` and the per-example difference is ``d_i = challenger score - baseline score``. The
uncertainty of ``mean(d)`` comes from a paired bootstrap over examples, which keeps the correlation
between the two models' scores on the same example (a hard example is hard for both).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from evaluation.report import EvaluationReport, ScoredPrediction

WHOLE_SET_KEY = "task"
_MAX_CHUNK_ELEMENTS = 1 << 22  # resampled indices held at once: 32 MiB of int64


@dataclass(frozen=True)
class SliceDelta:
    """Mean scores of both models on one slice of the paired examples.

    A slice is ``(key, value)``: ``("task", <task>)`` is every example; any other slice is the examples
    whose ``tags[key] == value``. ``mean_difference`` is ``challenger_mean - baseline_mean``, which
    equals the mean of the per-example differences on the slice.
    """

    key: str
    value: str
    examples: int
    challenger_mean: float
    baseline_mean: float
    mean_difference: float


@dataclass(frozen=True)
class Comparison:
    """Paired bootstrap comparison of a challenger against a baseline on the same examples.

    ``mean_difference`` is ``mean(d)`` with ``d_i = challenger score - baseline score`` for example ``i``.
    ``[ci_low, ci_high]`` is the percentile bootstrap interval of ``mean(d)`` at ``confidence``.
    ``p_value`` is the two-sided paired bootstrap p-value for "no difference" (see :func:`compare`).
    ``slices`` holds the per-slice means, sorted by ``(key, value)``.
    """

    metric: str
    examples: int
    challenger_mean: float
    baseline_mean: float
    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float
    resamples: int
    slices: list[SliceDelta]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, for logging."""
        return asdict(self)

    def summary(self) -> str:
        """One line, e.g. ``+0.043 [0.021, 0.066] 95% CI, p=0.0004, n=200``."""
        return (
            f"{self.mean_difference:+.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] "
            f"{self.confidence * 100:g}% CI, p={self.p_value:.2g}, n={self.examples}"
        )


def compare(
    challenger: EvaluationReport,
    baseline: EvaluationReport,
    *,
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Comparison:
    """Compare ``challenger`` with ``baseline`` on the examples both scored, paired by ``id``.

    Definitions, with ``d_i = challenger score - baseline score`` over the ``n`` paired examples:

    - Bootstrap: ``resamples`` times, draw ``n`` example indices uniformly with replacement
      (``numpy.random.default_rng(seed).integers(0, n, size=n)`` per resample, in order) and take
      ``mean*``, the mean of ``d`` over the drawn indices.
    - Confidence interval: the percentile interval of the ``mean*`` values, i.e. their
      ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (``numpy.quantile``, linear).
    - p-value: two-sided, for H0 "no difference", from the bootstrap distribution shifted to mean 0:
      ``p = (#{|mean* - mean(d)| >= |mean(d)|} + 1) / (resamples + 1)``. It is never 0; its smallest
      value is ``1 / (resamples + 1)``.

    When every ``d_i`` is 0 the interval is ``(0, 0)`` and ``p = 1``.

    Raises ``ValueError`` when the reports are not comparable: different task, split, primary metric,
    or dataset hash (when both are set); duplicate ids; different id sets; no examples; or a tag with
    different values in the two reports for the same example.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    metric = _check_comparable(challenger, baseline)
    ids, challenger_scores, baseline_scores = _pair(challenger, baseline)
    differences = challenger_scores - baseline_scores
    mean_difference = float(differences.mean())

    if not differences.any():
        ci_low, ci_high, p_value = 0.0, 0.0, 1.0
    else:
        means = _bootstrap_means(differences, resamples, np.random.default_rng(seed))
        alpha = 1 - confidence
        ci_low, ci_high = (float(q) for q in np.quantile(means, [alpha / 2, 1 - alpha / 2]))
        extreme = int(np.count_nonzero(np.abs(means - mean_difference) >= abs(mean_difference)))
        p_value = (extreme + 1) / (resamples + 1)

    tags = _merged_tags(ids, challenger.predictions, baseline.predictions)
    return Comparison(
        metric=metric,
        examples=len(ids),
        challenger_mean=float(challenger_scores.mean()),
        baseline_mean=float(baseline_scores.mean()),
        mean_difference=mean_difference,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        confidence=confidence,
        resamples=resamples,
        slices=_slices(challenger.task, tags, challenger_scores, baseline_scores),
    )


def _check_comparable(challenger: EvaluationReport, baseline: EvaluationReport) -> str:
    """Raise unless both reports score the same task, split, dataset version and metric; return the metric."""
    differences = []
    if challenger.task != baseline.task:
        differences.append(f"task {challenger.task!r} vs {baseline.task!r}")
    if challenger.split != baseline.split:
        differences.append(f"split {challenger.split!r} vs {baseline.split!r}")
    if challenger.dataset_hash and baseline.dataset_hash and challenger.dataset_hash != baseline.dataset_hash:
        differences.append(f"dataset_hash {challenger.dataset_hash!r} vs {baseline.dataset_hash!r}")
    metric = next(iter(challenger.metrics), None)
    baseline_metric = next(iter(baseline.metrics), None)
    if metric and baseline_metric and metric != baseline_metric:
        differences.append(f"primary metric {metric!r} vs {baseline_metric!r}")
    if differences:
        raise ValueError("cannot compare reports (challenger vs baseline): " + "; ".join(differences))
    return metric or baseline_metric or "score"


def _pair(
    challenger: EvaluationReport, baseline: EvaluationReport
) -> tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Ids in the challenger's order, with both reports' scores in that order."""
    challenger_by_id = _by_id(challenger.predictions, "challenger")
    baseline_by_id = _by_id(baseline.predictions, "baseline")
    only_challenger = challenger_by_id.keys() - baseline_by_id.keys()
    only_baseline = baseline_by_id.keys() - challenger_by_id.keys()
    if only_challenger or only_baseline:
        raise ValueError(
            f"reports score different examples: {len(only_challenger)} ids only in the challenger "
            f"(e.g. {_examples(only_challenger)}), {len(only_baseline)} ids only in the baseline "
            f"(e.g. {_examples(only_baseline)})"
        )
    if not challenger_by_id:
        raise ValueError("reports have no predictions to compare")
    ids = list(challenger_by_id)
    challenger_scores = np.array([challenger_by_id[i].score for i in ids], dtype=np.float64)
    baseline_scores = np.array([baseline_by_id[i].score for i in ids], dtype=np.float64)
    return ids, challenger_scores, baseline_scores


def _by_id(predictions: list[ScoredPrediction], which: str) -> dict[str, ScoredPrediction]:
    by_id: dict[str, ScoredPrediction] = {}
    duplicates: set[str] = set()
    for prediction in predictions:
        if prediction.id in by_id:
            duplicates.add(prediction.id)
        by_id[prediction.id] = prediction
    if duplicates:
        raise ValueError(f"{which} report has {len(duplicates)} duplicate ids (e.g. {_examples(duplicates)})")
    return by_id


def _examples(ids: Iterable[str], limit: int = 3) -> str:
    shown = sorted(ids)[:limit]
    return ", ".join(repr(i) for i in shown) if shown else "none"


def _bootstrap_means(
    differences: npt.NDArray[np.float64], resamples: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Mean of ``differences`` over each of ``resamples`` index draws with replacement, drawn in chunks.

    Drawing ``(rows, n)`` indices at once consumes the generator exactly like ``rows`` draws of ``n``,
    so the result does not depend on the chunk size.
    """
    n = len(differences)
    rows = max(1, _MAX_CHUNK_ELEMENTS // n)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, rows):
        stop = min(start + rows, resamples)
        indices = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = differences[indices].mean(axis=1)
    return means


def _merged_tags(
    ids: list[str], challenger: list[ScoredPrediction], baseline: list[ScoredPrediction]
) -> list[dict[str, str]]:
    """Per paired example (in ``ids`` order), the union of both reports' tags; they must agree where both set."""
    challenger_tags = {p.id: p.tags for p in challenger}
    baseline_tags = {p.id: p.tags for p in baseline}
    merged = []
    for example_id in ids:
        ours, theirs = challenger_tags[example_id], baseline_tags[example_id]
        for key in ours.keys() & theirs.keys():
            if ours[key] != theirs[key]:
                raise ValueError(
                    f"example {example_id!r} has tag {key!r} = {ours[key]!r} in the challenger "
                    f"but {theirs[key]!r} in the baseline"
                )
        merged.append({**theirs, **ours})
    return merged


def _slices(
    task: str,
    tags: list[dict[str, str]],
    challenger_scores: npt.NDArray[np.float64],
    baseline_scores: npt.NDArray[np.float64],
) -> list[SliceDelta]:
    """The whole-set slice ``("task", task)`` plus one slice per tag ``(key, value)``, sorted by ``(key, value)``.

    A tag ``("task", task)`` would name the whole-set slice; the whole set takes that name.
    """
    members: dict[tuple[str, str], list[int]] = {}
    for index, example_tags in enumerate(tags):
        for key, value in example_tags.items():
            members.setdefault((key, value), []).append(index)
    members[(WHOLE_SET_KEY, task)] = list(range(len(tags)))
    slices = []
    for (key, value), indices in sorted(members.items()):
        challenger_mean = float(challenger_scores[indices].mean())
        baseline_mean = float(baseline_scores[indices].mean())
        slices.append(
            SliceDelta(
                key=key,
                value=value,
                examples=len(indices),
                challenger_mean=challenger_mean,
                baseline_mean=baseline_mean,
                mean_difference=float((challenger_scores[indices] - baseline_scores[indices]).mean()),
            )
        )
    return slices
