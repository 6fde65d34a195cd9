"""One of several processes registering a version and promoting it at the same time.

``python -m tests.registry.concurrent_worker TRACKING_URI WORKDIR INDEX``: registers a
(fake-weights) adapter as a new version of ``palitune-vqa`` and runs promotion with a
challenger that scores INDEX/10 on 100 examples, against the champion's own report.
Prints the version it got and the champion afterwards.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from evaluation.report import EvaluationReport, ScoredPrediction
from registry.models import register_adapter
from registry.promotion import run_promotion
from registry.tracking import client_for, open_run

NAME = "palitune-vqa"


def report(quality: int) -> EvaluationReport:
    scores = [float(i % 10 < quality) for i in range(100)]
    predictions = [ScoredPrediction(f"t{i}", "answer en q", "p", ["a"], s) for i, s in enumerate(scores)]
    return EvaluationReport("vqa", "test", "m", "d" * 32, {"vqa/test/vqa_accuracy": sum(scores) / 100}, predictions)


def main() -> None:
    uri, workdir, index = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    client = client_for(uri)
    adapter = workdir / f"adapter-{index}"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(str(index).encode())
    run_id = open_run(client, "palitune", workdir / "artifacts", run_name=f"w{index}", tags={})
    version = register_adapter(client, run_id, adapter, NAME, {"palitune.base_model": "tiny"})

    def champion_report(champion, scratch: Path) -> EvaluationReport:
        return report(int(client.get_run(champion.run_id).info.run_name.removeprefix("w")))

    decision, holder = run_promotion(client, NAME, version.version, report(index), report(0), champion_report)
    print(json.dumps({"version": version.version, "promoted": decision.promote, "champion": holder}))


if __name__ == "__main__":
    main()
