"""ANLS as an ``evaluate`` metric: palitune's ``docvqa`` scorer (``evaluation.score``).

Average Normalized Levenshtein Similarity with tau 0.5, as the official DocVQA / RRC scoring
script computes it (``evaluation.metrics.anls``: stripped, lowercased, whitespace collapsed,
distance over the longer raw string, best over the accepted answers).
"""

from __future__ import annotations

from evaluation.evaluate_modules import base  # the module, not its class: evaluate takes the first Metric it finds

_DESCRIPTION = """Average Normalized Levenshtein Similarity (ANLS) of generated answers, tau 0.5, as the
official DocVQA evaluation script computes it: both strings are stripped, lowercased and their
internal whitespace collapsed; the Levenshtein distance is divided by the length of the longer
raw string; an example scores 1 - min(distance) over its accepted answers, or 0 below tau."""

_CITATION = """@inproceedings{biten2019scene,
  title={Scene Text Visual Question Answering},
  author={Biten, Ali Furkan and Tito, Ruben and Mafla, Andres and Gomez, Lluis and Rusinol, Marcal and
    Valveny, Ernest and Jawahar, C. V. and Karatzas, Dimosthenis},
  booktitle={ICCV},
  year={2019}
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): one generated answer per question.
    references (list of list of str): the accepted answers of each question.
    return_details (bool): also return per-example ``scores`` and ``details``. Default False.
Returns:
    anls (float): mean over questions, in [0, 1].
Raises:
    ValueError: a question without answers (named by its 1-based index).
Examples:
    >>> metric = evaluate.load(module_path("anls"))
    >>> metric.compute(predictions=["12.5"], references=[["12.50"]])
    {'anls': 0.8}
"""


class Anls(base.PalituneMetric):
    """palitune's ANLS (DocVQA's official definition, tau 0.5)."""

    task = "docvqa"
    card_description = _DESCRIPTION
    card_citation = _CITATION
    card_inputs = _KWARGS_DESCRIPTION
    links = {"reference_urls": ["https://rrc.cvc.uab.es/?ch=17&com=tasks"]}
