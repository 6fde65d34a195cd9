"""A consumer without palitune: a virtual environment built from nothing but the champion's
own requirements loads ``models:/palitune-vqa@champion`` from a folder outside the checkout,
and ``mlflow models serve`` answers it over HTTP.

The environment is created with pip from the configured package index (torch the pinned CPU
wheel the requirements name). It is kept under the temp folder, keyed by the requirements and
the Python version, so a second run reuses it. A clean machine builds it in minutes, not
seconds (about 1.9 GB: torch and MLflow's server dependencies unpacked), which is why these
tests are ``slow``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock
from PIL import Image

from registry.models import CHAMPION, global_tracking_uri, pinned_requirements, register_adapter
from registry.serving import AdapterPredictor
from registry.tracking import client_for, open_run
from tests.reliability.support import adapter_of

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NAME = "palitune-vqa"
PROMPT = "answer en what colour is the circle?"
BUDGET = 6
# palitune's top-level packages: none may be importable in the consumer's environment.
PALITUNE_PACKAGES = ("palitune", "data", "models", "training", "evaluation", "registry", "orchestration")
OUR_WARNINGS = ("Add type hints to the `predict` method", "Failed to log model config as params")


@dataclass(frozen=True)
class Champion:
    tracking_uri: str
    root: Path
    run_id: str
    images: tuple[Path, Path]
    expected: list[str]  # the answers about ``images``, computed in this process from the adapter
    logged: str  # what MLflow warned and logged while the version was registered


@contextlib.contextmanager
def _mlflow_log() -> Iterator[list[str]]:
    """MLflow's log records while the block runs (its logger does not propagate to root)."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler, logger = Collect(level=logging.DEBUG), logging.getLogger("mlflow")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def champion(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Champion:
    """A tiny-base adapter registered as palitune's registration does it, holding ``champion``."""
    root = tmp_path_factory.mktemp("registry")
    adapter = adapter_of(tiny_base, root / "adapter")
    images = (root / "red.png", root / "blue.png")
    Image.new("RGB", (64, 64), (220, 30, 30)).save(images[0])
    Image.new("RGB", (64, 64), (30, 30, 220)).save(images[1])
    uri = f"sqlite:///{root}/mlflow.db"
    client = client_for(uri)
    run_id = open_run(client, "palitune", root / "artifacts", run_name="consumer-env", tags={})
    client.log_param(run_id, "max_new_tokens", "32")  # training logs its validation budget under this name
    with warnings.catch_warnings(record=True) as caught, _mlflow_log() as records:
        warnings.simplefilter("always")
        version = register_adapter(
            client,
            run_id,
            adapter,
            NAME,
            {"palitune.base_model": "tiny"},
            prompt=PROMPT,
            max_new_tokens=BUDGET,
            models_dir=tiny_base.parent,
        )
    client.set_registered_model_alias(NAME, CHAMPION, version.version)
    predictor = AdapterPredictor(str(tiny_base), adapter, max_new_tokens=BUDGET)
    expected = predictor.predict([str(p) for p in images], [PROMPT] * 2)
    logged = "\n".join([*records, *(str(w.message) for w in caught)])
    return Champion(uri, root, run_id, images, expected, logged)


def _consumer_env(tracking_uri: str, venv: Path) -> dict[str, str]:
    """The environment of a process that has only ``venv``: no PYTHONPATH, no palitune workspace."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PALITUNE_HOME", "VIRTUAL_ENV", "MLFLOW_TRACKING_URI"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",  # as `source venv/bin/activate` does
        VIRTUAL_ENV=str(venv),
        MLFLOW_TRACKING_URI=tracking_uri,
        HF_HUB_OFFLINE="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
    )
    return env


def fresh_venv(requirements: str) -> Path:
    """A virtual environment with exactly ``requirements`` installed (pip, the configured
    index), reused when one was completed for the same requirements and Python."""
    key = hashlib.sha256(f"{sys.version_info[:3]}\n{requirements}".encode()).hexdigest()[:16]
    venv = Path(tempfile.gettempdir()) / "palitune-consumer-venvs" / key
    venv.parent.mkdir(parents=True, exist_ok=True)
    complete = venv / "palitune-complete"
    with FileLock(f"{venv}.lock"):
        if not complete.is_file():
            shutil.rmtree(venv, ignore_errors=True)  # an interrupted build is started over
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, cwd=venv.parent)
            (venv / "requirements.txt").write_text(requirements)
            env = _consumer_env("", venv)
            start = time.monotonic()
            install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"]
            proc = subprocess.run(install, cwd=venv, env=env, capture_output=True, text=True, timeout=3600)
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
            complete.write_text(f"pip install took {time.monotonic() - start:.0f} s\n")
    return venv


@pytest.fixture(scope="module")
def consumer_venv(champion: Champion) -> Path:
    """A fresh environment from the champion's own ``requirements.txt``, as a consumer reads it."""
    import mlflow

    with global_tracking_uri(client_for(champion.tracking_uri)):
        requirements = Path(mlflow.pyfunc.get_model_dependencies(f"models:/{NAME}@{CHAMPION}")).read_text()
    return fresh_venv(requirements)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """An empty folder outside the checkout: the consumer's current folder."""
    folder = tmp_path / "consumer"
    folder.mkdir()
    assert REPO not in folder.resolve().parents
    return folder


