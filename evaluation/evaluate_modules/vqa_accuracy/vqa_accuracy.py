"""VQA accuracy as an ``evaluate`` metric: palitune's ``vqa`` scorer (``evaluation.score``).

Examples with ten or more answers follow the official evaluator (GT-Vision-Lab/VQA,
``vqaEval.py``: answer normalisation, ``min(1, matches / 3)`` over leave-one-out subsets);
fewer answers are scored by exact match against any answer, as big_vision's simple VQA
evaluator does (``proj/paligemma/transfers/vqa.py``). See ``evaluation.vqa_metrics``.
"""

from __future__ import annotations

from evaluation.evaluate_modules import base  # the module, not its class: evaluate takes the first Metric it finds

_DESCRIPTION = """VQA accuracy of generated answers. With ten or more reference answers, the official VQA
evaluator: the prediction and answers are normalised (punctuation, number words, articles,
contractions) and each leave-one-out subset of nine answers scores min(1, matches / 3); the
example scores their mean. With fewer answers (one answer per question, GQA, custom data),
the leave-one-out rule would give 0 to every prediction, so the example scores 1.0 when the
prediction equals any answer exactly (case and whitespace included), as big_vision does."""

_CITATION = """@inproceedings{antol2015vqa,
  title={{VQA}: Visual Question Answering},
  author={Antol, Stanislaw and Agrawal, Aishwarya and Lu, Jiasen and Mitchell, Margaret and Batra, Dhruv and
    Zitnick, C. Lawrence and Parikh, Devi},
  booktitle={ICCV},
  year={2015}
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): one generated answer per question.
    references (list of list of str): the accepted answers of each question (ten in VQAv2;
        one is a list of one).
    return_details (bool): also return per-example ``scores`` and ``details``
        (``vqa_rule_counts``: how many examples each rule scored). Default False.
Returns:
    vqa_accuracy (float): mean over questions, in [0, 1].
Raises:
    ValueError: a question without answers (named by its 1-based index).
Examples:
    >>> metric = evaluate.load(module_path("vqa_accuracy"))
    >>> metric.compute(predictions=["2"], references=[["2"]])
    {'vqa_accuracy': 1.0}
"""


class VqaAccuracy(base.PalituneMetric):
    """palitune's VQA accuracy (official evaluator from ten answers, exact match below)."""

    task = "vqa"
    card_description = _DESCRIPTION
    card_citation = _CITATION
    card_inputs = _KWARGS_DESCRIPTION
    links = {"reference_urls": ["https://visualqa.org/evaluation.html", "https://github.com/GT-Vision-Lab/VQA"]}
