"""Text metrics (ANLS, relaxed accuracy, OCR, field extraction) as their official evaluators define them."""

from typing import Optional

import pytest

from evaluation.metrics import (
    METRICS,
    FieldCounts,
    anls,
    character_error_rate,
    corpus_cer,
    extraction_counts,
    field_f1,
    field_prf,
    ocr_exact_match,
    relaxed_accuracy,
    relaxed_correctness,
)

# ANLS (DocVQA official script)


def test_anls_identical_after_normalisation_scores_one() -> None:
    assert anls("Denver Broncos", ["denver   broncos"]) == 1.0
    assert anls("  NEW YORK ", ["new york"]) == 1.0


def test_anls_two_empty_strings_score_one() -> None:
    assert anls("", [""]) == 1.0


def test_anls_whitespace_only_prediction_against_empty_answer() -> None:
    # Normalised both are "", distance 0; the raw length 3 is non-zero, so NL = 0/3.
    assert anls("   ", [""]) == 1.0


def test_anls_empty_prediction_against_text_scores_zero() -> None:
    assert anls("", ["abc"]) == 0.0


def test_anls_exactly_half_is_kept() -> None:
    assert anls("ab", ["ax"]) == 0.5
    assert anls("a" * 50 + "b" * 50, ["a" * 100]) == 0.5


def test_anls_below_half_is_dropped() -> None:
    # 51 substitutions over 100 characters: similarity 0.49 < 0.5.
    assert anls("a" * 49 + "b" * 51, ["a" * 100]) == 0.0


def test_anls_above_threshold_keeps_graded_similarity() -> None:
    assert anls("a" * 90 + "b" * 10, ["a" * 100]) == pytest.approx(0.9)


def test_anls_tau_is_configurable() -> None:
    assert anls("ab", ["ax"], tau=0.6) == 0.0
    assert anls("abcd", ["abxy"], tau=0.0) == 0.5


def test_anls_denominator_is_the_raw_length() -> None:
    # Normalised: "hello" vs "hellp", distance 1. The raw prediction has 9 characters,
    # so NL = 1/9 (not 1/5 as the normalised lengths would give).
    assert anls("  Hello  ", ["hellp"]) == pytest.approx(8 / 9)


def test_anls_length_is_measured_after_upper() -> None:
    # The official script takes len(s.upper()): "ß".upper() == "SS", length 2, so NL = 1/2.
    assert anls("ß", ["s"]) == 0.5


def test_anls_best_over_answers() -> None:
    assert anls("Dr. Lobo", ["Dear Dr. Lobo", "dr. lobo"]) == 1.0
    assert anls("12/15/89", ["nothing alike", "12/15/88"]) == pytest.approx(7 / 8)


def test_anls_unicode_counts_code_points() -> None:
    assert anls("café", ["cafe"]) == pytest.approx(0.75)
    # No Unicode normalisation, as in the official script: decomposed "e + accent" is two code points.
    assert anls("cafe\u0301", ["café"]) == pytest.approx(1 - 2 / 5)


def test_anls_no_answers_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one reference"):
        anls("x", [])


# Relaxed accuracy (ChartQA, pix2struct relaxed_correctness)


def test_relaxed_percent_divides_by_hundred() -> None:
    assert relaxed_accuracy("45%", ["0.45"]) == 1.0
    assert relaxed_accuracy("0.45", ["45%"]) == 1.0
    assert relaxed_accuracy("45", ["45%"]) == 0.0


def test_relaxed_five_percent_is_inclusive() -> None:
    assert relaxed_accuracy("105", ["100"]) == 1.0
    assert relaxed_accuracy("95", ["100"]) == 1.0
    assert relaxed_accuracy("105.1", ["100"]) == 0.0
    assert relaxed_accuracy("94.9", ["100"]) == 0.0


def test_relaxed_error_is_relative_to_the_target() -> None:
    # 4.8 off: 4.8 / 95.2 is about 5.04 % of the target (fails), 4.8 / 100 is 4.8 % (passes).
    assert relaxed_accuracy("100", ["95.2"]) == 0.0
    assert relaxed_accuracy("95.2", ["100"]) == 1.0


def test_relaxed_zero_target_falls_back_to_exact_match() -> None:
    assert relaxed_accuracy("0", ["0"]) == 1.0
    assert relaxed_accuracy("0.0", ["0"]) == 0.0
    assert relaxed_accuracy("0.01", ["0"]) == 0.0


def test_relaxed_non_numeric_is_case_insensitive_exact_match() -> None:
    assert relaxed_accuracy("Yes", ["yes"]) == 1.0
    assert relaxed_accuracy("dark blue", ["blue"]) == 0.0
    assert relaxed_accuracy("1,000", ["1000"]) == 0.0


def test_relaxed_does_not_strip_as_pix2struct_does_not() -> None:
    assert relaxed_accuracy(" Blue ", ["blue"]) == 0.0
    assert relaxed_accuracy(" 12", ["12"]) == 1.0  # float() ignores the spaces
    assert relaxed_accuracy(" 0", ["0"]) == 0.0  # a zero target compares strings


