"""COCO detection and caption metrics: both COCO backends agree, edge cases hold, captions score sensibly."""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass

import pytest

from data.tasks import ImageSize, get_task
from evaluation.coco_metrics import Backend, caption_metrics, detection_metrics, simple_tokenize

LABELS = ["cat", "dog", "car", "person"]
BACKENDS: list[Backend] = ["faster", "pycocotools"]
Box = tuple[float, float, float, float, str]


@dataclass
class DetectionSet:
    predictions: list[list[Box]]
    targets: list[list[Box]]
    sizes: list[tuple[int, int]]
    unknown: int


def _random_box(rng: random.Random, width: int, height: int, label: str) -> Box:
    w, h = rng.uniform(24, width / 2), rng.uniform(24, height / 2)
    x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
    return (x0, y0, x0 + w, y0 + h, label)


def _jitter(rng: random.Random, box: Box, pixels: float) -> Box:
    x0, y0, x1, y1, label = box
    x0, y0 = x0 + rng.uniform(-pixels, pixels), y0 + rng.uniform(-pixels, pixels)
    return (x0, y0, max(x0, x1 + rng.uniform(-pixels, pixels)), max(y0, y1 + rng.uniform(-pixels, pixels)), label)


def _detection_set(seed: int = 7, images: int = 40) -> DetectionSet:
    """Random targets; predictions are jittered copies with missing, wrong-label, extra and unknown-label boxes."""
    rng = random.Random(seed)
    data = DetectionSet([], [], [], 0)
    for _ in range(images):
        width, height = rng.randint(200, 640), rng.randint(200, 640)
        targets = [_random_box(rng, width, height, rng.choice(LABELS)) for _ in range(rng.randint(0, 5))]
        predictions = []
        for box in targets:
            roll = rng.random()
            if roll < 0.15:
                continue
            jittered = _jitter(rng, box, rng.choice([1.0, 4.0, 12.0]))
            if roll < 0.25:
                jittered = (*jittered[:4], rng.choice([label for label in LABELS if label != box[4]]))
            predictions.append(jittered)
        if rng.random() < 0.3:
            predictions.append(_random_box(rng, width, height, rng.choice(LABELS)))
        if rng.random() < 0.1:
            predictions.append(_random_box(rng, width, height, "zebra"))
            data.unknown += 1
        data.predictions.append(predictions)
        data.targets.append(targets)
        data.sizes.append((width, height))
    return data


@pytest.fixture(scope="module")
def detections() -> DetectionSet:
    return _detection_set()


def test_backends_give_identical_stats(detections: DetectionSet) -> None:
    faster, coco = (
        detection_metrics(detections.predictions, detections.targets, detections.sizes, backend=backend)
        for backend in BACKENDS
    )
    assert 0.2 < faster.map < 0.95
    for field in ("map", "ap50", "ap75", "ar"):
        assert getattr(faster, field) == pytest.approx(getattr(coco, field), abs=1e-9), field
    assert faster.per_class_ap.keys() == coco.per_class_ap.keys()
    for label, ap in faster.per_class_ap.items():
        assert ap == pytest.approx(coco.per_class_ap[label], abs=1e-9), label
    assert (faster.images, faster.detections, faster.unknown_labels) == (
        coco.images,
        coco.detections,
        coco.unknown_labels,
    )


def test_counts_and_per_class_ap(detections: DetectionSet) -> None:
    scores = detection_metrics(detections.predictions, detections.targets, detections.sizes)
    assert set(scores.per_class_ap) == {box[4] for boxes in detections.targets for box in boxes}
    assert all(0.0 <= ap <= 1.0 for ap in scores.per_class_ap.values())
    assert scores.images == len(detections.targets)
    assert scores.unknown_labels == detections.unknown > 0
    predicted = sum(len(boxes) for boxes in detections.predictions)
    assert scores.detections == predicted - detections.unknown


