"""ChartQA relaxed accuracy as an ``evaluate`` metric: palitune's ``chartqa`` scorer.

pix2struct's ``relaxed_correctness`` (``pix2struct/metrics.py``), which big_vision's ChartQA
evaluator equals: numbers within 5 % of a non-zero target, else a case-insensitive string
match; nothing is stripped (``evaluation.metrics.relaxed_accuracy``).
"""

from __future__ import annotations

from evaluation.evaluate_modules import base  # the module, not its class: evaluate takes the first Metric it finds

_DESCRIPTION = """ChartQA relaxed accuracy, as pix2struct and big_vision compute it. When the prediction and a
target both parse as numbers (a trailing % divides by 100) and the target is non-zero, the
prediction is right iff its relative error is at most 5 %; otherwise the strings must match
case-insensitively. Nothing is stripped: " 12" matches "12" (float ignores the space), but
" 0" is not "0" (a zero target compares strings). An example scores 1.0 when any accepted
answer matches, else 0.0."""

_CITATION = """@inproceedings{masry2022chartqa,
  title={{ChartQA}: A Benchmark for Question Answering about Charts with Visual and Logical Reasoning},
  author={Masry, Ahmed and Long, Do Xuan and Tan, Jia Qing and Joty, Shafiq and Hoque, Enamul},
  booktitle={Findings of ACL},
  year={2022}
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): one generated answer per question, as generated (not stripped).
    references (list of list of str): the accepted answers of each question.
    return_details (bool): also return per-example ``scores`` and ``details``. Default False.
Returns:
    relaxed_accuracy (float): mean over questions, in [0, 1].
Raises:
    ValueError: a question without answers (named by its 1-based index).
Examples:
    >>> metric = evaluate.load(module_path("relaxed_accuracy"))
    >>> metric.compute(predictions=["45%", " 0"], references=[["0.45"], ["0"]])
    {'relaxed_accuracy': 0.5}
"""


class RelaxedAccuracy(base.PalituneMetric):
    """palitune's ChartQA relaxed accuracy (pix2struct's, 5 %, whitespace kept)."""

    task = "chartqa"
    card_description = _DESCRIPTION
    card_citation = _CITATION
    card_inputs = _KWARGS_DESCRIPTION
    links = {"codebase_urls": ["https://github.com/google-research/pix2struct/blob/main/pix2struct/metrics.py"]}
