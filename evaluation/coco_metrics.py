"""COCO metrics for generated outputs: box detection (COCO AP/AR) and captioning (CIDEr-D, BLEU, METEOR, ROUGE-L).

Both halves feed the reference implementations rather than re-implementing them:

* detection: ``faster_coco_eval`` (``COCO`` + ``COCOeval_faster``, C++ port of the COCO API) or
  ``pycocotools`` (``COCO`` + ``COCOeval``, the original COCO API), ``iouType="bbox"``;
* captioning: ``pycocoevalcap`` (the COCO caption evaluation server's code): ``Cider``, ``Bleu``, ``Meteor``,
  ``Rouge`` and ``PTBTokenizer``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Backend = Literal["faster", "pycocotools"]
TokenizerChoice = Literal["auto", "ptb", "simple"]
BoxLike = Sequence[float | str]
"""``(x0, y0, x1, y1, label)`` in pixels: a tuple, a list or ``data.loc_tokens.Box``."""

_DETECTION_SCORE = 1.0
_AREA_ALL = 0
_MAX_DETS_100 = -1
_AR_100 = 8


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Swallow what the COCO libraries ``print`` (progress lines, summary tables)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _no_print(*_: Any, **__: Any) -> None:
    """A ``print_function`` for faster-coco-eval, which logs rather than prints."""


@dataclass(frozen=True)
class DetectionScores:
    """COCO box metrics over a set of images (all in [0, 1]).

    Attributes:
        map: AP averaged over IoU 0.50:0.05:0.95, all areas, 100 detections per image (COCO ``stats[0]``).
        ap50: AP at IoU 0.50 (``stats[1]``, the PASCAL VOC metric).
        ap75: AP at IoU 0.75 (``stats[2]``).
        ar: AR@100, recall averaged over IoU 0.50:0.95 with up to 100 detections per image (``stats[8]``).
        per_class_ap: label -> AP@[.5:.95] from COCO's precision array ``[T, R, K, area=all, maxDets=100]``,
            averaged over the entries COCO defines (> -1). Every target label is listed: categories come from the
            targets, so each has ground truth and COCO defines its AP.
        images: images evaluated.
        detections: predicted boxes scored (after dropping unknown labels).
        unknown_labels: predicted boxes dropped because their label is in no target.
    """

    map: float
    ap50: float
    ap75: float
    ar: float
    per_class_ap: dict[str, float]
    images: int
    detections: int
    unknown_labels: int


@dataclass(frozen=True)
class _CocoInput:
    ground_truth: dict[str, Any]
    detections: list[dict[str, Any]]
    labels: list[str]
    unknown_labels: int


def _label(box: BoxLike) -> str:
    return str(box[4]).strip()


def _xywh(box: BoxLike) -> list[float]:
    """``x0, y0, x1, y1`` -> COCO's ``[x, y, width, height]``; an inverted box is an error."""
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    if x1 < x0 or y1 < y0:
        raise ValueError(f"inverted box {tuple(box)}: expected x0 <= x1 and y0 <= y1")
    return [x0, y0, x1 - x0, y1 - y0]


def _coco_input(
    predictions: Sequence[Sequence[BoxLike]], targets: Sequence[Sequence[BoxLike]], sizes: Sequence[tuple[int, int]]
) -> _CocoInput:
    """COCO ground-truth dataset and detection results, built in memory with 1-based ids (COCO treats id 0 as
    "unmatched"). Categories are the sorted union of target labels; every detection gets score 1.0."""
    if not len(predictions) == len(targets) == len(sizes):
        raise ValueError(
            f"one entry per image expected: {len(predictions)} predictions, {len(targets)} targets, {len(sizes)} sizes"
        )
    labels = sorted({_label(box) for boxes in targets for box in boxes})
    if not labels:
        raise ValueError("no ground-truth boxes: COCO AP is undefined without ground truth")
    category = {label: index for index, label in enumerate(labels, start=1)}
    images = [{"id": image, "width": int(w), "height": int(h)} for image, (w, h) in enumerate(sizes, start=1)]
    annotations: list[dict[str, Any]] = []
    for image, boxes in enumerate(targets, start=1):
        for box in boxes:
            bbox = _xywh(box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image,
                    "category_id": category[_label(box)],
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
    detections: list[dict[str, Any]] = []
    unknown = 0
    for image, boxes in enumerate(predictions, start=1):
        for box in boxes:
            if _label(box) not in category:
                unknown += 1
                continue
            detections.append(
                {"image_id": image, "category_id": category[_label(box)], "bbox": _xywh(box), "score": _DETECTION_SCORE}
            )
    ground_truth = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": index, "name": label} for label, index in category.items()],
    }
    return _CocoInput(ground_truth, detections, labels, unknown)


