"""Task metrics, each as its official evaluator defines it."""

from __future__ import annotations

import re
from collections.abc import Sequence

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


METRICS = {"vqa_accuracy": vqa_accuracy}


def score_outputs(metric: str, outputs: Sequence[str], answers: Sequence[Sequence[str]]) -> tuple[str, list[float]]:
    """Score generated texts against their accepted answers with ``metric``.

    A metric not in ``METRICS`` yet is replaced by exact match of the stripped text, and the
    returned name says so (``exact_match``), so no number is ever reported under a metric
    that did not compute it.

    Returns:
        The name of the metric used and one score per output.
    """
    if metric in METRICS:
        return metric, [METRICS[metric](o, a) for o, a in zip(outputs, answers, strict=True)]
    return "exact_match", [float(o.strip() in {x.strip() for x in a}) for o, a in zip(outputs, answers, strict=True)]
