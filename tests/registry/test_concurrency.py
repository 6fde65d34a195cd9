"""Eight processes registering and promoting at once against one SQLite store."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.tiny_base import build_tiny_base
from registry.models import CHAMPION, PREVIOUS_CHAMPION, version_by_alias
from registry.tracking import client_for, ensure_experiment

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_eight_processes_get_distinct_versions_and_one_consistent_champion(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = client_for(uri)
    ensure_experiment(client, "palitune", tmp_path / "artifacts")  # the store exists before the race
    build_tiny_base(tmp_path / "ws" / "models" / "tiny-paligemma")  # loaded to check each input example
    env = {**os.environ, "PALITUNE_HOME": str(tmp_path / "ws"), "MLFLOW_TRACKING_URI": uri}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.registry.concurrent_worker", uri, str(tmp_path / "w"), str(i)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(1, 9)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert sorted(int(r["version"]) for r in results) == list(range(1, 9)), "distinct versions, none lost"
    champion = version_by_alias(client, "palitune-vqa", CHAMPION)
    assert champion is not None
    # The best challenger (score 0.8) wins whatever the order, and the champion it replaced is kept.
    assert client.get_run(champion.run_id).info.run_name == "w8"
    previous = version_by_alias(client, "palitune-vqa", PREVIOUS_CHAMPION)
    promoted = {r["version"] for r in results if r["promoted"]}
    assert str(champion.version) in {str(v) for v in promoted}
    assert previous is None or str(previous.version) in {str(v) for v in promoted}
