"""VQA accuracy: the official evaluator (vqaEval.py) on ten answers, big_vision's exact match on fewer."""

import random
from typing import Any

import pytest

from evaluation.metrics import normalize_vqa_answer, vqa_accuracy
from evaluation.vqa_metrics import (
    FEW_ANSWER_RULE,
    OFFICIAL_RULE,
    few_answer_exact_match,
    official_vqa_accuracy,
    vqa_rule,
    vqa_rule_counts,
)

# -- ten answers: the official evaluator


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


def test_the_whole_official_contraction_table_applies() -> None:
    assert normalize_vqa_answer("youll wouldnt've hes") == "you'll wouldn't've he's"
    assert normalize_vqa_answer("somebody'd") == "somebodyd"  # sic, as in vqaEval.py


def test_period_strip_keeps_the_official_count_quirk() -> None:
    # vqaEval.py passes re.UNICODE (32) as periodStrip.sub's count: at most 32 stray periods go.
    assert normalize_vqa_answer("a" + "." * 40) == "a" + "." * 8
    assert normalize_vqa_answer("3.5 ft.") == "3.5 ft"


def test_official_quirk_identical_answers_are_not_normalised() -> None:
    # vqaEval.py only normalises when the answers disagree; we keep its behaviour.
    assert vqa_accuracy(" red\n", ["red"] * 10) == 1.0  # whitespace is always cleaned
    assert vqa_accuracy("Red", ["red"] * 10) == 0.0


def _official_transcription(res_ans: str, gt_answers: list[str]) -> float:
    """VQAEval.evaluate of GT-Vision-Lab/VQA for one question, transcribed to Python 3."""
    # Answer dicts carry an answer_id, so ``item != gtAnsDatum`` leaves out exactly one answer.
    answers: list[dict[str, Any]] = [{"answer": a, "answer_id": i} for i, a in enumerate(gt_answers)]
    for ans_dic in answers:
        ans_dic["answer"] = ans_dic["answer"].replace("\n", " ").replace("\t", " ").strip()
    res_ans = res_ans.replace("\n", " ").replace("\t", " ").strip()
    if len({a["answer"] for a in answers}) > 1:
        for ans_dic in answers:
            ans_dic["answer"] = normalize_vqa_answer(ans_dic["answer"])
        res_ans = normalize_vqa_answer(res_ans)
    gt_acc = []
    for gt_ans_datum in answers:
        other_gt_ans = [item for item in answers if item != gt_ans_datum]
        matching_ans = [item for item in other_gt_ans if item["answer"] == res_ans]
        gt_acc.append(min(1, float(len(matching_ans)) / 3))
    return float(sum(gt_acc)) / len(gt_acc)


def test_ten_and_more_answers_equal_the_official_evaluator_case_for_case() -> None:
    pool = ["red", "Red", " red ", "red.", "two", "2", "the dog", "dog", "dont", "don't", "yes", "no"]
    rng = random.Random(0)
    for _ in range(500):
        answers = [rng.choice(pool) for _ in range(rng.choice([10, 10, 11, 12]))]
        prediction = rng.choice(pool + ["blue", "Two\t"])
        assert vqa_rule(answers) == OFFICIAL_RULE
        assert vqa_accuracy(prediction, answers) == _official_transcription(prediction, answers)


# -- fewer than ten answers: big_vision's exact match


def _big_vision_simple_vqa(answer: str, gts: list[str]) -> float:
    """big_vision proj/paligemma/transfers/vqa.py Evaluator.run, default to_lower=False:
    ``acc`` for a single ``answer``, ``acc_any`` for a list of ``answers``."""
    if len(gts) == 1:
        return float(answer == gts[0])
    num_match = sum([answer == gt for gt in gts])
    return min(1.0, float(num_match))


def test_one_answer_as_roboflow_exports_it_scores_one_when_right() -> None:
    assert vqa_accuracy("blue", ["blue"]) == 1.0
    assert vqa_accuracy("red", ["blue"]) == 0.0
    # The official rule would give 0 to every prediction here: nothing left after leave-one-out.
    assert official_vqa_accuracy("blue", ["blue"]) == 0.0


def test_few_answers_compare_strings_as_big_vision_does() -> None:
    assert vqa_accuracy("Blue", ["blue"]) == 0.0  # no lowercasing (to_lower=False)
    assert vqa_accuracy(" blue", ["blue"]) == 0.0  # no stripping
    assert vqa_accuracy("2", ["two"]) == 0.0  # no VQA normalisation
    assert vqa_accuracy("navy", ["blue", "navy"]) == 1.0  # any accepted answer
    assert vqa_accuracy("blue", ["blue", "blue", "blue"]) == 1.0  # the official rule gives 2/3 here
    assert official_vqa_accuracy("blue", ["blue", "blue", "blue"]) == pytest.approx(2 / 3)


def test_few_answers_equal_big_vision_case_for_case() -> None:
    pool = ["blue", "Blue", " blue", "blue ", "navy", "2", "two", "", "a dog", "dog"]
    rng = random.Random(1)
    for _ in range(500):
        answers = [rng.choice(pool) for _ in range(rng.randint(1, 9))]
        prediction = rng.choice(pool)
        assert vqa_rule(answers) == FEW_ANSWER_RULE
        assert vqa_accuracy(prediction, answers) == _big_vision_simple_vqa(prediction, answers)
        assert few_answer_exact_match(prediction, answers) == vqa_accuracy(prediction, answers)


@pytest.mark.parametrize(("count", "rule"), [(1, FEW_ANSWER_RULE), (9, FEW_ANSWER_RULE), (10, OFFICIAL_RULE)])
def test_rule_threshold_is_ten_answers(count: int, rule: str) -> None:
    assert vqa_rule(["red"] * count) == rule


def test_rule_counts_list_both_rules() -> None:
    counts = vqa_rule_counts([["a"] * 10, ["a"], ["a", "b"]])
    assert counts == {OFFICIAL_RULE: 1, FEW_ANSWER_RULE: 2}
    assert vqa_rule_counts([["a"]]) == {OFFICIAL_RULE: 0, FEW_ANSWER_RULE: 1}


def test_no_answers_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError, match="at least one reference"):
        vqa_accuracy("red", [])
    with pytest.raises(ValueError, match="at least one reference"):
        vqa_rule_counts([["a"], []])
