"""Task metrics, each as its official evaluator defines it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import Levenshtein

# Answer normalisation of the official VQA evaluator (vqaEval.py, VQA API by Agrawal et al.):
# punctuation handling, number words to digits, articles dropped, common contractions fixed.
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_NUMBERS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = {"a", "an", "the"}
_CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldnt": "couldn't",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hasnt": "hasn't",
    "havent": "haven't",
    "isnt": "isn't",
    "its": "it's",
    "shouldnt": "shouldn't",
    "thats": "that's",
    "theres": "there's",
    "wasnt": "wasn't",
    "werent": "weren't",
    "whats": "what's",
    "wont": "won't",
    "wouldnt": "wouldn't",
    "youre": "you're",
    "youve": "you've",
}


def _process_punctuation(text: str) -> str:
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or re.search(_COMMA_STRIP, text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out)


def _process_digits_articles(text: str) -> str:
    words = []
    for word in text.lower().split():
        word = _NUMBERS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def normalize_vqa_answer(text: str) -> str:
    """Punctuation, number words, articles and contractions as the official evaluator treats them."""
    return _process_digits_articles(_process_punctuation(text))


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """VQA accuracy of one prediction (Antol et al. 2015; official evaluator vqaEval.py).

    For each human answer, the prediction scores min(1, matches among the *other* answers
    / 3); the result is the mean over those leave-one-out subsets. With the usual ten
    answers, a prediction given by three or more people scores 1.

    As in the official evaluator, newlines and tabs become spaces and ends are stripped;
    the full normalisation (``normalize_vqa_answer``, which also lowercases) is applied to
    prediction and answers only when the answers disagree. A single answer has no
    leave-one-out subset that could match, so it scores 0 whatever the prediction.

    Raises:
        ValueError: when ``answers`` is empty (nothing to score against).
    """
    if not answers:
        raise ValueError("VQA accuracy needs at least one reference answer")
    pred, gts = _clean(prediction), [_clean(a) for a in answers]
    if len(set(gts)) > 1:
        pred, gts = normalize_vqa_answer(pred), [normalize_vqa_answer(g) for g in gts]
    scores = [min(1.0, sum(g == pred for g in gts[:i] + gts[i + 1 :]) / 3) for i in range(len(gts))]
    return sum(scores) / len(scores)


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


def _relaxed_correct(prediction: str, target: str, max_relative_change: float = 0.05) -> bool:
    pred, gold = prediction.strip(), target.strip()
    pred_float, gold_float = _to_float(pred), _to_float(gold)
    if pred_float is not None and gold_float:
        return abs(pred_float - gold_float) / abs(gold_float) <= max_relative_change
    return pred.lower() == gold.lower()


def relaxed_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """ChartQA relaxed accuracy (Masry et al. 2022), as pix2struct's ``relaxed_correctness``.

    When prediction and target both parse as floats (a trailing ``%`` divides by 100, so
    ``"45%"`` equals ``"0.45"``) and the target is non-zero, the prediction is correct iff its
    relative error is at most 5 % (inclusive). Otherwise, including a zero target, the strings
    must match case-insensitively. Surrounding whitespace is stripped first. The result is
    1.0 or 0.0, the best over the accepted answers.
    Source: google-research/pix2struct, ``pix2struct/metrics.py``, ``relaxed_correctness``.

    Raises:
        ValueError: when ``answers`` is empty (nothing to score against).
    """
    _require_answers(answers, "relaxed accuracy")
    return float(any(_relaxed_correct(prediction, a) for a in answers))


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


def _cer_ratio(distance: int, reference_length: int) -> float:
    if reference_length == 0:
        return 0.0 if distance == 0 else 1.0
    return distance / reference_length


def character_error_rate(prediction: str, reference: str) -> float:
    """Character error rate: Levenshtein distance (substitutions, insertions, deletions) / ``len(reference)``.

    The standard CER definition (as in jiwer / torchmetrics ``CharErrorRate``). Insertions make
    it unbounded above, so it may exceed 1. An empty reference has no characters to divide by:
    an empty prediction then scores 0.0 and any other prediction 1.0 (everything it says is wrong).
    """
    return _cer_ratio(Levenshtein.distance(prediction, reference), len(reference))


def corpus_cer(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus-level CER: the sum of distances over the sum of reference lengths.

    Pooling the counts (rather than averaging per-example CERs) weights each example by its
    length, as jiwer and torchmetrics do; an all-empty corpus follows ``character_error_rate``.

    Raises:
        ValueError: when the two sequences differ in length.
    """
    pairs = list(zip(predictions, references, strict=True))
    distance = sum(Levenshtein.distance(p, r) for p, r in pairs)
    return _cer_ratio(distance, sum(len(r) for _, r in pairs))


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
        ValueError: when ``target_json`` is not a JSON object (the dataset is broken, not the model).
    """
    target = _json_object(target_json)
    if target is None:
        raise ValueError(f"target is not a JSON object: {target_json!r}")
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


def _ratio(numerator: int, denominator: int, *, nothing_at_all: bool) -> float:
    """A count ratio; an empty denominator is perfect only when there was nothing to find or predict."""
    if denominator == 0:
        return 1.0 if nothing_at_all else 0.0
    return numerator / denominator


def _f1(tp: int, fp: int, fn: int) -> float:
    return _ratio(2 * tp, 2 * tp + fp + fn, nothing_at_all=True)


def field_f1(prediction: str, answers: Sequence[str]) -> float:
    """Field-level F1 of one extraction against ``answers[0]``, the target JSON object.

    F1 = 2·TP / (2·TP + FP + FN) over the counts of ``extraction_counts``; an example with no
    fields on either side (0 TP, 0 FP, 0 FN) scores 1.0. This is the per-example view used
    for the mean score; ``field_prf`` gives the micro-averaged corpus figures (the usual
    reporting of key-information extraction, e.g. CORD / SROIE field-level F1).

    Raises:
        ValueError: when ``answers`` is empty or its first entry is not a JSON object.
    """
    _require_answers(answers, "field F1")
    counts = extraction_counts(prediction, answers[0])
    return _f1(counts.true_positives, counts.false_positives, counts.false_negatives)


def field_prf(counts: Sequence[FieldCounts]) -> dict[str, float]:
    """Micro-averaged field precision, recall and F1 over examples, plus the share of valid JSON.

    Counts are pooled before dividing, so every field weighs the same whichever example it is
    in. A ratio with an empty denominator is 1.0 when no example had any field at all, else 0.0.

    Raises:
        ValueError: when ``counts`` is empty (no examples to average).
    """
    if not counts:
        raise ValueError("field_prf needs at least one example")
    tp = sum(c.true_positives for c in counts)
    fp = sum(c.false_positives for c in counts)
    fn = sum(c.false_negatives for c in counts)
    empty = tp + fp + fn == 0
    return {
        "precision": _ratio(tp, tp + fp, nothing_at_all=empty),
        "recall": _ratio(tp, tp + fn, nothing_at_all=empty),
        "f1": _f1(tp, fp, fn),
        "json_validity": sum(c.valid_json for c in counts) / len(counts),
    }


METRICS: dict[str, Callable[[str, Sequence[str]], float]] = {
    "vqa_accuracy": vqa_accuracy,
    "anls": anls,
    "relaxed_accuracy": relaxed_accuracy,
    "ocr_exact_match": ocr_exact_match,
    "field_f1": field_f1,
}
