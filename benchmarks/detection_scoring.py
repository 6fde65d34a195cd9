"""COCO detection scoring: faster-coco-eval vs pycocotools on the same boxes, identical stats.

    .venv/bin/python -m benchmarks.detection_scoring [--images 5000] [--detections 20] [--repeats 2]

Draws ``--images`` images with ``--detections`` target boxes each over 10 labels, and as
predictions the targets jittered (some shifted past IoU 0.5, some relabelled, some
dropped), seeded. ``evaluation.coco_metrics.detection_metrics`` scores them with each
backend in turn, ``--repeats`` times; the stats must agree and the ratio of the median
times is printed.
"""

from __future__ import annotations

import argparse
import random

from benchmarks.common import Section, interleaved
from evaluation.coco_metrics import DetectionScores, detection_metrics

LABELS = [f"class{i}" for i in range(10)]


def synthetic_boxes(images: int, per_image: int, seed: int = 0) -> tuple[list, list, list]:
    rng = random.Random(seed)
    targets, predictions, sizes = [], [], []
    for _ in range(images):
        width, height = rng.randint(320, 640), rng.randint(320, 640)
        boxes, guesses = [], []
        for _ in range(per_image):
            w, h = rng.uniform(10, width / 3), rng.uniform(10, height / 3)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            label = rng.choice(LABELS)
            boxes.append([x, y, x + w, y + h, label])
            if rng.random() < 0.1:
                continue  # missed
            dx, dy = rng.gauss(0, w * 0.15), rng.gauss(0, h * 0.15)
            guess_label = label if rng.random() > 0.1 else rng.choice(LABELS)
            x0, y0 = min(max(0.0, x + dx), width - 1), min(max(0.0, y + dy), height - 1)
            guesses.append([x0, y0, min(width, x0 + w), min(height, y0 + h), guess_label])
        targets.append(boxes)
        predictions.append(guesses)
        sizes.append((width, height))
    return predictions, targets, sizes


def measure(images: int = 5000, per_image: int = 20, repeats: int = 2) -> Section:
    predictions, targets, sizes = synthetic_boxes(images, per_image)
    scores: dict[str, DetectionScores] = {}

    def score(backend: str) -> None:
        scores[backend] = detection_metrics(predictions, targets, sizes, backend=backend)  # type: ignore[arg-type]

    times = interleaved({b: lambda b=b: score(b) for b in ("pycocotools", "faster")}, repeats)
    a, b = scores["pycocotools"], scores["faster"]
    stats = ("map", "ap50", "ap75", "ar")
    differs = max(abs(getattr(a, s) - getattr(b, s)) for s in stats)
    per_class = max(abs(a.per_class_ap[k] - b.per_class_ap[k]) for k in a.per_class_ap)
    rows = [["backend", "seconds (median)", "mAP", "AP50", "AP75", "AR@100"]]
    for backend in ("pycocotools", "faster"):
        s = scores[backend]
        name = "pycocotools (baseline)" if backend == "pycocotools" else "faster-coco-eval"
        rows.append([name, f"{times[backend]:.2f}", f"{s.map:.4f}", f"{s.ap50:.4f}", f"{s.ap75:.4f}", f"{s.ar:.4f}"])
    return Section(
        title="Detection scoring: faster-coco-eval vs pycocotools",
        command="python -m benchmarks.detection_scoring",
        table=rows,
        ratios={
            "faster-coco-eval vs pycocotools": f"{times['pycocotools'] / times['faster']:.1f}x faster",
            "largest difference in a stat / a per-class AP": f"{differs:.1e} / {per_class:.1e}",
        },
        notes=[f"{images} images x {per_image} target boxes, {a.detections} predicted boxes scored, 10 labels."],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--detections", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    measure(args.images, args.detections, args.repeats).print()


if __name__ == "__main__":
    main()