def test_a_version_carries_its_code_pinned_requirements_and_tiny_base_and_the_adapter_once(
    champion: Champion, tmp_path: Path
) -> None:
    import mlflow

    for warning in OUR_WARNINGS:
        assert warning not in champion.logged, champion.logged
    client = client_for(champion.tracking_uri)
    with global_tracking_uri(client):
        model_dir = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}@{CHAMPION}", dst_path=str(tmp_path)))
    requirements = (model_dir / "requirements.txt").read_text().split()
    assert requirements == pinned_requirements() and "torch==2.13.0" in requirements
    assert all("==" in line for line in requirements) and any(line.startswith("mlflow==") for line in requirements)
    code = model_dir / "code"
    assert (code / "registry" / "serving.py").is_file() and (code / "models" / "loading.py").is_file()
    assert not (code / "training").exists() and not (code / "palitune").exists(), "only what the model imports"
    # The locally built tiny base travels with the version: a consumer could not download it.
    assert len(list(model_dir.rglob("model.safetensors"))) == 1
    # The adapter is stored once in the whole artifact store: in the logged model, not the run too.
    assert len(list((champion.root / "artifacts").rglob("adapter_model.safetensors"))) == 1
    assert "adapter" not in {a.path for a in client.list_artifacts(champion.run_id)}
    params = client.get_run(champion.run_id).data.params
    assert params["max_new_tokens"] == "32" and params["serving.max_new_tokens"] == str(BUDGET)


def test_the_champion_loads_and_predicts_in_a_fresh_env_without_palitune(
    champion: Champion, consumer_venv: Path, elsewhere: Path
) -> None:
    consumer = (
        "import importlib.util, json, sys\n"
        f"leaked = [m for m in {PALITUNE_PACKAGES!r} if importlib.util.find_spec(m) is not None]\n"
        "import mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model('models:/{NAME}@{CHAMPION}')\n"
        "images = [sys.argv[1], open(sys.argv[2], 'rb').read()]\n"
        f"out = model.predict(pd.DataFrame({{'image': images, 'prompt': [{PROMPT!r}] * 2}}))\n"
        "served_from = sys.modules['registry.serving'].__file__\n"
        "print(json.dumps({'leaked': leaked, 'answers': list(out), 'served_from': served_from}))\n"
    )
    proc = subprocess.run(
        [str(consumer_venv / "bin" / "python"), "-c", consumer, *map(str, champion.images)],
        cwd=elsewhere,
        env=_consumer_env(champion.tracking_uri, consumer_venv),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert [w for w in OUR_WARNINGS if w in proc.stderr] == [], proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["leaked"] == [], "palitune was importable before the model loaded"
    assert result["answers"] == champion.expected, "a path and raw bytes: the same answers as the adapter here"
    assert REPO not in Path(result["served_from"]).resolve().parents, "the model's own code ran"
    assert list(elsewhere.iterdir()) == [], "loading wrote nothing (no ./workspace) in the current folder"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_mlflow_models_serve_answers_the_champion_over_http(
    champion: Champion, consumer_venv: Path, elsewhere: Path, tmp_path: Path
) -> None:
    port, log_path = _free_port(), tmp_path / "serve.log"
    command = [str(consumer_venv / "bin" / "mlflow"), "models", "serve", "-m", f"models:/{NAME}@{CHAMPION}"]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    with log_path.open("w") as log:
        server = subprocess.Popen(
            command,
            cwd=elsewhere,
            env=_consumer_env(champion.tracking_uri, consumer_venv),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        while True:
            assert server.poll() is None, log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, f"no answer on /ping: {log_path.read_text()[-4000:]}"
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as ping:
                    if ping.status == 200:
                        break
            time.sleep(1)
        rows = [[base64.b64encode(p.read_bytes()).decode(), PROMPT] for p in champion.images]
        body = json.dumps({"dataframe_split": {"columns": ["image", "prompt"], "data": rows}}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=300) as answer:
            assert answer.status == 200
            predictions = json.loads(answer.read())["predictions"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    assert predictions == champion.expected, log_path.read_text()[-4000:]
    assert list(elsewhere.iterdir()) == [], "serving wrote nothing in the current folder"
