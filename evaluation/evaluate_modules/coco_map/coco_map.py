"""COCO box mAP of PaliGemma detections as an ``evaluate`` metric: palitune's ``detect`` scorer.

The generated ``<locY0><locX0><locY1><locX1> label ; ...`` text is parsed with the task
table's codec, against each image's size, and scored by the COCO API (faster-coco-eval,
equal to pycocotools) with ``iouType="bbox"`` (``evaluation.coco_metrics.detection_metrics``).
"""

from __future__ import annotations

from evaluation.evaluate_modules import base  # the module, not its class: evaluate takes the first Metric it finds
from evaluation.evaluate_modules.records import detection_features, detection_records

_DESCRIPTION = """COCO detection metrics of PaliGemma's location-token output. Each prediction is the generated
text of one image; its boxes are decoded from the 1024-bin <locNNNN> tokens (y0 x0 y1 x1,
normalised to the image size) and scored against that image's boxes by the COCO API:
coco_map is AP averaged over IoU 0.50:0.05:0.95 (all areas, 100 detections per image), ap50
and ap75 AP at one IoU, ar recall at 100 detections. PaliGemma emits no confidence, so every
box scores 1.0 (one operating point, ties ranked in output order). Text that does not parse
counts as no boxes; predicted labels absent from every reference are dropped."""

_CITATION = """@inproceedings{lin2014microsoft,
  title={Microsoft {COCO}: Common Objects in Context},
  author={Lin, Tsung-Yi and Maire, Michael and Belongie, Serge and Hays, James and Perona, Pietro and
    Ramanan, Deva and Doll{\\'a}r, Piotr and Zitnick, C. Lawrence},
  booktitle={ECCV},
  year={2014}
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): one generated detection text per image.
    references (list of dict): per image, ``boxes`` (``[[x0, y0, x1, y1], ...]`` in pixels),
        ``labels`` (one per box), ``width`` and ``height`` (pixels).
    return_details (bool): also return per-image ``scores`` (F1 of its boxes at IoU 0.5, a
        sortable number, not a COCO metric) and ``details`` (``per_class_ap``,
        ``unknown_labels``, ``unparsed``). Default False.
Returns:
    coco_map, ap50, ap75, ar (float): in [0, 1].
Raises:
    ValueError: no ground-truth box in any image, an inverted box, a non-positive image size,
        or boxes and labels of different lengths.
Examples:
    >>> metric = evaluate.load(module_path("coco_map"))
    >>> metric.compute(predictions=["<loc0000><loc0000><loc0511><loc0511> cat"],
    ...                references=[{"boxes": [[0, 0, 32, 32]], "labels": ["cat"], "width": 64, "height": 64}])
    {'coco_map': 1.0, 'ap50': 1.0, 'ap75': 1.0, 'ar': 1.0}
"""


class CocoMap(base.PalituneMetric):
    """palitune's detection metrics (COCO box AP/AR of parsed ``<loc>`` output)."""

    task = "detect"
    card_description = _DESCRIPTION
    card_citation = _CITATION
    card_inputs = _KWARGS_DESCRIPTION
    columns = staticmethod(detection_features)
    to_records = staticmethod(detection_records)
    links = {
        "reference_urls": ["https://cocodataset.org/#detection-eval"],
        "codebase_urls": ["https://github.com/cocodataset/cocoapi", "https://github.com/MiXaiLL76/faster_coco_eval"],
    }
