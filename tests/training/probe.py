"""``python -m tests.training.probe OUT -- <training.train arguments>``: the real training entry
point, instrumented to record what each rank did.

Each process writes ``OUT/rank-<r>.json``: the ids of the examples it was handed, in order,
and a sha256 of its trainable parameters after the last step. Nothing in training is
replaced; collation and the loop are wrapped to observe them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import training.setup_steps as setup_steps
import training.train as entry
from training.loop import RunState

OUT = Path(sys.argv[1])
SEEN: list[str] = []
WEIGHTS: dict[str, str] = {}


class _RecordingCollator(setup_steps.TrainCollator):
    def __call__(self, examples):  # type: ignore[no-untyped-def]
        SEEN.extend(e.id for e in examples)
        return super().__call__(examples)


_train_loop = entry.train_loop


def _recording_loop(run: RunState) -> float:
    loss = _train_loop(run)
    digest = hashlib.sha256()
    for name, param in sorted(run.accelerator.unwrap_model(run.model).named_parameters()):
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().cpu().float().numpy().tobytes())
    WEIGHTS["trainable_sha256"] = digest.hexdigest()
    return loss


setup_steps.TrainCollator = _RecordingCollator  # type: ignore[misc]
entry.train_loop = _recording_loop

if __name__ == "__main__":
    code = entry.main(sys.argv[sys.argv.index("--") + 1 :])
    rank = int(os.environ.get("RANK", "0"))
    (OUT / f"rank-{rank}.json").write_text(json.dumps({"seen": SEEN, **WEIGHTS}))
    sys.exit(code)
