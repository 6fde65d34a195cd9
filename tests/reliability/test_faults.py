"""Faults really caused — signals, a stopped server, an unreachable or read-only remote, a
full disk — and what must survive each. docs/reliability.md's "Faults tried" table lists these tests
(``catalogue.FAULTS``), with the two that live beside the code they exercise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from data.schema import DataError
from data.synthetic import SplitSizes, write_shapes_vqa
from data.versioning import LAST_PUSHED_SUFFIX, ensure_repo, recorded_hash, restore_dataset, version_dataset
from data.workspace import Workspace
from models.loading import ModelFolderError, load_for_inference
from palitune.cli import main
from registry.errors import RegistryError
from registry.models import register_adapter
from registry.tracking import client_for, open_run
from tests.reliability.support import (
    NAME,
    adapter_of,
    closed_port,
    file_hashes,
    registry_state,
    registry_with_a_champion,
)
from training.checkpoints import CheckpointError, list_checkpoints, read_state, staging_dir
from training.config import load_config
from training.train import train

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "tiny" / "64px_vqa_lora.yaml"
SIZES = SplitSizes(train=12, val=4, test=4)
# Bounded, quick retries for the tests; MLflow's defaults (7 retries, 2 s backoff factor,
# 120 s timeout) are bounded too, at minutes.
QUICK_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


def _permissions_stop_writes(scratch: Path) -> bool:
    """False for root (or anyone with CAP_DAC_OVERRIDE), who writes into read-only folders."""
    probe = scratch / "permission-probe"
    probe.mkdir(parents=True)
    probe.chmod(0o555)
    try:
        (probe / "written").touch()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)
        shutil.rmtree(probe)
    return False


def _mount_tmpfs(path: Path, size: str) -> bool:
    """Mount a tmpfs of ``size`` at ``path``; False where this machine does not allow it."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return mounted.returncode == 0


def _unmount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=True)


# -- SIGKILL while an adapter is written ---------------------------------------------------

WRITER = """
import shutil, sys
from pathlib import Path
from data.atomic import staged_dir

source, dest = Path(sys.argv[1]), Path(sys.argv[2])
with staged_dir(dest) as tmp:  # how training publishes its adapter
    for path in source.iterdir():
        if path.name != "adapter_model.safetensors":
            shutil.copy(path, tmp / path.name)
    weights = (source / "adapter_model.safetensors").read_bytes()
    with open(tmp / "adapter_model.safetensors", "wb") as out:
        out.write(weights[: len(weights) // 2])
        out.flush()
        print("half written", flush=True)
        sys.stdin.read()  # never returns: the test kills the process here
        out.write(weights[len(weights) // 2 :])
"""


