"""The at-scale set-up on real servers: Dagster's run, event-log and schedule storage on
PostgreSQL (the shipped ``configs/dagster/dagster-postgres.yaml``), an ``mlflow server`` on
PostgreSQL with proxied artifacts, the graph run for one task against both, and the champion
found and loaded through the tracking server's REST API, as README's "Scaling out" says.

PostgreSQL is Debian's (``make postgres`` installs it where it is missing); without its
server programs the test is skipped and says why.
"""

import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RUN_CONFIG = {
    "execution": {"config": {"in_process": {}}},
    "ops": {
        "raw_dataset": {"config": {"train": 512, "val": 16, "test": 64}},
        "finetuned_adapter": {"config": {"overrides": ["steps=300", "batch_size=16", "log_every=100"]}},
    },
}


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str, scheme: str = "postgresql") -> str:
        return f"{scheme}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL's server programs are not installed (make postgres installs Debian's postgresql)")
    return Path(found[-1]).parent


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the ``postgres`` system user then."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    return ["runuser", "-u", "postgres", "--"]


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    programs, prefix = _server_bin(), _as_postgres_user()
    root = Path(tempfile.mkdtemp(prefix="palitune-pg-"))
    password = secrets.token_hex(12)
    (root / "pw").write_text(password)
    if prefix:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(root / "pw", "postgres", "postgres")
    server = Postgres("127.0.0.1", _free_port(), "palitune", password)
    data = root / "data"
    run = lambda *cmd: subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)  # noqa: E731
    run(str(programs / "initdb"), "-D", str(data), "-U", server.user, f"--pwfile={root / 'pw'}",
        "--auth-local=trust", "--auth-host=scram-sha-256")  # fmt: skip
    options = f"-h {server.host} -p {server.port} -k {root}"
    run(str(programs / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        for database in ("dagster", "mlflow"):
            run(str(programs / "createdb"), "-h", str(root), "-p", str(server.port), "-U", server.user, database)
        yield server
    finally:
        subprocess.run([*prefix, str(programs / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], timeout=120)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mlflow_server(postgres: Postgres, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = (tmp_path / "mlflow.log").open("w")
    command = [
        str(BIN / "mlflow"), "server", "--backend-store-uri", postgres.url("mlflow", "postgresql+psycopg2"),
        "--artifacts-destination", (tmp_path / "artifacts").as_uri(), "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            assert server.poll() is None, (tmp_path / "mlflow.log").read_text()[-3000:]
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(1)
        else:
            raise AssertionError("mlflow server did not come up:\n" + (tmp_path / "mlflow.log").read_text()[-3000:])
        yield url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
            server.wait(timeout=60)


def _rest(url: str, path: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/2.0/mlflow/{path}", timeout=30) as response:
        return json.loads(response.read())


def test_the_graph_runs_on_postgresql_and_serves_its_champion_over_rest(
    postgres: Postgres, mlflow_server: str, tmp_path: Path
) -> None:
    import psycopg2

    home, workspace = tmp_path / "dagster", tmp_path / "workspace"
    home.mkdir()
    shutil.copy(REPO / "configs" / "dagster" / "dagster-postgres.yaml", home / "dagster.yaml")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(RUN_CONFIG))
    env = {
        **os.environ, "DAGSTER_HOME": str(home), "PALITUNE_HOME": str(workspace), "PALITUNE_TASKS": "vqa",
        "MLFLOW_TRACKING_URI": mlflow_server, "DAGSTER_PG_HOST": postgres.host, "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USER": postgres.user, "DAGSTER_PG_PASSWORD": postgres.password, "DAGSTER_PG_DB": "dagster",
    }  # fmt: skip
    command = [str(BIN / "dg"), "launch", "--assets", "*", "--partition", "vqa", "--config", str(tmp_path / "run.yaml")]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]

    # Dagster's state is in PostgreSQL: the run and its materializations.
    with psycopg2.connect(postgres.url("dagster")) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs")
        assert [row[0] for row in cursor.fetchall()] == ["SUCCESS"]
        cursor.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        assert cursor.fetchone()[0] >= 6, "one materialization per asset of the chain"

    # The registry is the tracking server's: find the champion over REST, then load it from there.
    alias = _rest(mlflow_server, "registered-models/alias?name=palitune-vqa&alias=champion")["model_version"]
    assert alias["version"] == "1" and alias["source"].startswith("models:/")
    run = _rest(mlflow_server, f"runs/get?run_id={alias['run_id']}")["run"]
    assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:"), "artifacts go through the server"
    image = next((workspace / "dvc-data" / "synthetic" / "vqa" / "images").glob("test-*.png"))
    question = "answer en what colour is the circle?"
    probe = (
        "import mlflow, pandas; model = mlflow.pyfunc.load_model('models:/palitune-vqa@champion'); "
        f"print(model.predict(pandas.DataFrame({{'image': [{str(image)!r}], 'prompt': [{question!r}]}})))"
    )
    consumer = {**env, "PALITUNE_HOME": str(tmp_path / "consumer")}
    (tmp_path / "consumer").mkdir()
    loaded = subprocess.run([sys.executable, "-c", probe], env=consumer, capture_output=True, text=True, timeout=600)
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    assert loaded.stdout.strip(), "the champion answered"
