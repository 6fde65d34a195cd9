"""Paired bootstrap comparison of two evaluation reports."""

from __future__ import annotations

import random

import numpy as np
import pytest

from evaluation.compare import Comparison, SliceDelta, compare
from evaluation.report import EvaluationReport, ScoredPrediction

METRIC = "vqa/test/vqa_accuracy"


def make_report(
    scores: list[float],
    *,
    ids: list[str] | None = None,
    tags: list[dict[str, str]] | None = None,
    task: str = "vqa",
    split: str = "test",
    dataset_hash: str | None = "abc123",
    model: str = "model",
) -> EvaluationReport:
    ids = ids if ids is not None else [f"ex{i:04d}" for i in range(len(scores))]
    tags = tags if tags is not None else [{} for _ in scores]
    predictions = [
        ScoredPrediction(id=i, prefix="answer en q", prediction="p", answers=["a"], score=s, tags=t)
        for i, s, t in zip(ids, scores, tags, strict=True)
    ]
    mean = sum(scores) / len(scores) if scores else 0.0
    return EvaluationReport(
        task=task, split=split, model=model, dataset_hash=dataset_hash, metrics={METRIC: mean}, predictions=predictions
    )


def better_pair(n: int = 200) -> tuple[EvaluationReport, EvaluationReport]:
    """Challenger right on 80% of the examples, baseline on 50%, correlated per example."""
    rng = np.random.default_rng(123)
    baseline = rng.permutation(np.arange(n) < n // 2).astype(float)
    challenger = baseline.copy()
    wrong = np.flatnonzero(baseline == 0)
    challenger[rng.choice(wrong, size=3 * n // 10, replace=False)] = 1.0
    assert (challenger.mean(), baseline.mean()) == (0.8, 0.5)
    return make_report(challenger.tolist(), model="challenger"), make_report(baseline.tolist(), model="baseline")


def test_clearly_better_challenger_has_interval_above_zero_and_small_p() -> None:
    challenger, baseline = better_pair()
    result = compare(challenger, baseline, resamples=2000)
    assert result.metric == METRIC
    assert result.examples == 200
    assert result.mean_difference == pytest.approx(0.3)
    assert result.challenger_mean - result.baseline_mean == pytest.approx(0.3)
    assert 0 < result.ci_low < result.mean_difference < result.ci_high
    assert result.p_value == pytest.approx(1 / 2001)
    assert result.confidence == 0.95 and result.resamples == 2000


def test_worse_challenger_has_interval_below_zero() -> None:
    challenger, baseline = better_pair()
    result = compare(baseline, challenger, resamples=2000)
    assert result.mean_difference == pytest.approx(-0.3)
    assert result.ci_low < result.ci_high < 0
    assert result.p_value < 0.01


def test_identical_reports_are_a_tie() -> None:
    scores = np.random.default_rng(5).random(50).tolist()
    result = compare(make_report(scores), make_report(scores), resamples=500)
    assert result.mean_difference == 0.0
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert result.p_value == 1.0


def test_noisy_tie_has_interval_containing_zero() -> None:
    rng = np.random.default_rng(7)
    challenger = make_report(rng.random(300).tolist())
    baseline = make_report(rng.random(300).tolist())
    result = compare(challenger, baseline, resamples=2000, seed=3)
    assert result.ci_low < 0 < result.ci_high
    assert result.p_value > 0.05
    assert result.mean_difference != 0.0


def test_same_seed_same_result_other_seed_slightly_different_interval() -> None:
    challenger, baseline = better_pair()
    first = compare(challenger, baseline, resamples=1000, seed=1)
    again = compare(challenger, baseline, resamples=1000, seed=1)
    other = compare(challenger, baseline, resamples=1000, seed=2)
    assert first == again
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    assert other.ci_low == pytest.approx(first.ci_low, abs=0.03)
    assert other.ci_high == pytest.approx(first.ci_high, abs=0.03)
    assert other.mean_difference == first.mean_difference


def reference_bootstrap(
    differences: list[float], resamples: int, seed: int, confidence: float
) -> tuple[float, float, float]:
    """The obvious version: one resample at a time, same generator draws."""
    rng = np.random.default_rng(seed)
    d = np.array(differences)
    observed = d.mean()
    means = []
    for _ in range(resamples):
        indices = rng.integers(0, len(d), size=len(d))
        means.append(d[indices].mean())
    low, high = np.quantile(np.array(means), [(1 - confidence) / 2, (1 + confidence) / 2])
    extreme = sum(1 for m in means if abs(m - observed) >= abs(observed))
    return float(low), float(high), (extreme + 1) / (resamples + 1)


@pytest.mark.parametrize(("n", "confidence"), [(37, 0.95), (201, 0.9)])
def test_interval_and_p_match_slow_reference_exactly(n: int, confidence: float) -> None:
    rng = np.random.default_rng(11)
    challenger_scores = rng.random(n).tolist()
    baseline_scores = (rng.random(n) * 0.9).tolist()
    result = compare(
        make_report(challenger_scores), make_report(baseline_scores), resamples=300, seed=4, confidence=confidence
    )
    differences = [c - b for c, b in zip(challenger_scores, baseline_scores, strict=True)]
    low, high, p_value = reference_bootstrap(differences, 300, 4, confidence)
    assert (result.ci_low, result.ci_high, result.p_value) == (low, high, p_value)


def test_chunked_draws_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    challenger, baseline = better_pair(50)
    whole = compare(challenger, baseline, resamples=300, seed=9)
    monkeypatch.setattr("evaluation.compare._MAX_CHUNK_ELEMENTS", 50 * 7)
    chunked = compare(challenger, baseline, resamples=300, seed=9)
    assert chunked == whole


def test_pairing_is_by_id_not_by_order() -> None:
    challenger, baseline = better_pair()
    shuffled = list(baseline.predictions)
    random.Random(0).shuffle(shuffled)
    assert [p.id for p in shuffled] != [p.id for p in baseline.predictions]
    baseline_shuffled = make_report([p.score for p in shuffled], ids=[p.id for p in shuffled])
    ordered = compare(challenger, baseline, resamples=500)
    reordered = compare(challenger, baseline_shuffled, resamples=500)
    assert reordered == ordered


def test_pairing_keeps_per_example_correlation() -> None:
    # Misaligned pairs lose the per-example correlation: the interval widens by about sqrt(0.41 / 0.21) = 1.4.
    challenger, baseline = better_pair()
    paired = compare(challenger, baseline, resamples=1000)
    rotated_ids = [p.id for p in baseline.predictions[1:] + baseline.predictions[:1]]
    misaligned = make_report([p.score for p in baseline.predictions], ids=rotated_ids)
    unpaired = compare(challenger, misaligned, resamples=1000)
    assert unpaired.mean_difference == pytest.approx(paired.mean_difference)
    assert unpaired.ci_high - unpaired.ci_low > 1.2 * (paired.ci_high - paired.ci_low)


def test_mismatched_ids_are_refused_with_counts() -> None:
    challenger = make_report([1.0, 0.0, 1.0], ids=["a", "b", "c"])
    baseline = make_report([1.0, 0.0, 1.0, 0.0], ids=["a", "b", "x", "y"])
    with pytest.raises(ValueError, match=r"1 ids only in the challenger \(e\.g\. 'c'\), 2 ids only in the baseline"):
        compare(challenger, baseline)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "caption"}, "task 'vqa' vs 'caption'"),
        ({"split": "val"}, "split 'test' vs 'val'"),
        ({"dataset_hash": "def456"}, "dataset_hash 'abc123' vs 'def456'"),
    ],
)
def test_different_task_split_or_dataset_are_refused(changes: dict[str, str], message: str) -> None:
    baseline = make_report([0.0, 1.0], **changes)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"cannot compare reports.*{message}"):
        compare(make_report([1.0, 1.0]), baseline)