def _kill_mid_write(source: Path, dest: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(source), str(dest)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "half written"
    writer.kill()
    assert writer.wait(timeout=30) == -signal.SIGKILL


def test_an_adapter_killed_mid_write_is_never_seen(tmp_path: Path, tiny_base: Path, monkeypatch, capsys) -> None:
    previous, update = adapter_of(tiny_base, tmp_path / "v1"), adapter_of(tiny_base, tmp_path / "v2")
    run = tmp_path / "ws" / "runs" / "tiny-vqa-lora"
    shutil.copytree(previous, run / "adapter")
    before = file_hashes(run / "adapter")

    _kill_mid_write(update, run / "adapter")
    assert file_hashes(run / "adapter") == before, "the previous adapter, byte for byte"
    assert [p.name for p in run.iterdir() if p.name.startswith(".adapter-")], "the half-written one lies aside"
    load_for_inference(str(tiny_base), run / "adapter")  # and it still loads

    first = tmp_path / "ws" / "runs" / "first" / "adapter"
    _kill_mid_write(update, first)
    assert not first.exists()
    monkeypatch.setenv("PALITUNE_HOME", str(tmp_path / "ws"))
    dataset = write_shapes_vqa(tmp_path / "data", sizes=SIZES)
    report = tmp_path / "report"
    command = ["evaluate", "run", "--model", str(tiny_base), "--adapter", str(first), "--dataset", str(dataset)]
    assert main([*command, "--output", str(report)]) == 2
    assert f"{first}: no such adapter or model folder" in capsys.readouterr().err
    assert not report.exists()
    with pytest.raises(ModelFolderError):
        load_for_inference(str(tiny_base), first)


# -- SIGKILL during data version -----------------------------------------------------------


def _objects(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def _kill_version_when(ws: Path, dataset: Path, grows: Path) -> None:
    """Run ``palitune data version`` and SIGKILL it as soon as ``grows`` gains a file."""
    start = _objects(grows)
    proc = subprocess.Popen(
        [sys.executable, "-m", "palitune.cli", "data", "version", str(dataset)],
        cwd=REPO,
        env={**os.environ, "PALITUNE_HOME": str(ws)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while _objects(grows) == start and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.kill()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"finished before the kill: {err.decode()[-2000:]}"


def _fresh_clone_restores(tmp_path: Path, ws: Path, digest: str, expected: dict[str, str]) -> None:
    clone = tmp_path / f"clone-{digest[:8]}"
    ensure_repo(clone, Workspace(ws).dvc_remote)
    restored = restore_dataset(clone, digest, clone / "vqa")
    assert file_hashes(restored.path) == expected


@pytest.mark.slow
def test_data_version_killed_mid_way(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ensure_repo(ws, Workspace(ws).dvc_remote)
    dataset = write_shapes_vqa(ws / "dvc-data" / "vqa", sizes=SIZES)
    first = version_dataset(ws, dataset).hash
    first_files = file_hashes(dataset)
    shutil.rmtree(dataset)  # the next version: many more images, so adding and pushing take a while
    write_shapes_vqa(dataset, sizes=SplitSizes(train=1500, val=50, test=50), seed=1)

    for phase, grows in (("add", ws / ".dvc" / "cache"), ("push", Workspace(ws).dvc_remote)):
        _kill_version_when(ws, dataset, grows)
        _fresh_clone_restores(tmp_path / phase, ws, first, first_files)  # the previous version, intact
        with pytest.raises(DataError) as refused:  # training verifies the folder first, and refuses it
            train(load_config(CONFIG, [f"dataset={dataset}"]), Workspace(ws), tracking_uri=f"sqlite:///{ws}/m.db")
        assert "interrupted before its push completed" in str(refused.value) or first in str(refused.value)
        assert not (ws / "runs").exists()

    second = version_dataset(ws, dataset).hash  # the rerun completes
    assert second != first and recorded_hash(dataset) == second
    assert not list(dataset.parent.glob(f"*{LAST_PUSHED_SUFFIX}"))
    _fresh_clone_restores(tmp_path / "rerun", ws, second, file_hashes(dataset))


# -- DVC remote unreachable or read-only during push ---------------------------------------


@contextlib.contextmanager
def _remote_fault(kind: str, remote: Path) -> Iterator[tuple[Callable[[], None], Callable[[], None]]]:
    """(break, mend) of the local DVC remote at ``remote``: unreachable, its object store a
    regular file; read-only, a folder tree without write permission, or where permissions stop
    no write (root), a tmpfs remounted read-only."""
    objects, aside = remote / "files", remote / "files.aside"
    mounted = False
    if kind == "read-only" and not _permissions_stop_writes(remote.parent):
        mounted = _mount_tmpfs(remote, "64m")
        if not mounted:
            pytest.skip("permissions do not stop this user's writes (root), and tmpfs cannot be mounted here")

    def break_() -> None:
        if kind == "unreachable":
            objects.rename(aside)
            objects.write_text("not a folder")
        elif mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(remote)], check=True)
        else:
            for folder in [remote, *(p for p in remote.rglob("*") if p.is_dir())]:
                folder.chmod(0o555)

    def mend() -> None:
        if kind == "unreachable":
            objects.unlink()
            aside.rename(objects)
        elif mounted:
            subprocess.run(["mount", "-o", "remount,rw", str(remote)], check=True)
        else:
            for folder in [remote, *(p for p in remote.rglob("*") if p.is_dir())]:
                folder.chmod(0o755)

    try:
        yield break_, mend
    finally:
        if mounted:
            _unmount(remote)


@pytest.mark.parametrize("kind", ["unreachable", "read-only"])
def test_a_failed_push_records_no_version(kind: str, tmp_path: Path, monkeypatch, capsys) -> None:
    ws = tmp_path / "ws"
    remote = Workspace(ws).dvc_remote
    monkeypatch.setenv("PALITUNE_HOME", str(ws))
    with _remote_fault(kind, remote) as (break_, mend):
        dataset = write_shapes_vqa(ws / "dvc-data" / "vqa", sizes=SIZES)
        assert main(["data", "version", str(dataset)]) == 0
        first, record = recorded_hash(dataset), (ws / "dvc-data" / "vqa.dvc").read_bytes()
        pushed = file_hashes(remote)
        with (dataset / "train.jsonl").open("a") as f:
            f.write("\n")  # new bytes, a new version
        capsys.readouterr()

        break_()
        assert main(["data", "version", str(dataset)]) == 1
        message = capsys.readouterr().err
        assert message.startswith(f"palitune: error: {remote}: pushing vqa failed"), message
        assert "vqa.dvc is left as it was and no new version is recorded" in message
        assert (ws / "dvc-data" / "vqa.dvc").read_bytes() == record
        assert not (ws / "dvc-data" / f"vqa.dvc{LAST_PUSHED_SUFFIX}").exists()
        assert recorded_hash(dataset) == first
        with pytest.raises(DataError, match=f"does not match dataset version {first}"):  # nothing downstream runs
            train(load_config(CONFIG, ["dataset=dvc-data/vqa"]), Workspace(ws), tracking_uri=f"sqlite:///{ws}/m.db")
        assert not (ws / "runs").exists()
        mend()
        assert file_hashes(remote) == pushed, "nothing new reached the remote"

        assert main(["data", "version", str(dataset)]) == 0  # the same command, once the remote is back
        assert recorded_hash(dataset) not in (None, first)


# -- MLflow unreachable at registration ----------------------------------------------------


def test_registration_against_a_closed_port_fails_fast_and_changes_nothing(
    tmp_path: Path, tiny_base: Path, monkeypatch
) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    adapter = adapter_of(tiny_base, tmp_path / "adapter")
    run_id = registry_with_a_champion(uri, tmp_path / "artifacts", adapter)
    before = registry_state(uri)
    for name, value in QUICK_RETRIES.items():
        monkeypatch.setenv(name, value)
    server = f"http://127.0.0.1:{closed_port()}"

    start = time.monotonic()
    with pytest.raises(RegistryError) as raised:
        register_adapter(client_for(server), run_id, adapter, NAME, {"palitune.base_model": str(tiny_base)})
    assert time.monotonic() - start < 60, "bounded retries"
    message = str(raised.value)
    assert message.startswith(f"{server}: {NAME}: "), message  # the step: whichever first needed the server
    assert "No version was created and no alias moved (champion included)" in message
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" in message
    assert registry_state(uri) == before


def _serve(uri: str, artifacts: Path, port: int, log: Path) -> subprocess.Popen:
    """A real ``mlflow server`` on ``uri``, flags as ``make mlflow-ui``; in its own process group."""
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", uri]
    command += ["--default-artifact-root", artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--workers", "1"], stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server
        assert server.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    os.killpg(server.pid, signal.SIGKILL)
    raise AssertionError(f"mlflow server did not start: {log.read_text()[-3000:]}")


@pytest.mark.slow
def test_registration_after_the_server_died_leaves_the_registry_as_it_was(
    tmp_path: Path, tiny_base: Path, monkeypatch
) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    adapter = adapter_of(tiny_base, tmp_path / "adapter")
    registry_with_a_champion(uri, tmp_path / "artifacts", adapter)
    before = registry_state(uri)
    port = closed_port()
    server = _serve(uri, tmp_path / "served", port, tmp_path / "server.log")
    try:  # a run opened and logged to while the server is up, as training does
        client = client_for(f"http://127.0.0.1:{port}")
        run_id = open_run(client, "palitune", tmp_path / "artifacts", run_name="v2", tags={})
        client.log_param(run_id, "learning_rate", "0.001")
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the server dies before the adapter is registered
        server.wait(timeout=60)
    for name, value in QUICK_RETRIES.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(RegistryError, match="No version was created and no alias moved"):
        register_adapter(client, run_id, adapter, NAME, {"palitune.base_model": str(tiny_base)})
    assert registry_state(uri) == before, "read from the store the server wrote: no version, same champion"
    assert client_for(uri).get_run(run_id).data.params == {"learning_rate": "0.001"}, "what was logged is kept"


# -- a checkpoint that cannot be written ---------------------------------------------------


@contextlib.contextmanager
def _spoiler(runs: Path) -> Iterator[tuple[Callable[[Path], None], Callable[[], None]]]:
    """(spoil, mend) of the file system under ``runs``: where permissions stop no write
    (root), a small tmpfs filled up (ENOSPC); otherwise the run's checkpoint folder made
    read-only (EACCES)."""
    use_tmpfs = not _permissions_stop_writes(runs.parent)
    mounted = use_tmpfs and _mount_tmpfs(runs, "32m")
    if use_tmpfs and not mounted:
        pytest.skip("permissions do not stop this user's writes (root), and tmpfs cannot be mounted here")
    filler = runs / "filler"
    spoiled: list[Path] = []

    def spoil(output_dir: Path) -> None:
        if mounted:
            with filler.open("wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
        else:
            spoiled.append(output_dir / "checkpoints")
            spoiled[-1].chmod(0o555)

    def mend() -> None:
        filler.unlink(missing_ok=True)
        for folder in spoiled:
            folder.chmod(0o755)

    try:
        yield spoil, mend
    finally:
        mend()
        if mounted:
            _unmount(runs)


@pytest.mark.slow
def test_a_checkpoint_that_cannot_be_written_keeps_the_previous_one(tmp_path: Path, tiny_base: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    write_shapes_vqa(ws.datasets / "vqa", sizes=SIZES)
    out = ws.runs / "full-disk"
    overrides = [f"base_model={tiny_base}", "dataset=dvc-data/vqa", "output_dir=runs/full-disk", "steps=6"]
    overrides += ["batch_size=4", "log_every=3", "checkpoint_every=2", "num_threads=1"]
    config, uri = load_config(CONFIG, overrides), f"sqlite:///{tmp_path}/mlflow.db"
    with _spoiler(ws.runs) as (spoil, mend):

        def on_log(step: int, metrics: dict[str, float]) -> None:
            if step == 3:  # after the checkpoint of step 2, before that of step 4
                spoil(out)

        with pytest.raises(CheckpointError) as raised:
            train(config, ws, tracking_uri=uri, on_log=on_log)
        message = str(raised.value)
        assert message.startswith(f"{out}/checkpoints/step-00000004: the checkpoint of step 4 could not be written")
        assert "step-00000002 is kept and the same command resumes from it" in message
        assert [p.name for p in list_checkpoints(out)] == ["step-00000002"]
        assert read_state(list_checkpoints(out)[0]).step == 2
        assert not staging_dir(out, 4).exists(), "the partial checkpoint is removed, its space freed"
        assert not (out / "adapter").exists()

        mend()
        result = train(config, ws, tracking_uri=uri)
        assert result.resumed_from_step == 2
        assert (result.adapter_dir / "adapter_model.safetensors").is_file()
