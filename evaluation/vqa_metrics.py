"""VQA accuracy on the answer counts data really has.

Two rules, picked by how many reference answers an example carries:

* ten or more (VQAv2, TextVQA, VizWiz, OK-VQA): the official evaluator, ``vqaEval.py`` of
  GT-Vision-Lab/VQA (``VQAEval.evaluate``), case for case. For each human answer the
  prediction scores ``min(1, matches among the other answers / 3)``; the example scores the
  mean over those leave-one-out subsets. big_vision's ``proj/paligemma/transfers/vqav2.py``
  (``Evaluator.run``) computes the same over exactly ten answers.
* fewer than ten (one answer per question as Roboflow's PaliGemma export writes it, GQA,
  custom data): exact match. Leave-one-out over one answer leaves nothing to match, so the
  official formula gives 0 to every prediction there, and with two or three answers even a
  unanimous correct one scores below 1. big_vision scores such data with its simple VQA
  evaluator, ``proj/paligemma/transfers/vqa.py`` (``Evaluator.run``): a single ground truth
  ``answer`` is ``float(answer == gt)``, and for a list of ``answers`` it reports
  ``acc_any = min(1, matches)``, i.e. 1 when the prediction equals any answer (the headline
  "Overall Accuracy" of its RSVQA evaluator, ``transfers/rsvqa.py``; its ``acc``,
  ``min(1, matches / 3)``, would cap a match with one of two answers at 1/3). Its strings
  are compared as decoded, without stripping or VQA normalisation; lowercasing is a
  per-dataset ``to_lower`` option, off by default (GQA, A-OKVQA MC, NLVR2) and on for
  OCR-VQA. palitune follows the default: ``prediction == answer``, case and whitespace
  included.

big_vision picks the rule per dataset (its config names the evaluator); palitune picks it per
example from the count, with VQAv2's ten answers (``range(10)`` in ``vqav2.py``) as the line.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

OFFICIAL_ANSWER_COUNT = 10
"""Answers per question in VQAv2: from this many on, the official leave-one-out rule applies."""

OFFICIAL_RULE = "official_10_answer_leave_one_out"
FEW_ANSWER_RULE = "few_answer_exact_match"

# Tables of vqaEval.py (VQAEval.__init__), verbatim: punctuation, number words, articles and
# contractions. Keys with capitals ("Im", "Ive") never match, since words are lowercased first.
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: "(?!<=" is the official typo for "(?<!"
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
# vqaEval.py calls ``periodStrip.sub("", outText, re.UNICODE)``: the flag lands in ``count``,
# so at most 32 periods are removed. big_vision passes it as ``flags`` (no limit); we keep the
# official count, which only differs on answers with more than 32 stray periods.
_PERIOD_STRIP_COUNT = int(re.UNICODE)
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
_CONTRACTIONS = dict(
    pair.split(" ")
    for pair in """aint ain't|arent aren't|cant can't|couldve could've|couldnt couldn't|couldn'tve couldn't've