def test_missing_dataset_hash_is_not_a_mismatch() -> None:
    result = compare(make_report([1.0, 1.0]), make_report([0.0, 1.0], dataset_hash=None), resamples=10)
    assert result.mean_difference == 0.5


def test_all_differences_are_named_at_once() -> None:
    with pytest.raises(ValueError, match="task 'vqa' vs 'caption'; split 'test' vs 'val'"):
        compare(make_report([1.0]), make_report([1.0], task="caption", split="val"))


@pytest.mark.parametrize("which", ["challenger", "baseline"])
def test_duplicate_ids_are_refused(which: str) -> None:
    duplicated = make_report([1.0, 0.0, 1.0], ids=["a", "b", "a"])
    clean = make_report([1.0, 0.0], ids=["a", "b"])
    reports = (duplicated, clean) if which == "challenger" else (clean, duplicated)
    with pytest.raises(ValueError, match=f"{which} report has 1 duplicate ids \\(e\\.g\\. 'a'\\)"):
        compare(*reports)


def test_empty_reports_and_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="no predictions"):
        compare(make_report([]), make_report([]))
    with pytest.raises(ValueError, match="resamples"):
        compare(make_report([1.0]), make_report([0.0]), resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        compare(make_report([1.0]), make_report([0.0]), confidence=95)


def test_slices_by_tag_are_hand_checked() -> None:
    ids = ["a", "b", "c", "d", "e"]
    tags = [
        {"source": "scan", "lang": "en"},
        {"source": "scan"},
        {"source": "photo", "lang": "en"},
        {"source": "photo", "lang": "de"},
        {"source": "photo"},
    ]
    challenger = make_report([1.0, 1.0, 0.5, 0.0, 1.0], ids=ids, tags=tags)
    baseline = make_report([0.0, 1.0, 1.0, 0.0, 0.5], ids=ids, tags=tags)
    result = compare(challenger, baseline, resamples=100)
    assert [(s.key, s.value, s.examples) for s in result.slices] == [
        ("lang", "de", 1),
        ("lang", "en", 2),
        ("source", "photo", 3),
        ("source", "scan", 2),
        ("task", "vqa", 5),
    ]
    by_name = {(s.key, s.value): s for s in result.slices}
    assert by_name[("lang", "en")] == SliceDelta("lang", "en", 2, 0.75, 0.5, 0.25)
    assert by_name[("lang", "de")] == SliceDelta("lang", "de", 1, 0.0, 0.0, 0.0)
    assert by_name[("source", "scan")] == SliceDelta("source", "scan", 2, 1.0, 0.5, 0.5)
    assert by_name[("source", "photo")] == SliceDelta("source", "photo", 3, 0.5, 0.5, 0.0)
    assert by_name[("task", "vqa")] == SliceDelta("task", "vqa", 5, 0.7, 0.5, 0.2)
    assert by_name[("task", "vqa")].examples == result.examples


def test_slices_use_tags_from_either_report_and_refuse_conflicts() -> None:
    challenger = make_report([1.0, 0.0], ids=["a", "b"], tags=[{}, {}])
    baseline = make_report([0.0, 0.0], ids=["a", "b"], tags=[{"source": "scan"}, {}])
    result = compare(challenger, baseline, resamples=10)
    assert [(s.key, s.value, s.examples, s.mean_difference) for s in result.slices] == [
        ("source", "scan", 1, 1.0),
        ("task", "vqa", 2, 0.5),
    ]
    conflicting = make_report([0.0, 0.0], ids=["a", "b"], tags=[{"source": "photo"}, {}])
    with pytest.raises(ValueError, match="example 'a' has tag 'source' = 'scan' in the challenger but 'photo'"):
        compare(baseline, conflicting)


def test_summary_and_dict() -> None:
    challenger, baseline = better_pair()
    result = compare(challenger, baseline, resamples=2000)
    assert result.summary() == (f"+0.300 [{result.ci_low:.3f}, {result.ci_high:.3f}] 95% CI, p=0.0005, n=200")
    data = result.to_dict()
    assert data["mean_difference"] == result.mean_difference
    assert data["slices"] == [{"key": "task", "value": "vqa", "examples": 200, **_means(result)}]
    assert isinstance(result, Comparison)


def _means(result: Comparison) -> dict[str, float]:
    return {
        "challenger_mean": result.challenger_mean,
        "baseline_mean": result.baseline_mean,
        "mean_difference": result.slices[0].mean_difference,
    }
