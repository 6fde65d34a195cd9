"""COCO caption metrics as an ``evaluate`` metric: palitune's ``caption`` scorer.

CIDEr-D, BLEU-4, ROUGE-L and METEOR from pycocoevalcap, the COCO caption evaluation server's
code, after its Stanford PTB tokenizer (``evaluation.coco_metrics.caption_metrics``). Without
java on PATH, a java-free tokenizer stands in and METEOR is left out.
"""

from __future__ import annotations

from typing import Any

import datasets

from evaluation.evaluate_modules import base  # the module, not its class: evaluate takes the first Metric it finds
from evaluation.evaluate_modules.records import caption_records
from evaluation.score import ScoreResult

_DESCRIPTION = """Corpus caption metrics as the COCO caption evaluation server computes them (pycocoevalcap):
CIDEr-D (TF-IDF weighted 1-4-gram similarity with clipping and a length penalty, times 10;
its IDF comes from the references of the whole set, so it needs two images at least), BLEU-4,
ROUGE-L and, when java is on PATH, METEOR 1.5. Captions are tokenized by the Stanford PTB
tokenizer (java); without java a simple tokenizer stands in, which gives close but not equal
scores: the output names the tokenizer used, compare runs with the same one."""

_CITATION = """@inproceedings{vedantam2015cider,
  title={{CIDEr}: Consensus-based Image Description Evaluation},
  author={Vedantam, Ramakrishna and Zitnick, C. Lawrence and Parikh, Devi},
  booktitle={CVPR},
  year={2015}
}
@article{chen2015microsoft,
  title={Microsoft {COCO} Captions: Data Collection and Evaluation Server},
  author={Chen, Xinlei and Fang, Hao and Lin, Tsung-Yi and Vedantam, Ramakrishna and Gupta, Saurabh and
    Dollar, Piotr and Zitnick, C. Lawrence},
  journal={arXiv preprint arXiv:1504.00325},
  year={2015}
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): one generated caption per image.
    references (list of list of str): the reference captions of each image (one or more).
    return_details (bool): also return per-example CIDEr-D ``scores`` and ``details``. Default False.
Returns:
    cider, bleu4, rouge_l (float): corpus scores; meteor (float) only when java is on PATH.
    tokenizer (str): "ptb" (Stanford PTB tokenizer, as the COCO server) or "simple" (no java).
Raises:
    ValueError: fewer than two images (CIDEr-D is 0 whatever the caption), or an image without
        non-empty references.
Examples:
    >>> metric = evaluate.load(module_path("caption"))
    >>> metric.compute(predictions=["a red circle", "a blue square"],
    ...                references=[["a red circle"], ["a small blue square"]])["cider"]
    5.259815135452498
"""


def _features() -> datasets.Features:
    return datasets.Features(
        {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
    )


class Caption(base.PalituneMetric):
    """palitune's caption metrics (pycocoevalcap's CIDEr-D, BLEU-4, ROUGE-L, METEOR)."""

    task = "caption"
    card_description = _DESCRIPTION
    card_citation = _CITATION
    card_inputs = _KWARGS_DESCRIPTION
    columns = staticmethod(_features)
    to_records = staticmethod(caption_records)
    links = {"codebase_urls": ["https://github.com/salaniz/pycocoevalcap"]}

    def extra_outputs(self, result: ScoreResult) -> dict[str, Any]:
        return {"tokenizer": result.details["tokenizer"]}
