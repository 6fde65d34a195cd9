"""OCR exact match and CER as an ``evaluate`` metric: palitune's ``ocr`` scorer.

Exact match of the stripped transcription against any accepted one (case and punctuation
kept), and corpus character error rate against the first reference (Levenshtein distance
pooled over the set, over the pooled reference length, as jiwer and torchmetrics compute it).
"""

from __future__ import annotations

from evaluation.evaluate_modules import base  # the module, not its class: evaluate takes the first Metric it finds

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


class Ocr(base.PalituneMetric):
    """palitune's OCR metrics: exact match and corpus CER."""

    task = "ocr"
    card_description = _DESCRIPTION
    card_citation = _CITATION
    card_inputs = _KWARGS_DESCRIPTION
    links = {"reference_urls": ["https://github.com/jitsi/jiwer"]}