def _pix2struct_relaxed_correctness(target: str, prediction: str, max_relative_change: float = 0.05) -> bool:
    """google-research/pix2struct pix2struct/metrics.py relaxed_correctness, verbatim but for indentation."""

    def _to_float(text: str) -> Optional[float]:  # noqa: UP045 (as in the source)
        try:
            if text.endswith("%"):
                # Convert percentages to floats.
                return float(text.rstrip("%")) / 100.0
            else:
                return float(text)
        except ValueError:
            return None

    prediction_float = _to_float(prediction)
    target_float = _to_float(target)
    if prediction_float is not None and target_float:
        relative_change = abs(prediction_float - target_float) / abs(target_float)
        return relative_change <= max_relative_change
    else:
        return prediction.lower() == target.lower()


def _big_vision_relaxed_match(target: str, prediction: str, max_relative_error: float = 0.05) -> bool:
    """big_vision proj/paligemma/transfers/chartqa.py ``_relaxed_match``, verbatim but for indentation, after the
    evaluator's ``to_lower=True`` postprocessing (its ChartQA config) of both strings."""
    target, prediction = target.lower(), prediction.lower()

    def _to_float(text: str) -> float | None:
        try:
            if text.endswith("%"):
                # Convert percentages to floats.
                return float(text.rstrip("%")) / 100.0
            else:
                return float(text)
        except ValueError:
            return None

    prediction_float = _to_float(prediction)
    target_float = _to_float(target)
    # When the target is 0 is always required an exact match.
    if prediction_float is not None and target_float:
        relative_error = abs(prediction_float - target_float) / abs(target_float)
        return relative_error <= max_relative_error
    else:
        return prediction == target


# Whitespace, percentages, zero and negative targets, case, non-numeric text, what float() accepts.
# fmt: off
TRICKY = [
    "12", " 12", "12 ", "\t12\n", "12.0", "12.6", "12.61", "11.4", "11.39", "-12", " -12", "+12", "1e1", "1E1",
    "1_2", "12%", " 12%", "12 %", "12%%", "0.12", "0", " 0", "0 ", "0.0", "-0", "0%", "0.00001", "inf", "Infinity",
    "nan", "NaN", "-inf", "yes", "Yes", " yes", "yes ", "YES", "abc", " abc", "Abc", "", " ", "1,000", "1000",
    "\u0663", "3", "\u00bd", "\u216b", "\u00df", "SS", "12.5", "12.50", "1/2", "0.5", "50%",
]
# fmt: on


def test_relaxed_equals_pix2struct_and_big_vision_case_for_case() -> None:
    pairs = [(target, prediction) for target in TRICKY for prediction in TRICKY]
    for target, prediction in pairs:
        expected = _pix2struct_relaxed_correctness(target, prediction)
        assert relaxed_correctness(target, prediction) is expected, (target, prediction)
        assert relaxed_accuracy(prediction, [target]) == float(expected), (target, prediction)
        assert _big_vision_relaxed_match(target, prediction) is expected, (target, prediction)
    # The table holds both verdicts, with and without surrounding whitespace.
    verdicts = {(t, p): _pix2struct_relaxed_correctness(t, p) for t, p in pairs}
    assert verdicts[("12", " 12")] and not verdicts[("0", " 0")] and not verdicts[("abc", " abc")]
    assert not verdicts[("nan", "nan")] and not verdicts[("inf", "inf")] and verdicts[("12%", "0.12")]


def test_relaxed_best_over_answers() -> None:
    assert relaxed_accuracy("12", ["twelve", "12.5"]) == 1.0
    assert relaxed_accuracy("14", ["twelve", "12.5"]) == 0.0


def test_relaxed_no_answers_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one reference"):
        relaxed_accuracy("1", [])


# OCR


def test_ocr_exact_match_strips_but_keeps_case() -> None:
    assert ocr_exact_match("  Total 12.00\n", ["Total 12.00"]) == 1.0
    assert ocr_exact_match("TOTAL 12.00", ["Total 12.00"]) == 0.0
    assert ocr_exact_match("Total  12.00", ["Total 12.00"]) == 0.0
    assert ocr_exact_match("b", ["a", "b"]) == 1.0


def test_ocr_exact_match_no_answers_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one reference"):
        ocr_exact_match("x", [])


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("kitten", "kitten", 0.0),
        ("sitten", "kitten", 1 / 6),
        ("sitting", "kitten", 3 / 6),
        ("abcdef", "ab", 2.0),  # insertions make CER exceed 1
        ("", "abc", 1.0),
    ],
)
def test_character_error_rate(prediction: str, reference: str, expected: float) -> None:
    assert character_error_rate(prediction, reference) == pytest.approx(expected)


