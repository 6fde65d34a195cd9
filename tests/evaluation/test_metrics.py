"""VQA accuracy as the official evaluator (vqaEval.py) computes it."""

import pytest

from evaluation.metrics import normalize_vqa_answer, vqa_accuracy


def test_ten_agreeing_answers() -> None:
    assert vqa_accuracy("red", ["red"] * 10) == 1.0
    assert vqa_accuracy("blue", ["red"] * 10) == 0.0


@pytest.mark.parametrize(("matches", "expected"), [(1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0)])
def test_leave_one_out_average(matches: int, expected: float) -> None:
    # k matching humans out of 10: the 10-k subsets that drop a non-match see k matches,
    # the k subsets that drop a match see k-1 (official evaluator's averaging).
    answers = ["red"] * matches + ["blue"] * (10 - matches)
    by_hand = ((10 - matches) * min(1, matches / 3) + matches * min(1, (matches - 1) / 3)) / 10
    assert vqa_accuracy("red", answers) == pytest.approx(by_hand)
    assert vqa_accuracy("red", answers) == pytest.approx(expected, abs=0.04)


def test_normalisation_applies_when_answers_disagree() -> None:
    answers = ["two", "2", "2", "2", "two dogs", "2", "2", "2", "2", "2"]
    assert vqa_accuracy("Two", answers) == 1.0  # number word and case normalised
    assert vqa_accuracy("the 2!", answers) == 1.0  # article and punctuation dropped
    assert normalize_vqa_answer("Isnt it, a dog?") == "isn't it dog"


def test_official_quirk_identical_answers_are_not_normalised() -> None:
    # vqaEval.py only normalises when the answers disagree; we keep its behaviour.
    assert vqa_accuracy(" red\n", ["red"] * 10) == 1.0  # whitespace is always cleaned
    assert vqa_accuracy("Red", ["red"] * 10) == 0.0


def test_no_answers_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError, match="at least one reference"):
        vqa_accuracy("red", [])
