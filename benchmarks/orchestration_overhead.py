"""Where the demo's wall time goes: model work vs Dagster, MLflow, DVC and process overhead.

    .venv/bin/python -m benchmarks.orchestration_overhead

Measured from outside the graph, so it holds whatever the assets look like:
1. ``make demo`` as users run it, in a fresh temporary workspace (``PALITUNE_HOME``,
   ``DAGSTER_HOME``): its wall time, and from Dagster's event log the run's span and each
   step's time.
2. In this process, the same work with nothing around it: render the demo's dataset
   (``data.synthetic``), train with the demo's run config on the bare loop (the real
   collator, sampler and feature cache; no Accelerate, MLflow, checkpoints), and generate
   on the test split with the fine-tuned and the untrained model, as the evaluation asset
   does.
Overhead = demo wall - (rendering + training + generation); its share of the wall is the
result. It covers Dagster (process start, run and event bookkeeping), MLflow (store,
runs, artifacts, registry), DVC (add, commit, push), the subprocesses' imports and model
loading, and scoring.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import torch

from benchmarks.common import Section
from benchmarks.epochs import EpochRunner, loader
from data.pipeline import default_params
from data.schema import read_split
from data.synthetic import SplitSizes, write_synthetic
from data.tasks import get_task
from evaluation.generate import generate_answers
from models.loading import load_base
from models.tiny_base import build_tiny_base
from training.config import load_config
from training.feature_cache import cache_key, load_or_compute_features, serve_cached_features
from training.sampling import LengthGroupedSampler, text_lengths

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "tiny" / "64px_vqa_lora.yaml"


def run_demo(home: Path) -> float:
    """Wall seconds of ``make demo`` with its workspace and Dagster home in ``home``."""
    env = {**os.environ, "PALITUNE_HOME": str(home / "workspace"), "DAGSTER_HOME": str(home / "workspace" / "dagster")}
    start = time.perf_counter()
    # -o: never rebuild the virtual environment from inside a benchmark
    proc = subprocess.run(
        ["make", "-o", ".venv/.installed", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"make demo failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return wall


def dagster_timeline(dagster_home: Path) -> tuple[float, dict[str, float]]:
    """The run's span (start to success) and each step's seconds, from Dagster's event log.

    Read with sqlite3 from the default local storage (``history/runs/<run id>.db``), so the
    benchmark needs no Dagster import; the demo makes exactly one run.
    """
    runs = [p for p in (dagster_home / "history" / "runs").glob("*.db") if p.name != "index.db"]
    if len(runs) != 1:
        raise RuntimeError(f"expected one Dagster run in {dagster_home}, found {len(runs)}")
    with contextlib.closing(sqlite3.connect(runs[0])) as db:
        rows = db.execute(
            "SELECT dagster_event_type, step_key, timestamp FROM event_logs WHERE dagster_event_type IN "
            "('PIPELINE_START', 'PIPELINE_SUCCESS', 'STEP_START', 'STEP_SUCCESS') ORDER BY id"
        ).fetchall()  # the run's start and success keep their old names in the stored log
    at = {(kind, step): datetime.fromisoformat(stamp).timestamp() for kind, step, stamp in rows}
    span = at[("PIPELINE_SUCCESS", None)] - at[("PIPELINE_START", None)]
    steps = {step: at[("STEP_SUCCESS", step)] - start for (kind, step), start in at.items() if kind == "STEP_START"}
    return span, steps


def model_work(tmp: Path) -> dict[str, float]:
    """Seconds of the demo's rendering, training and generation, run bare in this process."""
    config = load_config(DEMO_CONFIG)
    sizes = default_params()["synthetic"]["vqa"]
    times: dict[str, float] = {}
    start = time.perf_counter()
    data = write_synthetic("vqa", tmp / "vqa", sizes=SplitSizes(sizes["train"], sizes["val"], sizes["test"]))
    times["render the dataset"] = time.perf_counter() - start

    base_dir = build_tiny_base(tmp / "base")
    base, processor = load_base(str(base_dir))
    examples = read_split(data, "train")
    start = time.perf_counter()
    key = cache_key(dataset="overhead-bench", base_ref=str(base_dir), model=base, processor=processor,
                    precision="fp32", device=torch.device("cpu"))  # fmt: skip
    features = load_or_compute_features(
        tmp / "cache", key, base, processor, data, examples, batch_size=config.batch_size
    )
    torch.manual_seed(config.seed)
    runner = EpochRunner(base, config, seed=config.seed)
    sampler = LengthGroupedSampler(text_lengths(processor, examples), config.batch_size, config.seed)
    batches = loader(processor, data, examples, sampler, config.batch_size, features)
    done, epoch = 0, 0
    with serve_cached_features(runner.model.base_model.model):
        while done < config.steps:
            sampler.set_epoch(epoch)
            for batch in batches:
                loss = runner.model(**batch).loss
                loss.backward()
                runner.optimizer.step()
                runner.optimizer.zero_grad(set_to_none=True)
                done += 1
                if done == config.steps:
                    break
            epoch += 1
    times[f"train {config.steps} steps x {config.batch_size}"] = time.perf_counter() - start

    test = read_split(data, "test")
    start = time.perf_counter()
    for model in (runner.model, base):  # the fine-tuned and the untrained model, as the evaluation asset
        generate_answers(model, processor, data, test, max_new_tokens=get_task("vqa").max_new_tokens)
    times[f"generate on {len(test)} test examples, twice"] = time.perf_counter() - start
    return times


def measure() -> Section:
    with tempfile.TemporaryDirectory(prefix="palitune-overhead-") as tmp:
        wall = run_demo(Path(tmp) / "demo")
        span, steps = dagster_timeline(Path(tmp) / "demo" / "workspace" / "dagster")
        work = model_work(Path(tmp) / "bare")
    bare = sum(work.values())
    overhead = wall - bare

    def row(name: str, seconds: float) -> list[str]:
        return [name, f"{seconds:.1f}", f"{100 * seconds / wall:.0f} %"]

    rows = [["part", "seconds", "share of the demo"], row("`make demo` wall time", wall)]
    rows += [row(f"bare work: {name}", s) for name, s in work.items()]
    rows.append(row("**overhead**: all the rest", overhead))
    rows.append(
        row("- outside the Dagster run: CLI start, imports, loading definitions, `palitune summary`", wall - span)
    )
    rows.append(row("- Dagster between and around its steps", span - sum(steps.values())))
    rows += [row(f"- Dagster step `{name}`, whole (work included)", s) for name, s in steps.items()]
    training = next((s for name, s in work.items() if name.startswith("train")), 0.0)
    if "finetuned_adapter" in steps:
        rows.append(row("- of which the training process around its loop (step - bare training)",
                        steps["finetuned_adapter"] - training))  # fmt: skip
    return Section(
        title="Orchestration overhead of the demo",
        command="python -m benchmarks.orchestration_overhead",
        table=rows,
        ratios={
            "overhead share of the demo's wall time": f"{100 * overhead / wall:.0f} %",
            "demo wall time vs the bare work": f"{wall / bare:.1f}x",
        },
        notes=[
            "The bare work runs after the demo in the same benchmark, with the demo's run config and dataset "
            "sizes. Step times come from Dagster's event log (step start to success), each including what the "
            "step launches: `finetuned_adapter` holds the training process (start, imports, MLflow, Accelerate, "
            "checkpoints, the adapter) around the training itself."
        ],
    )


def main() -> None:
    measure().print()


if __name__ == "__main__":
    main()