@pytest.mark.parametrize("prediction", ["", "x"])
def test_cer_of_an_empty_reference_is_an_error(prediction: str) -> None:
    with pytest.raises(ValueError, match="empty reference"):
        character_error_rate(prediction, "")
    with pytest.raises(ValueError, match=r"empty reference \(reference 1\)"):
        corpus_cer(["a", prediction], ["a", ""])


def test_corpus_cer_pools_counts() -> None:
    # Distances 1 and 0 over 2 + 8 reference characters: 0.1, not the mean of 0.5 and 0.
    assert corpus_cer(["ax", "abcdefgh"], ["ab", "abcdefgh"]) == pytest.approx(0.1)


def test_corpus_cer_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        corpus_cer(["a"], ["a", "b"])


# Field extraction

TARGET = '{"date": "3/4", "total": "12"}'


def test_extraction_all_fields_correct() -> None:
    counts = extraction_counts('{"total": "12", "date": " 3/4 "}', TARGET)
    assert counts == FieldCounts(valid_json=True, true_positives=2, false_positives=0, false_negatives=0)
    assert field_f1('{"total": "12", "date": "3/4"}', [TARGET]) == 1.0


def test_extraction_values_compared_as_strings() -> None:
    assert extraction_counts('{"date": "3/4", "total": 12}', TARGET).true_positives == 2


@pytest.mark.parametrize("prediction", ["not json", '["3/4", "12"]', '"12"', '{"date": "3/4"'])
def test_extraction_invalid_json_counts_every_target_field_missing(prediction: str) -> None:
    counts = extraction_counts(prediction, TARGET)
    assert counts == FieldCounts(valid_json=False, true_positives=0, false_positives=0, false_negatives=2)
    assert field_f1(prediction, [TARGET]) == 0.0


def test_extraction_wrong_value_is_false_positive_and_false_negative() -> None:
    counts = extraction_counts('{"date": "3/4", "total": "13"}', TARGET)
    assert counts == FieldCounts(valid_json=True, true_positives=1, false_positives=1, false_negatives=1)
    assert field_f1('{"date": "3/4", "total": "13"}', [TARGET]) == pytest.approx(0.5)


def test_extraction_extra_and_missing_fields() -> None:
    counts = extraction_counts('{"date": "3/4", "vendor": "ACME"}', TARGET)
    assert counts == FieldCounts(valid_json=True, true_positives=1, false_positives=1, false_negatives=1)
    only_extra = extraction_counts('{"date": "3/4", "total": "12", "vendor": "ACME"}', TARGET)
    assert (only_extra.true_positives, only_extra.false_positives, only_extra.false_negatives) == (2, 1, 0)
    # P = 2/3, R = 1, F1 = 0.8
    assert field_f1('{"date": "3/4", "total": "12", "vendor": "ACME"}', [TARGET]) == pytest.approx(0.8)


def test_extraction_target_without_fields_is_an_error() -> None:
    for prediction in ("{}", '{"a": "1"}'):
        with pytest.raises(ValueError, match="target has no fields"):
            field_f1(prediction, ["{}"])


def test_extraction_empty_prediction_scores_zero() -> None:
    assert extraction_counts("{}", TARGET) == FieldCounts(True, 0, 0, 2)
    assert field_f1("{}", [TARGET]) == 0.0


def test_extraction_target_not_an_object_is_an_error() -> None:
    with pytest.raises(ValueError, match="target is not a JSON object"):
        extraction_counts("{}", "[1]")


def test_field_f1_no_answers_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one reference"):
        field_f1("{}", [])


def test_field_prf_micro_averages_pooled_counts() -> None:
    counts = [
        FieldCounts(True, 2, 0, 0),
        FieldCounts(True, 1, 1, 1),
        FieldCounts(False, 0, 0, 2),
        FieldCounts(True, 1, 3, 0),
    ]
    # TP 4, FP 4, FN 3: P = 4/8, R = 4/7, F1 = 8/15.
    result = field_prf(counts)
    assert result["precision"] == pytest.approx(0.5)
    assert result["recall"] == pytest.approx(4 / 7)
    assert result["f1"] == pytest.approx(8 / 15)
    assert result["json_validity"] == pytest.approx(0.75)


def test_field_prf_empty_denominators() -> None:
    with pytest.raises(ValueError, match="no target fields"):
        field_prf([FieldCounts(True, 0, 0, 0)])
    all_invalid = field_prf([FieldCounts(False, 0, 0, 3)])  # nothing predicted: precision 0 by convention
    assert (all_invalid["precision"], all_invalid["recall"], all_invalid["f1"]) == (0.0, 0.0, 0.0)
    assert all_invalid["json_validity"] == 0.0


def test_field_prf_no_examples_is_an_error() -> None:
    with pytest.raises(ValueError):
        field_prf([])


# Registry


def test_metrics_registered_under_task_table_names() -> None:
    assert METRICS["anls"] is anls
    assert METRICS["relaxed_accuracy"] is relaxed_accuracy
    assert METRICS["ocr_exact_match"] is ocr_exact_match
    assert METRICS["field_f1"] is field_f1
