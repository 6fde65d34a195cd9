"""The project as Dagster's ``dg`` command line reads it: no module flag, no deprecation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two command-line starts that each load the whole graph

REPO = Path(__file__).resolve().parents[2]
DG = Path(sys.executable).with_name("dg")


def _dg(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PALITUNE_HOME": str(home / "workspace"), "DAGSTER_HOME": str(home / "dagster")}
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    return subprocess.run([str(DG), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_dg_finds_the_graph_from_pyproject_alone(tmp_path: Path) -> None:
    listed = _dg("list", "defs", "--json", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "SupersessionWarning" not in listed.stderr
    defs = json.loads(listed.stdout)
    assets = {asset["asset_key"] for asset in defs["assets"]}
    assert {"raw_dataset", "dataset_version", "finetuned_adapter", "champion"} <= assets
    assert [job["name"] for job in defs["jobs"]] == ["retrain"]
    assert {sensor["name"] for sensor in defs["sensors"]} == {"new_dataset_version"}

    checked = _dg("check", "defs", home=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