def run_coco_eval(ground_truth: dict[str, Any], results: list[dict[str, Any]], iou_type: str, backend: Backend) -> Any:
    """The COCO API's evaluator after ``evaluate``, ``accumulate`` and ``summarize`` of
    ``results`` against ``ground_truth`` (``iou_type`` ``"bbox"`` or ``"segm"``), printing nothing."""
    run = _run_faster if backend == "faster" else _run_pycocotools
    with _quiet():
        return run(ground_truth, results, iou_type)


def _run_faster(ground_truth: dict[str, Any], detections: list[dict[str, Any]], iou_type: str = "bbox") -> Any:
    from faster_coco_eval import COCO, COCOeval_faster

    gt = COCO(ground_truth, print_function=_no_print)
    evaluator = COCOeval_faster(gt, gt.loadRes(detections), iouType=iou_type, print_function=_no_print)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator


def _run_pycocotools(ground_truth: dict[str, Any], detections: list[dict[str, Any]], iou_type: str = "bbox") -> Any:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = ground_truth
    gt.createIndex()
    evaluator = COCOeval(gt, gt.loadRes(detections), iouType=iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator


def _class_ap(precision: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Per-category AP@[.5:.95]: COCO's ``precision[T, R, K, A, M]`` at area "all" and 100 detections, averaged
    over defined entries (-1 marks a category without ground truth, which is left out)."""
    scores = {}
    for k, label in enumerate(labels):
        values = precision[:, :, k, _AREA_ALL, _MAX_DETS_100]
        defined = values[values > -1]
        if defined.size:
            scores[label] = float(np.mean(defined))
    return scores


def detection_metrics(
    predictions: Sequence[Sequence[BoxLike]],
    targets: Sequence[Sequence[BoxLike]],
    sizes: Sequence[tuple[int, int]],
    *,
    backend: Backend = "faster",
) -> DetectionScores:
    """COCO box AP/AR of predicted boxes against target boxes (Lin et al., "Microsoft COCO", 2014; cocodataset.org
    detection evaluation), computed by faster-coco-eval or pycocotools with ``iouType="bbox"``.

    Args:
        predictions: per image, the predicted ``(x0, y0, x1, y1, label)`` boxes in pixels, e.g. what
            ``get_task("detect").parse_output`` returns. Labels absent from every target are dropped and counted
            in ``unknown_labels``.
        targets: per image (same order), the ground-truth boxes ``[x0, y0, x1, y1, label]`` in pixels.
        sizes: per image, ``(width, height)`` in pixels (COCO's image records).
        backend: ``"faster"`` (faster-coco-eval) or ``"pycocotools"``; both give the same numbers.

    PaliGemma emits no confidence, so every detection gets score 1.0: AP is computed from a single operating point,
    not a ranked sweep. With tied scores COCO ranks detections stably (image order, then output order), so the
    precision-recall curve it integrates follows that order. Boxes are converted to COCO ``[x, y, w, h]`` with
    ``area = w * h`` and ``iscrowd = 0``; up to 100 detections per image count (COCO's maxDets).

    With no detection at all (nothing predicted, or only unknown labels) every metric is 0.0, which is what COCO
    computes for categories with ground truth and no detections; pycocotools' ``loadRes`` cannot take an empty
    result list, so that case returns without calling the library. No ground-truth box at all raises
    ``ValueError`` (AP is undefined).
    """
    if backend not in ("faster", "pycocotools"):
        raise ValueError(f"unknown backend {backend!r}; expected 'faster' or 'pycocotools'")
    data = _coco_input(predictions, targets, sizes)
    if not data.detections:
        return DetectionScores(
            map=0.0,
            ap50=0.0,
            ap75=0.0,
            ar=0.0,
            per_class_ap=dict.fromkeys(data.labels, 0.0),
            images=len(targets),
            detections=0,
            unknown_labels=data.unknown_labels,
        )
    evaluator = run_coco_eval(data.ground_truth, data.detections, "bbox", backend)
    stats = np.asarray(evaluator.stats, dtype=float)
    return DetectionScores(
        map=float(stats[0]),
        ap50=float(stats[1]),
        ap75=float(stats[2]),
        ar=float(stats[_AR_100]),
        per_class_ap=_class_ap(np.asarray(evaluator.eval["precision"]), data.labels),
        images=len(targets),
        detections=len(data.detections),
        unknown_labels=data.unknown_labels,
    )


@dataclass(frozen=True)
class CaptionScores:
    """Corpus-level COCO caption metrics, as the COCO caption evaluation server (pycocoevalcap) computes them.

    Attributes:
        cider: CIDEr-D (Vedantam et al., CVPR 2015): TF-IDF weighted 1-4-gram cosine similarity with clipping and
            a Gaussian length penalty (sigma 6), times 10, averaged over examples. IDF comes from the references of
            the whole set, so it needs several images (one image gives 0).
        bleu4: BLEU-4 (Papineni et al., ACL 2002): geometric mean of clipped 1-4-gram precisions with a corpus
            brevity penalty against the closest reference length.
        rouge_l: ROUGE-L (Lin, 2004): LCS-based F-measure with beta 1.2 against the best reference, averaged.
        meteor: METEOR 1.5 (Denkowski & Lavie, 2014), English, normalised; ``None`` when it was not run.
        meteor_skipped: why METEOR is ``None`` ("java not found on PATH" or "disabled"), else ``None``.
        tokenizer: "ptb" (Stanford PTBTokenizer, as the COCO server) or "simple" (the java-free fallback).
        per_example_cider: CIDEr-D of each example, keyed and ordered as the input predictions.
    """

    cider: float
    bleu4: float
    rouge_l: float
    meteor: float | None
    meteor_skipped: str | None
    tokenizer: Literal["ptb", "simple"]
    per_example_cider: dict[str, float]


def _java() -> str | None:
    return shutil.which("java")


@functools.cache
def _strip_chars() -> str:
    """Characters of pycocoevalcap's ``PUNCTUATIONS`` (the tokens its PTB wrapper drops), plus the double quote
    (PTB rewrites it as `` or '', both dropped). The -LRB-/-RRB-/-LCB-/-RCB- entries never match: the tokenizer runs
    with ``-lowerCase``, which lowercases those escapes, so brackets survive PTB and are kept here too."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

    return "".join(sorted({ch for token in PUNCTUATIONS if not token.startswith("-L") for ch in token} | {'"'}))


def simple_tokenize(text: str) -> str:
    """The java-free stand-in for PTB tokenization: lowercase, split on whitespace, strip PTB's dropped punctuation
    from each token's ends and drop tokens left empty; tokens are re-joined with single spaces.

    It matches PTB on ordinary captions ("A dog, running!" -> "a dog running"); unlike PTB it does not split clitics
    ("don't" stays one token) or punctuation inside a token ("cat,dog"), and it drops the final period of
    abbreviations ("e.g." -> "e.g")."""
    strip = _strip_chars()
    return " ".join(token for word in text.lower().split() if (token := word.strip(strip)))


def _resolve_tokenizer(choice: TokenizerChoice) -> Literal["ptb", "simple"]:
    if choice == "simple":
        return "simple"
    if choice == "ptb":
        if _java() is None:
            raise RuntimeError("tokenizer='ptb' needs java on PATH (Stanford PTBTokenizer); use 'simple' or 'auto'")
        return "ptb"
    if choice == "auto":
        return "ptb" if _java() is not None else "simple"
    raise ValueError(f"unknown tokenizer {choice!r}; expected 'auto', 'ptb' or 'simple'")


_Tokenized = dict[str, list[str]]


def _tokenize_ptb(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], keys: Sequence[str]
) -> tuple[_Tokenized, _Tokenized]:
    """One PTBTokenizer run (one java start) over hypotheses and references together. pycocoevalcap writes the
    sentences to a temporary file next to its jar and java reports a one-line token count on stderr."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    captions: dict[tuple[str, str], list[dict[str, str]]] = {}
    for key in keys:
        captions["res", key] = [{"caption": predictions[key]}]
        captions["gts", key] = [{"caption": ref} for ref in references[key]]
    tokens = PTBTokenizer().tokenize(captions)
    return {key: tokens["res", key] for key in keys}, {key: tokens["gts", key] for key in keys}


def _tokenize_simple(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], keys: Sequence[str]
) -> tuple[_Tokenized, _Tokenized]:
    res = {key: [simple_tokenize(predictions[key])] for key in keys}
    gts = {key: [simple_tokenize(ref) for ref in references[key]] for key in keys}
    return res, gts


def _check_inputs(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> list[str]:
    keys = list(predictions)
    if not keys:
        raise ValueError("no predictions to score")
    if set(keys) != set(references):
        missing = sorted(set(keys) ^ set(references))[:5]
        raise ValueError(f"predictions and references must have the same keys; differing keys include {missing}")
    empty = [key for key in keys if isinstance(references[key], str) or not references[key]]
    if empty:
        raise ValueError(f"each key needs a non-empty sequence of reference strings; bad keys include {empty[:5]}")
    return keys


def _meteor_skipped(wanted: bool) -> str | None:
    if not wanted:
        return "disabled"
    return None if _java() is not None else "java not found on PATH"


def _meteor(gts: _Tokenized, res: _Tokenized) -> float:
    """Corpus METEOR from pycocoevalcap's wrapper of meteor-1.5.jar (a java subprocess, stopped afterwards)."""
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        score, _ = scorer.compute_score(gts, res)
    finally:
        scorer.__del__()  # Meteor has no close(); its __del__ stops the jar and tolerates a second call by the GC
    return float(score)


def caption_metrics(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    *,
    tokenizer: TokenizerChoice = "auto",
    meteor: bool = True,
) -> CaptionScores:
    """COCO caption metrics of one predicted caption per key against that key's reference captions.

    Args:
        predictions: key -> generated caption; the order of keys is the order of ``per_example_cider``.
        references: key -> one or more reference captions (same keys).
        tokenizer: "ptb" runs pycocoevalcap's Stanford PTBTokenizer (java) like the COCO server; "simple" uses
            ``simple_tokenize`` (no java); "auto" picks "ptb" when ``java`` is on PATH, else "simple". Scores from
            the two are close on plain captions but not identical, so compare runs with the same ``tokenizer``.
        meteor: run METEOR (it starts a java subprocess). Without java on PATH it is skipped either way.

    The scorers are pycocoevalcap's ``Cider`` (CIDEr-D, as on the COCO caption server), ``Bleu(4)`` (BLEU-4 is
    reported), ``Rouge`` (ROUGE-L) and ``Meteor``; see ``CaptionScores`` for each definition.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    keys = _check_inputs(predictions, references)
    used = _resolve_tokenizer(tokenizer)
    tokenize = _tokenize_ptb if used == "ptb" else _tokenize_simple
    res, gts = tokenize(predictions, references, keys)
    with _quiet():
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        rouge, _ = Rouge().compute_score(gts, res)
        cider, cider_scores = Cider().compute_score(gts, res)
    skipped = _meteor_skipped(meteor)
    return CaptionScores(
        cider=float(cider),
        bleu4=float(bleu[3]),
        rouge_l=float(rouge),
        meteor=_meteor(gts, res) if skipped is None else None,
        meteor_skipped=skipped,
        tokenizer=used,
        per_example_cider={key: float(score) for key, score in zip(keys, cider_scores, strict=True)},
    )


__all__ = [
    "Backend",
    "BoxLike",
    "CaptionScores",
    "DetectionScores",
    "TokenizerChoice",
    "caption_metrics",
    "detection_metrics",
    "simple_tokenize",
]
