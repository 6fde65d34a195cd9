"""Mask mIoU and COCO mask AP of PaliGemma segmentations as an ``evaluate`` metric: palitune's
``segment`` scorer.

The generated ``<loc>``/``<seg>`` text is parsed (``data.seg_tokens``), each object's 16 codes
decoded by the mask codec in force and pasted into its box, as big_vision's segmentation
evaluator does, and scored against the image's objects by ``evaluation.segment_scoring``.
The columns are taken apart here rather than in ``records``: only this module reads masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets

from evaluation.evaluate_modules import base  # the module, not its class: evaluate takes the first Metric it finds

_DESCRIPTION = """Segmentation metrics of PaliGemma's <locNNNN><segNNN> output, as palitune's segment task scores
them. Each prediction is the generated text of one image: per object four location tokens (y0 x0
y1 x1, 1024 bins of the image size), 16 <seg> codes and a label. The codes are decoded by the
mask codec in force (PALITUNE_MASK_CODEC, else the embedded one) into a mask pasted into the
object's box. miou is big_vision's: per image, the IoU of the union of the predicted masks with
the union of the target masks, averaged over images, an output without a valid object scoring
0; invalid counts those outputs; box_acc50 is big_vision's boxacc/0.5 (the first predicted box
at IoU >= 0.5; with several targets each is matched once by label); segm_map, segm_ap50,
segm_ap75 and segm_ar are COCO mask AP/AR (iouType="segm") with every object scored 1.0."""

_CITATION = """@article{beyer2024paligemma,
  title={{PaliGemma}: A versatile {3B} {VLM} for transfer},
  author={Beyer, Lucas and Steiner, Andreas and Pinto, Andr{\\'e} Susano and Kolesnikov, Alexander and
    Wang, Xiao and others},
  journal={arXiv preprint arXiv:2407.07726},
  year={2024}
}
@inproceedings{lin2014microsoft,
  title={Microsoft {COCO}: Common Objects in Context},
  author={Lin, Tsung-Yi and Maire, Michael and Belongie, Serge and Hays, James and Perona, Pietro and
    Ramanan, Deva and Doll{\\'a}r, Piotr and Zitnick, C. Lawrence},
  booktitle={ECCV},
  year={2014}
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): one generated segmentation text per image.
    references (list of dict): per image, ``masks`` (the dataset's objects: ``[{"box": [x0, y0,
        x1, y1] in pixels, "label": str, "mask": {"size": [height, width], "counts": str}}, ...]``,
        masks as compressed COCO RLE of the whole image), ``width`` and ``height`` (pixels).
    return_details (bool): also return per-image ``scores`` (its mask IoU) and ``details``
        (``dropped_objects``, ``unknown_labels``, ``codec``). Default False.
Returns:
    miou, box_acc50, segm_map, segm_ap50, segm_ap75, segm_ar (float): in [0, 1].
    invalid (float): how many outputs held no valid object.
Raises:
    ValueError: an image without objects, a mask whose RLE size is not the image's, or a
        non-positive image size (naming the image and field).
Examples:
    >>> metric = evaluate.load(module_path("segmentation"))
    >>> mask = np.zeros((64, 64), bool)
    >>> mask[8:40, 8:40] = True
    >>> square = {"box": [8.0, 8.0, 40.0, 40.0], "label": "square", "mask": encode_rle(mask)}
    >>> metric.compute(predictions=["no objects"], references=[{"masks": [square], "width": 64, "height": 64}])
    {'miou': 0.0, 'invalid': 1.0, 'box_acc50': 0.0, 'segm_map': 0.0, 'segm_ap50': 0.0, 'segm_ap75': 0.0, 'segm_ar': 0.0}
"""


def segmentation_features() -> datasets.Features:
    """The generated text per image, and that image's objects (box, label, RLE mask) and size.

    The objects are a list of structs (``[ {...} ]``), which ``datasets`` hands back as a list
    of dicts, as a dataset stores them; ``Sequence`` of a struct would come back as a dict of
    lists.
    """
    rle = {"size": datasets.Sequence(datasets.Value("int64"), length=2), "counts": datasets.Value("string")}
    target = {
        "box": datasets.Sequence(datasets.Value("float64"), length=4),
        "label": datasets.Value("string"),
        "mask": rle,
    }
    references = {"masks": [target], "width": datasets.Value("int64"), "height": datasets.Value("int64")}
    return datasets.Features({"predictions": datasets.Value("string"), "references": references})


def segmentation_records(predictions: Sequence[str], references: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``{"prediction", "masks", "width", "height"}`` record per image, in input order.

    Raises:
        ValueError: when the two columns differ in length.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: expected one each")
    return [
        {
            "prediction": prediction,
            "masks": [
                {
                    "box": list(o["box"]),
                    "label": o["label"],
                    "mask": {"size": list(o["mask"]["size"]), "counts": o["mask"]["counts"]},
                }
                for o in target["masks"]
            ],
            "width": target["width"],
            "height": target["height"],
        }
        for prediction, target in zip(predictions, references, strict=True)
    ]


class Segmentation(base.PalituneMetric):
    """palitune's segmentation metrics (big_vision mIoU, box accuracy, COCO mask AP/AR)."""

    task = "segment"
    card_description = _DESCRIPTION
    card_citation = _CITATION
    card_inputs = _KWARGS_DESCRIPTION
    columns = staticmethod(segmentation_features)
    to_records = staticmethod(segmentation_records)
    links = {
        "reference_urls": ["https://arxiv.org/abs/2407.07726", "https://cocodataset.org/#detection-eval"],
        "codebase_urls": [
            "https://github.com/google-research/big_vision",
            "https://github.com/cocodataset/cocoapi",
            "https://github.com/MiXaiLL76/faster_coco_eval",
        ],
    }
