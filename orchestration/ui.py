"""``make ui``: ``dg dev`` (the Dagster UI and daemon) on 127.0.0.1 with the workspace's ``DAGSTER_HOME``, stopped
cleanly by Ctrl-C or SIGTERM.

``dg dev`` is a tree of processes (webserver, daemon, code server). Started from a
shell that ignores SIGINT (a script's ``&``), it inherits the ignored signal and survives
Ctrl-C. This launcher gives it default signal handling and its own process group, forwards
SIGINT/SIGTERM to that whole group, and kills the group if it has not gone in time.

    python -m orchestration.ui [--host 127.0.0.1] [--port 3000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from data.workspace import Workspace

PROJECT_ROOT = Path(__file__).resolve().parents[1]
INSTANCE_TEMPLATE = PROJECT_ROOT / "configs" / "dagster" / "dagster.yaml"
STOP_TIMEOUT_S = 30


def dagster_home() -> Path:
    """``DAGSTER_HOME``, else the workspace's; holding a ``dagster.yaml`` (telemetry off)."""
    home = Path(os.environ.get("DAGSTER_HOME") or Workspace.from_env().dagster_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").is_file():
        shutil.copyfile(INSTANCE_TEMPLATE, home / "dagster.yaml")
    return home


def _default_signals() -> None:  # in the child, before exec: ignored signals would be inherited
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.ui", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("PALITUNE_UI_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PALITUNE_UI_PORT", "3000")))
    args = parser.parse_args(argv)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home())}
    dg = Path(sys.executable).with_name("dg")
    # No target: dg reads the project from pyproject.toml ([tool.dg]); the code location is "palitune".
    command = [str(dg), "dev", "--host", args.host, "--port", str(args.port)]
    child = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, start_new_session=True, preexec_fn=_default_signals)
    stopping = False

    def kill_group(signum: int = 0, frame: FrameType | None = None) -> None:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print(f"\nstopping dg dev ({signal.Signals(signum).name})", file=sys.stderr, flush=True)
        os.killpg(child.pid, signal.SIGTERM)
        signal.signal(signal.SIGALRM, kill_group)  # not gone in time: no mercy
        signal.alarm(STOP_TIMEOUT_S)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = child.wait()
    signal.alarm(0)
    kill_group()  # the webserver, daemon and code servers share the group: none outlives dg dev
    return 0 if stopping else code


if __name__ == "__main__":
    sys.exit(main())
