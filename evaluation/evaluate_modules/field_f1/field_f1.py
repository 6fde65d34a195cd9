"""Field-level F1 of JSON extraction as an ``evaluate`` metric: palitune's ``extract`` scorer.

Micro-averaged field precision, recall and F1 (the usual reporting of key-information
extraction, e.g. CORD and SROIE field F1) and the share of predictions that are JSON objects
(``evaluation.metrics.extraction_counts`` and ``field_prf``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets

from evaluation.evaluate_modules import base  # the module, not its class: evaluate takes the first Metric it finds
from evaluation.evaluate_modules.records import answer_records

_DESCRIPTION = """Field-level scores of a generated JSON object against the target object. A predicted key whose
value (as text, stripped) equals the target's is a true positive; a wrong value is a false
positive and a false negative; an extra key is a false positive; a missing key a false
negative; a prediction that is not a JSON object misses every target field. Counts are pooled
over the set before dividing (micro average); precision with nothing predicted is 0.0."""

_CITATION = """@inproceedings{park2019cord,
  title={{CORD}: A Consolidated Receipt Dataset for Post-{OCR} Parsing},
  author={Park, Seunghyun and Shin, Seung and Lee, Bado and Lee, Junyeop and Surh, Jaeheung and Seo, Minjoon and
    Lee, Hwalsuk},
  booktitle={Document Intelligence Workshop at NeurIPS},
  year={2019}
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): one generated text per document, expected to be a JSON object.
    references (list of str): the target JSON object of each document, as text.
    return_details (bool): also return per-example F1 ``scores`` and ``details``. Default False.
Returns:
    field_f1, precision, recall (float): micro-averaged over fields, in [0, 1].
    json_validity (float): share of predictions that are JSON objects.
Raises:
    ValueError: a reference that is not a JSON object, or an empty one (nothing to extract).
Examples:
    >>> metric = evaluate.load(module_path("field_f1"))
    >>> metric.compute(predictions=['{"total": "12"}'], references=['{"total": "12"}'])
    {'field_f1': 1.0, 'precision': 1.0, 'recall': 1.0, 'json_validity': 1.0}
"""


def _features() -> datasets.Features:
    return datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")})


def _records(predictions: Sequence[str], references: Sequence[str]) -> list[dict[str, Any]]:
    return answer_records(predictions, [[target] for target in references])


class FieldF1(base.PalituneMetric):
    """palitune's extraction metrics: micro field F1, precision, recall, JSON validity."""

    task = "extract"
    card_description = _DESCRIPTION
    card_citation = _CITATION
    card_inputs = _KWARGS_DESCRIPTION
    columns = staticmethod(_features)
    to_records = staticmethod(_records)
