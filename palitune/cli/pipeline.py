"""``palitune run``: materialize one task's whole Dagster graph, as ``make demo`` does for vqa.

The command line never imports Dagster (the dependency rules keep it in ``orchestration``):
it launches ``dg launch`` in the project folder, the same process ``make demo`` starts, so a
run started here is a run of the code location the UI shows, with its history in
``DAGSTER_HOME``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from data.workspace import Workspace
from palitune.cli.common import FAILED, BadInput, Subparsers, log

PROJECT = Path(__file__).resolve().parents[2]  # the folder whose pyproject.toml names the code location
RUN_CONFIG = PROJECT / "configs" / "dagster" / "run_config.yaml"
INSTANCE_CONFIG = PROJECT / "configs" / "dagster" / "dagster.yaml"


def add_commands(sub: Subparsers) -> None:
    """Add ``run`` to the top-level subparsers ``sub``."""
    from data.tasks import TASKS

    run = sub.add_parser(
        "run",
        help="materialize a task's whole graph (dataset to champion) through Dagster, no selection string",
    )
    run.add_argument("--task", required=True, choices=sorted(TASKS), help="the task partition to materialize")
    run.add_argument("--run-config", default=str(RUN_CONFIG), help="Dagster run config YAML (default: the shipped one)")
    run.add_argument(
        "--dry-run", action="store_true", help="print the command and DAGSTER_HOME as JSON on stdout; run nothing"
    )
    run.set_defaults(func=_run)


def launch_command(task: str, run_config: Path) -> list[str]:
    """The ``dg launch`` command line that materializes every asset of partition ``task``."""
    dg = Path(sys.executable).with_name("dg")
    program = str(dg) if dg.is_file() else shutil.which("dg") or "dg"
    return [program, "launch", "--assets", "*", "--partition", task, "--config", str(run_config)]


def _run(args: argparse.Namespace, ws: Workspace) -> int:
    run_config = Path(args.run_config).resolve()
    if not run_config.is_file():
        raise BadInput(f"--run-config {run_config}: no such file")
    if not (PROJECT / "pyproject.toml").is_file():
        raise BadInput(f"{PROJECT}: no pyproject.toml; palitune run needs the project folder (an editable install)")
    command = launch_command(args.task, run_config)
    home = Path(os.environ.get("DAGSTER_HOME") or ws.dagster_home)
    if args.dry_run:
        print(json.dumps({"command": command, "cwd": str(PROJECT), "dagster_home": str(home)}))
        return 0
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():  # as make's rule does: the instance config it ships
        shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PALITUNE_HOME": str(ws.root)}
    log.info("materializing every asset of task %s (DAGSTER_HOME %s)", args.task, home)
    log.debug("running %s in %s", " ".join(command), PROJECT)
    done = subprocess.run(command, cwd=PROJECT, env=env, check=False)
    if done.returncode != 0:
        log.error("run --task %s: dg launch exited %d (its log is above)", args.task, done.returncode)
        return FAILED
    return 0
