"""OCR exact match and CER as an ``evaluate`` metric: palitune's ``ocr`` scorer.

Exact match of the stripped transcription against any accepted one (case and punctuation
kept), and corpus character error rate against the first reference (Levenshtein distance
pooled over the set, over the pooled reference length, as jiwer and torchmetrics compute it).
"""

from __future__ import annotations

from typing import Any

import evaluate

from evaluation.evaluate_modules.records import answer_features, answer_records, metric_outputs
from evaluation.score import score_records

_DESCRIPTION = """Two views of transcription quality. ocr_exact_match: 1.0 when the stripped prediction equals
a stripped accepted transcription, case, punctuation and internal whitespace included.
cer: corpus character error rate of the stripped predictions against each example's first
reference: the sum of Levenshtein distances (substitutions, insertions, deletions) over the sum
of reference lengths; insertions make it unbounded above."""

_CITATION = """@article{levenshtein1966binary,
  title={Binary codes capable of correcting deletions, insertions, and reversals},
  author={Levenshtein, Vladimir I.},
  journal={Soviet Physics Doklady},
  volume={10},
  number={8},
  pages={707--710},
  year={1966}
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): one generated transcription per image.
    references (list of list of str): the accepted transcriptions of each image; CER uses the first.
    return_details (bool): also return per-example exact-match ``scores`` and ``details``. Default False.
Returns:
    ocr_exact_match (float): share of exact transcriptions, in [0, 1].
    cer (float): corpus character error rate, 0 or more.
Raises:
    ValueError: an image without references, or an empty first reference (its CER is undefined).
Examples:
    >>> metric = evaluate.load(module_path("ocr"))
    >>> metric.compute(predictions=["ABCD", "ABXD"], references=[["ABCD"], ["ABCD"]])
    {'ocr_exact_match': 0.5, 'cer': 0.125}
"""


class Ocr(evaluate.Metric):
    """palitune's OCR metrics: exact match and corpus CER."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=answer_features(),
            reference_urls=["https://github.com/jitsi/jiwer"],
        )

    def _compute(
        self, predictions: list[str], references: list[list[str]], return_details: bool = False
    ) -> dict[str, Any]:
        result = score_records("ocr", answer_records(predictions, references))
        return metric_outputs(result, return_details=return_details)