@pytest.mark.parametrize("backend", BACKENDS)
def test_perfect_prediction_scores_one(detections: DetectionSet, backend: Backend) -> None:
    scores = detection_metrics(detections.targets, detections.targets, detections.sizes, backend=backend)
    assert (scores.map, scores.ap50, scores.ap75, scores.ar) == pytest.approx((1.0, 1.0, 1.0, 1.0))
    assert scores.per_class_ap == pytest.approx(dict.fromkeys(scores.per_class_ap, 1.0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_predicting_nothing_scores_zero(detections: DetectionSet, backend: Backend) -> None:
    nothing: list[list[Box]] = [[] for _ in detections.targets]
    scores = detection_metrics(nothing, detections.targets, detections.sizes, backend=backend)
    assert (scores.map, scores.ap50, scores.ap75, scores.ar, scores.detections) == (0.0, 0.0, 0.0, 0.0, 0)
    assert set(scores.per_class_ap) == {box[4] for boxes in detections.targets for box in boxes}

    only_unknown = [[(0.0, 0.0, 10.0, 10.0, "zebra")]] + nothing[1:]
    scores = detection_metrics(only_unknown, detections.targets, detections.sizes, backend=backend)
    assert (scores.map, scores.unknown_labels) == (0.0, 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_without_predictions_only_costs_recall(backend: Backend) -> None:
    targets = [[(10.0, 10.0, 60.0, 60.0, "cat")], [(20.0, 20.0, 90.0, 80.0, "cat")]]
    scores = detection_metrics([targets[0], []], targets, [(100, 100), (100, 100)], backend=backend)
    assert scores.ar == pytest.approx(0.5)
    assert scores.map == pytest.approx(0.5, abs=0.01)  # precision 1 up to recall 0.5 (51 of 101 recall points)


@pytest.mark.parametrize("backend", BACKENDS)
def test_wrong_label_is_a_miss(backend: Backend) -> None:
    targets = [[(10.0, 10.0, 60.0, 60.0, "cat")], [(20.0, 20.0, 90.0, 80.0, "dog")]]
    predictions = [[(10.0, 10.0, 60.0, 60.0, "dog")], [(20.0, 20.0, 90.0, 80.0, "dog")]]
    scores = detection_metrics(predictions, targets, [(100, 100), (100, 100)], backend=backend)
    assert scores.per_class_ap["cat"] == 0.0
    assert scores.per_class_ap["dog"] == pytest.approx(0.5)  # false positive ranked first, then the hit
    assert scores.ar == pytest.approx(0.5)


def test_loc_token_round_trip_scores_high(detections: DetectionSet) -> None:
    task = get_task("detect")
    decoded = []
    for boxes, (width, height) in zip(detections.targets, detections.sizes, strict=True):
        size = ImageSize(width, height)
        decoded.append(task.parse_output(task.render_suffix(boxes, size), size) if boxes else [])
    assert sum(map(len, decoded)) == sum(map(len, detections.targets))
    scores = detection_metrics(decoded, detections.targets, detections.sizes)
    assert scores.ap50 == pytest.approx(1.0)
    assert scores.map > 0.9


def test_invalid_detection_inputs_raise() -> None:
    target = [[(0.0, 0.0, 10.0, 10.0, "cat")]]
    with pytest.raises(ValueError, match="one entry per image"):
        detection_metrics([[], []], target, [(20, 20)])
    with pytest.raises(ValueError, match="inverted box"):
        detection_metrics([[(10.0, 0.0, 5.0, 10.0, "cat")]], target, [(20, 20)])
    with pytest.raises(ValueError, match="no ground-truth"):
        detection_metrics([[]], [[]], [(20, 20)])
    with pytest.raises(ValueError, match="backend"):
        detection_metrics(target, target, [(20, 20)], backend="detectron")  # type: ignore[arg-type]


def test_library_output_is_silenced(detections: DetectionSet, capsys: pytest.CaptureFixture[str]) -> None:
    for backend in BACKENDS:
        detection_metrics(detections.predictions, detections.targets, detections.sizes, backend=backend)
    assert capsys.readouterr().out == ""


CAPTIONS = {
    "img1": ["a dog runs across the green grass", "a brown dog running on a lawn"],
    "img2": ["a cat sleeps on a red sofa", "a cat is asleep on the couch"],
    "img3": ["two birds fly over the sea", "birds flying above the ocean"],
    "img4": ["a man rides a bike down the street", "a cyclist on a city road"],
    "img5": ["a plate of pasta with tomato sauce", "spaghetti on a white plate"],
    "img6": ["children play football in a park", "kids playing soccer on the grass"],
}
IDENTICAL = {key: refs[0] for key, refs in CAPTIONS.items()}


def test_identical_captions_score_high() -> None:
    scores = caption_metrics(IDENTICAL, CAPTIONS, tokenizer="simple", meteor=False)
    assert scores.bleu4 == pytest.approx(1.0, abs=1e-6)
    assert scores.rouge_l == pytest.approx(1.0)
    assert scores.cider > 1.0
    assert list(scores.per_example_cider) == list(IDENTICAL)
    assert scores.cider == pytest.approx(sum(scores.per_example_cider.values()) / len(IDENTICAL))
    assert (scores.tokenizer, scores.meteor, scores.meteor_skipped) == ("simple", None, "disabled")


def test_wrong_caption_scores_lower() -> None:
    right = caption_metrics(IDENTICAL, CAPTIONS, tokenizer="simple", meteor=False)
    wrong = caption_metrics(
        {**IDENTICAL, "img3": "a red car parked near a building"}, CAPTIONS, tokenizer="simple", meteor=False
    )
    assert wrong.per_example_cider["img3"] < right.per_example_cider["img3"] / 10
    assert wrong.per_example_cider["img1"] == pytest.approx(right.per_example_cider["img1"])
    assert wrong.cider < right.cider
    assert wrong.bleu4 < right.bleu4
    assert wrong.rouge_l < right.rouge_l


def test_simple_tokenizer_and_its_bleu_by_hand() -> None:
    assert simple_tokenize('A "Dog", running!  On the -- grass...') == "a dog running on the grass"
    assert simple_tokenize("well-known don't") == "well-known don't"
    # hypothesis "a man rides a red bike" vs reference "a man rides a bike": clipped n-gram precisions
    # 5/6, 3/5, 2/4, 1/3; the hypothesis is longer, so no brevity penalty.
    scores = caption_metrics(
        {"x": "A man rides a red bike!"}, {"x": ["a man rides a bike."]}, tokenizer="simple", meteor=False
    )
    assert scores.tokenizer == "simple"
    assert scores.bleu4 == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25, rel=1e-6)


def test_without_java_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    scores = caption_metrics(IDENTICAL, CAPTIONS)
    assert (scores.tokenizer, scores.meteor, scores.meteor_skipped) == ("simple", None, "java not found on PATH")
    with pytest.raises(RuntimeError, match="java"):
        caption_metrics(IDENTICAL, CAPTIONS, tokenizer="ptb")


def test_invalid_caption_inputs_raise() -> None:
    with pytest.raises(ValueError, match="same keys"):
        caption_metrics({"a": "x"}, {"b": ["x"]}, tokenizer="simple")
    with pytest.raises(ValueError, match="non-empty"):
        caption_metrics({"a": "x"}, {"a": []}, tokenizer="simple")
    with pytest.raises(ValueError, match="tokenizer"):
        caption_metrics({"a": "x"}, {"a": ["x"]}, tokenizer="nltk")  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("java") is None, reason="PTBTokenizer and METEOR run java jars; java is not on PATH")
def test_ptb_tokenizer_and_meteor_with_java() -> None:
    wrong = {**IDENTICAL, "img3": "A red car, parked near a building."}
    scores = caption_metrics(wrong, CAPTIONS)
    assert scores.tokenizer == "ptb"
    assert scores.meteor_skipped is None
    assert scores.meteor is not None and 0.0 < scores.meteor < 1.0
    simple = caption_metrics(wrong, CAPTIONS, tokenizer="simple", meteor=False)
    assert (scores.cider, scores.bleu4, scores.rouge_l) == pytest.approx((simple.cider, simple.bleu4, simple.rouge_l))