|couldnt've couldn't've|didnt didn't|doesnt doesn't|dont don't|hadnt hadn't|hadnt've hadn't've|hadn'tve hadn't've
|hasnt hasn't|havent haven't|hed he'd|hed've he'd've|he'dve he'd've|hes he's|howd how'd|howll how'll|hows how's
|Id've I'd've|I'dve I'd've|Im I'm|Ive I've|isnt isn't|itd it'd|itd've it'd've|it'dve it'd've|itll it'll|let's let's
|maam ma'am|mightnt mightn't|mightnt've mightn't've|mightn'tve mightn't've|mightve might've|mustnt mustn't
|mustve must've|neednt needn't|notve not've|oclock o'clock|oughtnt oughtn't|ow's'at 'ow's'at|'ows'at 'ow's'at
|'ow'sat 'ow's'at|shant shan't|shed've she'd've|she'dve she'd've|she's she's|shouldve should've|shouldnt shouldn't
|shouldnt've shouldn't've|shouldn'tve shouldn't've|somebody'd somebodyd|somebodyd've somebody'd've
|somebody'dve somebody'd've|somebodyll somebody'll|somebodys somebody's|someoned someone'd|someoned've someone'd've
|someone'dve someone'd've|someonell someone'll|someones someone's|somethingd something'd
|somethingd've something'd've|something'dve something'd've|somethingll something'll|thats that's|thered there'd
|thered've there'd've|there'dve there'd've|therere there're|theres there's|theyd they'd|theyd've they'd've
|they'dve they'd've|theyll they'll|theyre they're|theyve they've|twas 'twas|wasnt wasn't|wed've we'd've
|we'dve we'd've|weve we've|werent weren't|whatll what'll|whatre what're|whats what's|whatve what've|whens when's
|whered where'd|wheres where's|whereve where've|whod who'd|whod've who'd've|who'dve who'd've|wholl who'll|whos who's
|whove who've|whyll why'll|whyre why're|whys why's|wont won't|wouldve would've|wouldnt wouldn't
|wouldnt've wouldn't've|wouldn'tve wouldn't've|yall y'all|yall'll y'all'll|y'allll y'all'll|yall'd've y'all'd've
|y'alld've y'all'd've|y'all'dve y'all'd've|youd you'd|youd've you'd've|you'dve you'd've|youll you'll
|youre you're|youve you've""".replace("\n", "").split("|")
)


def _process_punctuation(text: str) -> str:
    """``VQAEval.processPunctuation``."""
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or re.search(_COMMA_STRIP, text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=_PERIOD_STRIP_COUNT)


def _process_digits_articles(text: str) -> str:
    """``VQAEval.processDigitArticle``: lowercase, number words to digits, articles out, contractions fixed."""
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


def vqa_rule(answers: Sequence[str]) -> str:
    """Which rule scores an example with these answers: ``OFFICIAL_RULE`` from ten answers on, else ``FEW_ANSWER_RULE``.

    Raises:
        ValueError: when ``answers`` is empty (nothing to score against).
    """
    if not answers:
        raise ValueError("VQA accuracy needs at least one reference answer")
    return OFFICIAL_RULE if len(answers) >= OFFICIAL_ANSWER_COUNT else FEW_ANSWER_RULE


def vqa_rule_counts(answer_lists: Sequence[Sequence[str]]) -> dict[str, int]:
    """How many examples each rule scored, both rules always listed (``{"official_...": 10, "few_...": 0}``)."""
    counts = Counter(vqa_rule(answers) for answers in answer_lists)
    return {OFFICIAL_RULE: counts[OFFICIAL_RULE], FEW_ANSWER_RULE: counts[FEW_ANSWER_RULE]}


def official_vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """The official leave-one-out VQA accuracy (Antol et al. 2015; ``vqaEval.py``, ``VQAEval.evaluate``).

    Newlines and tabs become spaces and ends are stripped; the full normalisation
    (``normalize_vqa_answer``, which also lowercases) is applied to prediction and answers only
    when the answers disagree. Each answer is left out in turn and the prediction scores
    ``min(1, matches among the others / 3)``; the result is the mean. With ten answers a
    prediction given by three or more people scores 1; with one answer nothing is left to
    match and every prediction scores 0, which is why ``vqa_accuracy`` uses it from ten
    answers on only.

    Raises:
        ValueError: when ``answers`` is empty.
    """
    if not answers:
        raise ValueError("VQA accuracy needs at least one reference answer")
    pred, gts = _clean(prediction), [_clean(a) for a in answers]
    if len(set(gts)) > 1:
        pred, gts = normalize_vqa_answer(pred), [normalize_vqa_answer(g) for g in gts]
    scores = [min(1.0, sum(g == pred for g in gts[:i] + gts[i + 1 :]) / 3) for i in range(len(gts))]
    return sum(scores) / len(scores)


def few_answer_exact_match(prediction: str, answers: Sequence[str]) -> float:
    """big_vision's score of few-answer VQA (``proj/paligemma/transfers/vqa.py``, ``Evaluator.run``).

    1.0 when the prediction equals one of the answers as strings (big_vision's single-answer
    ``acc`` and multi-answer ``acc_any``, with its default ``to_lower=False``), else 0.0: no
    stripping, no lowercasing, no VQA normalisation. A wrong answer scoring 0 is the defined value.

    Raises:
        ValueError: when ``answers`` is empty.
    """
    if not answers:
        raise ValueError("VQA accuracy needs at least one reference answer")
    return float(any(prediction == answer for answer in answers))


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """VQA accuracy of one prediction, by the rule its answer count calls for (module docstring).

    Ten or more answers: ``official_vqa_accuracy`` (vqaEval.py). Fewer: ``few_answer_exact_match``
    (big_vision's simple VQA evaluator), so a correct prediction scores 1 and a wrong one 0.
    ``vqa_rule`` tells which applies.

    Raises:
        ValueError: when ``answers`` is empty (nothing to score against).
    """
    if vqa_rule(answers) == OFFICIAL_RULE:
        return official_vqa_accuracy(prediction, answers)
    return few_answer_exact_match(prediction, answers)


__all__ = [
    "FEW_ANSWER_RULE",
    "OFFICIAL_ANSWER_COUNT",
    "OFFICIAL_RULE",
    "few_answer_exact_match",
    "normalize_vqa_answer",
    "official_vqa_accuracy",
    "vqa_accuracy",
    "vqa_rule",
    "vqa_rule_counts",
]
