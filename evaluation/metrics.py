"""Task metrics, each as its official evaluator defines it.

VQA accuracy lives in ``evaluation.vqa_metrics`` (re-exported here). A metric that cannot be
computed for an example raises ``ValueError``; ``evaluation.scorers`` adds the example's file,
line and field. A 0.0 returned here is always the evaluator's defined value for a wrong
answer, never a stand-in for "undefined".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import Levenshtein

from evaluation.vqa_metrics import normalize_vqa_answer, vqa_accuracy


def _require_answers(answers: Sequence[str], metric: str) -> None:
    if not answers:
        raise ValueError(f"{metric} needs at least one reference answer")


def _anls_normalize(text: str) -> str:
    return " ".join(text.strip().lower().split())


def _normalized_levenshtein(prediction: str, answer: str) -> float:
    """NL of the official DocVQA script: distance of normalised strings over the longer raw string."""
    length = max(len(answer.upper()), len(prediction.upper()))
    if length == 0:
        return 0.0
    return Levenshtein.distance(_anls_normalize(answer), _anls_normalize(prediction)) / length


def anls(prediction: str, answers: Sequence[str], tau: float = 0.5) -> float:
    """Average Normalized Levenshtein Similarity of one prediction (DocVQA; Biten et al. 2019).

    Follows the official RRC / docvqa.org evaluation script: both strings are stripped,
    lowercased and have internal whitespace collapsed; the Levenshtein distance between them
    is divided by ``max(len(answer.upper()), len(prediction.upper()))`` of the *raw* strings
    (so surrounding spaces count in the denominator, and e.g. ``"ß"`` counts 2); a zero
    length gives NL 0, so two empty strings score 1. The score is ``1 - min(NL)`` over the
    accepted answers, set to 0 when below ``tau`` (a score of exactly ``tau`` is kept).
    Source: https://rrc.cvc.uab.es/?ch=17&com=tasks (ANLS definition and scoring script).

    Raises:
        ValueError: when ``answers`` is empty (nothing to score against).
    """
    _require_answers(answers, "ANLS")
    score = 1.0 - min(_normalized_levenshtein(prediction, a) for a in answers)
    return score if score >= tau else 0.0


def _to_float(text: str) -> float | None:
    """A number as pix2struct reads it: a trailing ``%`` divides by 100; anything else unparsable is None."""
    try:
        if text.endswith("%"):
            return float(text.rstrip("%")) / 100.0
        return float(text)
    except ValueError:
        return None


def relaxed_correctness(target: str, prediction: str, max_relative_change: float = 0.05) -> bool:
    """pix2struct's ``relaxed_correctness`` (``pix2struct/metrics.py``), statement for statement.

    big_vision's ChartQA evaluator (``proj/paligemma/transfers/chartqa.py``, ``_relaxed_match``)
    is the same function with both strings lowercased first (``to_lower=True`` in its ChartQA
    config), which gives the same verdict: ``float`` reads case-insensitively.
    """
    prediction_float = _to_float(prediction)
    target_float = _to_float(target)
    if prediction_float is not None and target_float:
        relative_change = abs(prediction_float - target_float) / abs(target_float)
        return relative_change <= max_relative_change
    return prediction.lower() == target.lower()


def relaxed_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """ChartQA relaxed accuracy (Masry et al. 2022), exactly as pix2struct and big_vision compute it.

    When prediction and target both parse as floats (a trailing ``%`` divides by 100, so
    ``"45%"`` equals ``"0.45"``) and the target is non-zero, the prediction is correct iff its
    relative error is at most 5 % (inclusive). Otherwise, including a zero target, the strings
    must match case-insensitively. Nothing is stripped, as in both references: Python's
    ``float`` ignores surrounding whitespace, so ``" 12"`` matches ``"12"``, but ``" 0"`` is not
    ``"0"`` (a zero target falls back to the strings) and ``" yes"`` is not ``"yes"``. A NaN or
    infinite target is never matched (the relative error is NaN). The result is 1.0 or 0.0, the
    best over the accepted answers, as pix2struct's ``aggregate_metrics`` takes the max.
    Source: google-research/pix2struct, ``pix2struct/metrics.py``, ``relaxed_correctness``.

    Raises:
        ValueError: when ``answers`` is empty (nothing to score against).
    """
    _require_answers(answers, "relaxed accuracy")
    return float(any(relaxed_correctness(a, prediction) for a in answers))


def ocr_exact_match(prediction: str, answers: Sequence[str]) -> float:
    """Exact match of a transcription: 1.0 if the stripped prediction equals any stripped answer.

    The comparison is case-sensitive and keeps punctuation and internal whitespace, because in
    OCR the exact characters are the output being judged: ``"Total"`` is not ``"TOTAL"``. There
    is no single official evaluator for free-form transcription, so this strict sequence-level
    accuracy is the project's definition; ``character_error_rate`` gives the graded view.

    Raises:
        ValueError: when ``answers`` is empty (nothing to score against).
    """
    _require_answers(answers, "OCR exact match")
    return float(prediction.strip() in {a.strip() for a in answers})


def character_error_rate(prediction: str, reference: str) -> float:
    """Character error rate: Levenshtein distance (substitutions, insertions, deletions) / ``len(reference)``.

    The standard CER definition (as in jiwer / torchmetrics ``CharErrorRate``). Insertions make
    it unbounded above, so it may exceed 1.

    Raises:
        ValueError: when ``reference`` is empty: there are no characters to divide by (jiwer
            refuses empty references too).
    """
    if not reference:
        raise ValueError("CER is undefined for an empty reference (no characters to divide by)")
    return Levenshtein.distance(prediction, reference) / len(reference)


def corpus_cer(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus-level CER: the sum of distances over the sum of reference lengths.

    Pooling the counts (rather than averaging per-example CERs) weights each example by its
    length, as jiwer and torchmetrics do.

    Raises:
        ValueError: when the two sequences differ in length, or a reference is empty (its CER is
            undefined; the message gives its index).
    """
    pairs = list(zip(predictions, references, strict=True))
    if not pairs:
        raise ValueError("corpus CER needs at least one reference")
    empty = [i for i, (_, r) in enumerate(pairs) if not r]
    if empty:
        raise ValueError(f"CER is undefined for an empty reference (reference {empty[0]})")
    distance = sum(Levenshtein.distance(p, r) for p, r in pairs)
    return distance / sum(len(r) for _, r in pairs)


