"""The UI as an operator meets it: `python -m orchestration.ui` (what `make ui` runs) on a
free localhost port, the asset graph in headless Chromium, a materialization launched over
GraphQL that succeeds, and SIGTERM stopping every process of the tree."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
LINEAGE = ["raw_dataset", "dataset_version", "finetuned_adapter", "evaluation_report", "model_version", "champion"]
# Flags Chromium needs in a container with no network (as root, no GPU).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_CONFIG = {
    "ops": {
        "raw_dataset": {"config": {"train": 48, "val": 8, "test": 16}},
        "finetuned_adapter": {"config": {"overrides": ["steps=6", "batch_size=8", "log_every=3"]}},
    }
}
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
STATUS = "query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _graphql(base: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{base}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _wait_until_up(base: str, server: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "the UI exited while starting"
        try:
            with urllib.request.urlopen(f"{base}/server_info", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise AssertionError(f"the UI did not answer on {base} within {timeout_s} s")


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and proc.name != str(os.getpid()):
            found.append(f"{proc.name}: {cmdline[:120]}")
    return found


def test_the_asset_graph_renders_and_a_materialization_succeeds(tmp_path: Path) -> None:
    assert CHROMIUM.is_file(), "Debian's chromium is needed (make test installs it: apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    home = tmp_path / "dagster"
    env = {**os.environ, "PALITUNE_HOME": str(tmp_path / "workspace"), "DAGSTER_HOME": str(home)}
    env["PALITUNE_TASKS"] = "vqa,chartqa"
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (tmp_path / "ui.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestration.ui", "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=log
    )
    try:
        _wait_until_up(base, server)
        assert (home / "dagster.yaml").is_file(), "the instance config (telemetry off) was put in DAGSTER_HOME"
        _graphql(base, "mutation { setNuxSeen }")  # the first-visit dialog would cover the page

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{base}/asset-groups")
            page.wait_for_selector("text=registry", timeout=60_000)  # the graph's groups are drawn
            shown = ""
            for _ in range(20):  # expand every group (Alt+E) until all assets show
                page.keyboard.press("Alt+e")
                page.wait_for_timeout(1000)
                shown = page.inner_text("body")
                if all(name in shown for name in LINEAGE):
                    break
            page.screenshot(path=str(tmp_path / "asset-graph.png"))
            browser.close()
        assert [name for name in LINEAGE if name not in shown] == [], f"not drawn; see {tmp_path / 'asset-graph.png'}"

        params = {
            "selector": {
                "repositoryLocationName": "palitune",
                "repositoryName": "__repository__",
                "jobName": "retrain",
            },
            "runConfigData": RUN_CONFIG,
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "vqa"}]},
        }
        launched = _graphql(base, LAUNCH, {"params": params})["data"]["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        deadline, status = time.monotonic() + 400, "QUEUED"
        while time.monotonic() < deadline and status not in ("SUCCESS", "FAILURE", "CANCELED"):
            time.sleep(3)
            status = _graphql(base, STATUS, {"id": run_id})["data"]["runOrError"]["status"]
        assert status == "SUCCESS", f"run {run_id} ended {status}; see {tmp_path / 'ui.log'}"
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "ui.log").read_text()[-3000:]
    time.sleep(1)
    assert _processes_mentioning(str(home)) == [], "a process of dagster dev outlived SIGTERM"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the port is still served"
