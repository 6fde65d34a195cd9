"""Can the tiny PaliGemma learn each synthetic task? Train, generate, score, report.

For each task: render the synthetic dataset at the pipeline's default size (params.yaml),
fine-tune the tiny base with the task's shipped config (configs/tiny/64px_<task>_full.yaml,
else 64px_<task>_lora.yaml), then greedy-decode the test split and compare
with the untrained base, both scored in this process: exact match of the parsed output for
every task, plus for `detect` the share of target boxes matched at IoU >= 0.5.

    .venv/bin/python benchmarks/learnability.py [method=full ...] [--steps 1200] --tasks ocr detect
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from data.pipeline import default_params
from data.schema import read_split
from data.synthetic import GENERATORS, SplitSizes, write_synthetic
from data.tasks import ImageSize, OutputParseError, get_task
from data.workspace import Workspace
from evaluation.generate import generate_answers
from models.loading import load_for_inference, resolve_base
from training.config import load_config
from training.train import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "tiny"
DEMO_CONFIG = CONFIGS / "64px_vqa_lora.yaml"


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def score(task_name: str, dataset: Path, base: str, adapter: Path | None) -> dict[str, float]:
    """Exact match (and box recall at IoU 0.5 for detect) on the test split."""
    from PIL import Image

    task, examples = get_task(task_name), read_split(dataset, "test")
    model, processor = load_for_inference(base, adapter)
    outputs = generate_answers(model, processor, dataset, examples, max_new_tokens=48)
    exact, matched, total = 0, 0, 0
    for example, output in zip(examples, outputs, strict=True):
        exact += output.strip() == example.suffix
        if task_name == "detect":
            with Image.open(dataset / example.image) as image:
                size = ImageSize(*image.size)
            try:
                predicted = task.parse_output(output, size)
            except OutputParseError:
                predicted = []
            for box in example.boxes:
                total += 1
                matched += any(p.label == box[4] and _iou(p, box) >= 0.5 for p in predicted)
    result = {"exact_match": exact / len(examples)}
    if task_name == "detect":
        result["box_recall@0.5"] = matched / max(total, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=sorted(GENERATORS))
    parser.add_argument("--steps", type=int, help="optimizer steps (default: the config's)")
    parser.add_argument("--train", type=int, help="train examples per task (default: params.yaml's)")
    parser.add_argument("overrides", nargs="*", help="run config overrides, e.g. method=full")
    args = parser.parse_args()
    misplaced = [t for t in args.tasks if "=" in t]
    if misplaced:  # --tasks takes every word after it
        parser.error(f"{' '.join(misplaced)}: put run config overrides before --tasks")
    rows, configs = [], {}
    with tempfile.TemporaryDirectory(prefix="palitune-learn-") as tmp:
        ws = Workspace(Path(tmp))
        base = resolve_base("tiny", ws.models)
        for name in args.tasks:
            train_size = args.train or default_params()["synthetic"][name]["train"]
            dataset = write_synthetic(name, ws.datasets / name, sizes=SplitSizes(train_size, 100, 200))
            shipped = [CONFIGS / f"64px_{name}_{method}.yaml" for method in ("full", "lora")]
            config_file = next((c for c in shipped if c.is_file()), DEMO_CONFIG)
            steps = [f"steps={args.steps}"] if args.steps else []
            overrides = [f"task={name}", f"dataset={dataset}", f"output_dir=runs/{name}", *steps, *args.overrides]
            config = load_config(config_file, overrides)
            configs[name] = f"{config_file.name}, {config.steps} steps, {train_size} train"
            start = time.perf_counter()
            result = train(config, ws, tracking_uri=f"sqlite:///{tmp}/mlflow.db")
            seconds = time.perf_counter() - start
            before, after = score(name, dataset, base, None), score(name, dataset, base, result.adapter_dir)
            rows.append((name, configs[name], seconds, before, after))
            print(f"{name}: untrained {before} -> trained {after} ({seconds:.0f} s)", flush=True)
    print(f"\n| task | config | train s | untrained | trained |  {' '.join(args.overrides)}\n|---|---|---|---|---|")
    for name, config_name, seconds, before, after in rows:
        fmt = lambda d: ", ".join(f"{k} {v:.2f}" for k, v in d.items())  # noqa: E731
        print(f"| {name} | {config_name} | {seconds:.0f} | {fmt(before)} | {fmt(after)} |")


if __name__ == "__main__":
    main()