@dataclass(frozen=True)
class FieldCounts:
    """Field-level match counts of one extraction, the units that micro-averaging pools."""

    valid_json: bool
    true_positives: int
    false_positives: int
    false_negatives: int


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def extraction_counts(prediction: str, target_json: str) -> FieldCounts:
    """Count field matches of a predicted JSON object against the target JSON object.

    A predicted key present in the target whose value, converted to ``str`` and stripped,
    equals the target's is a true positive; a present key with another value is both a false
    positive (a wrong value was asserted) and a false negative (the right one was not found);
    an extra key is a false positive; a missing target key is a false negative. A prediction
    that is not a JSON object is invalid and contributes every target field as a false negative.

    Raises:
        ValueError: when ``target_json`` is not a JSON object, or an empty one (the dataset is
            broken, not the model: with no field to find, F1 is 0/0).
    """
    target = _json_object(target_json)
    if target is None:
        raise ValueError(f"target is not a JSON object: {target_json!r}")
    if not target:
        raise ValueError("target has no fields: field F1 is undefined with nothing to extract")
    predicted = _json_object(prediction)
    if predicted is None:
        return FieldCounts(valid_json=False, true_positives=0, false_positives=0, false_negatives=len(target))
    correct = sum(k in target and str(v).strip() == str(target[k]).strip() for k, v in predicted.items())
    return FieldCounts(
        valid_json=True,
        true_positives=correct,
        false_positives=len(predicted) - correct,
        false_negatives=len(target) - correct,
    )


def f1_score(true_positives: int, false_positives: int, false_negatives: int) -> float:
    """F1 = 2·TP / (2·TP + FP + FN), the harmonic mean of precision and recall from counts.

    Raises:
        ValueError: when every count is 0: with nothing to find and nothing found F1 is 0/0;
            the caller decides what such an example means.
    """
    denominator = 2 * true_positives + false_positives + false_negatives
    if denominator == 0:
        raise ValueError("F1 is undefined with no true positive, false positive or false negative")
    return 2 * true_positives / denominator


def _require_target_fields(tp: int, fn: int) -> None:
    if tp + fn == 0:
        raise ValueError("no target fields: field recall and F1 are undefined with nothing to extract")


def counts_f1(counts: FieldCounts) -> float:
    """F1 = 2·TP / (2·TP + FP + FN) of one extraction's counts.

    Raises:
        ValueError: when the target had no field (TP + FN = 0), which leaves F1 undefined.
    """
    _require_target_fields(counts.true_positives, counts.false_negatives)
    return f1_score(counts.true_positives, counts.false_positives, counts.false_negatives)


def field_f1(prediction: str, answers: Sequence[str]) -> float:
    """Field-level F1 of one extraction against ``answers[0]``, the target JSON object.

    F1 = 2·TP / (2·TP + FP + FN) over the counts of ``extraction_counts``; an invalid or empty
    prediction scores 0.0, its defined value (every target field missed). This is the
    per-example view used for the mean score; ``field_prf`` gives the micro-averaged corpus
    figures (the usual reporting of key-information extraction, e.g. CORD / SROIE field F1).

    Raises:
        ValueError: when ``answers`` is empty or its first entry is not a non-empty JSON object.
    """
    _require_answers(answers, "field F1")
    return counts_f1(extraction_counts(prediction, answers[0]))


def field_prf(counts: Sequence[FieldCounts]) -> dict[str, float]:
    """Micro-averaged field precision, recall and F1 over examples, plus the share of valid JSON.

    Counts are pooled before dividing, so every field weighs the same whichever example it is
    in. Precision when no field was predicted at all (TP + FP = 0, e.g. every output invalid
    JSON) is 0.0, the ``zero_division=0`` convention of scikit-learn: the model found none of
    the fields there were, and its F1 (defined, as TP + FN > 0) is 0.0 too.

    Raises:
        ValueError: when ``counts`` is empty (no examples to average) or holds no target field
            at all (recall and F1 would be 0/0).
    """
    if not counts:
        raise ValueError("field_prf needs at least one example")
    tp = sum(c.true_positives for c in counts)
    fp = sum(c.false_positives for c in counts)
    fn = sum(c.false_negatives for c in counts)
    _require_target_fields(tp, fn)
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn),
        "f1": f1_score(tp, fp, fn),
        "json_validity": sum(c.valid_json for c in counts) / len(counts),
    }


METRICS: dict[str, Callable[[str, Sequence[str]], float]] = {  # by the task table's metric names
    "vqa_accuracy": vqa_accuracy,
    "anls": anls,
    "relaxed_accuracy": relaxed_accuracy,
    "ocr_exact_match": ocr_exact_match,
    "field_f1": field_f1,
}

__all__ = [
    "METRICS",
    "FieldCounts",
    "anls",
    "character_error_rate",
    "corpus_cer",
    "counts_f1",
    "extraction_counts",
    "f1_score",
    "field_f1",
    "field_prf",
    "normalize_vqa_answer",
    "ocr_exact_match",
    "relaxed_accuracy",
    "relaxed_correctness",
    "vqa_accuracy",
]
