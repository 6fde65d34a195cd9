"""What the reliability suite tries: each fault it really causes, each kind of bad input.

This list is the single source of both the tests and the tables of docs/reliability.md
(``python -m tests.reliability.table`` writes them): a fault names the test that causes it;
a bad input is declared, with where its refusal must point, by the builder registered in
``bad_inputs.py``, and ``test_bad_inputs.py`` runs every one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Fault:
    """A fault a test really causes, and what must survive it."""

    fault: str
    how: str  # the real mechanism: a signal, a stopped server, a full file system...
    survives: str  # what the test asserts afterwards
    test: str  # pytest node id, relative to the repository root


@dataclass(frozen=True)
class BadInput:
    """One kind of bad input, the stage that must refuse it, and how the case is built."""

    name: str
    stage: str  # a key of STAGES
    kind: str
    at: str  # where the refusal points, as the message writes it: "val.jsonl:2: image"
    says: str  # a phrase of the message, after or beside that location
    build: Callable[[Any, Path], Any]  # (Bench, folder) -> Attempt


RELIABILITY = "tests/reliability"
FAULTS = [
    Fault(
        "SIGKILL during training",
        "a training run killed with SIGKILL after its first checkpoint, then the same command rerun",
        "resumes from the last checkpoint in the same MLflow run; losses equal an uninterrupted run's "
        "step for step, final adapter within 1e-5; no `adapter/` folder exists before the end",
        "tests/training/test_distributed.py::test_a_killed_run_resumes_to_the_losses_of_an_uninterrupted_one",
    ),
    Fault(
        "SIGKILL while the adapter is written",
        "a process writing a real adapter through the staged folder killed with SIGKILL mid-file",
        "the previous adapter stays byte for byte and still loads; with none before, evaluation refuses "
        "the missing folder; a half-written folder is never at the adapter's path",
        f"{RELIABILITY}/test_faults.py::test_an_adapter_killed_mid_write_is_never_seen",
    ),
    Fault(
        "SIGKILL during `data version`",
        "`palitune data version` killed with SIGKILL while DVC adds the new files, and again while it pushes",
        "the previous version restores from the remote alone on a fresh clone; training refuses the "
        "half-versioned folder; the rerun completes and its version restores too",
        f"{RELIABILITY}/test_faults.py::test_data_version_killed_mid_way",
    ),
    Fault(
        "MLflow unreachable at registration",
        "registration against a tracking URI on a closed 127.0.0.1 port, retries bounded by "
        "`MLFLOW_HTTP_REQUEST_MAX_RETRIES` and `MLFLOW_HTTP_REQUEST_TIMEOUT`",
        "`RegistryError` naming the server and step within the bound; no version; champion unchanged",
        f"{RELIABILITY}/test_faults.py::test_registration_against_a_closed_port_fails_fast_and_changes_nothing",
    ),
    Fault(
        "MLflow server stopped mid-run",
        "a real `mlflow server` serving the run is killed (SIGKILL) before the adapter is registered",
        "`RegistryError` after bounded retries; the store (read directly) has no new version and the same champion",
        f"{RELIABILITY}/test_faults.py::test_registration_after_the_server_died_leaves_the_registry_as_it_was",
    ),
    Fault(
        "DVC remote unreachable during push",
        "the remote's path runs through a regular file (ENOTDIR)",
        "`PushError` naming the remote; the `.dvc` record as it was; nothing new on the remote; "
        "training refuses the folder",
        f"{RELIABILITY}/test_faults.py::test_a_failed_push_records_no_version[unreachable]",
    ),
    Fault(
        "DVC remote read-only during push",
        "the remote is a tmpfs remounted read-only (EROFS) when run as root, a folder without write "
        "permission otherwise (EACCES)",
        "`PushError` naming the remote; the `.dvc` record as it was; nothing new on the remote; "
        "training refuses the folder",
        f"{RELIABILITY}/test_faults.py::test_a_failed_push_records_no_version[read-only]",
    ),
    Fault(
        "Disk full writing a checkpoint",
        "the run's folder on a small tmpfs filled up mid-run (ENOSPC) when run as root, its checkpoint "
        "folder made read-only (EACCES) otherwise",
        "`CheckpointError` naming the checkpoint, the step and what is kept; the previous checkpoint "
        "whole; the rerun resumes from it and finishes",
        f"{RELIABILITY}/test_faults.py::test_a_checkpoint_that_cannot_be_written_keeps_the_previous_one",
    ),
    Fault(
        "Concurrent promotions",
        "8 processes register and promote at once against one SQLite store",
        "8 distinct versions, exactly one champion (the best), `previous-champion` kept",
        "tests/registry/test_concurrency.py::test_eight_processes_get_distinct_versions_and_one_consistent_champion",
    ),
]


@dataclass(frozen=True)
class Default:
    """A security default and the test that holds it."""

    default: str
    test: str


SECURITY = [
    Default(
        "Weights and adapters load from safetensors only: every `from_pretrained` of a model says "
        "`use_safetensors=True`, an adapter folder holding `*.bin`/`*.pt`/`*.pkl` is refused",
        f"{RELIABILITY}/test_security.py::test_loading_is_safetensors_only_without_remote_code",
    ),
    Default(
        "No `torch.load`, `pickle.load`, `weights_only=False` or `trust_remote_code=True` anywhere; the "
        "one pickle read is Accelerate resuming the checkpoint a run wrote into its own `output_dir`",
        f"{RELIABILITY}/test_security.py::test_the_only_pickle_load_is_resuming_a_runs_own_checkpoint",
    ),
    Default(
        "`make ui` (`dagster dev`) and `make mlflow-ui` (`mlflow server`) bind 127.0.0.1; nothing binds 0.0.0.0",
        f"{RELIABILITY}/test_security.py::test_servers_bind_127_0_0_1_unless_configured",
    ),
    Default(
        "Secrets (`HF_TOKEN`, `MLFLOW_TRACKING_PASSWORD`) come from the environment and appear in no param, "
        "tag, metric, artifact, file or output of a real training and registration",
        f"{RELIABILITY}/test_security.py::test_secrets_never_reach_what_a_run_logs",
    ),
    Default(
        "MLflow pinned at a release past its known path-traversal and file-read CVEs (see `constraints.txt`); "
        "pickled MLflow models refused (`MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`)",
        f"{RELIABILITY}/test_security.py::test_mlflow_refuses_pickled_models",
    ),
]

# Where each kind of bad input enters, and what must stay unchanged when it is refused.
STAGES = {
    "dataset": ("`palitune data version`", "the folder, its `.dvc` record, the DVC remote"),
    "source": ("`palitune data ingest`", "the output folder is never created"),
    "config": ("`python -m training.train`", "no run folder, no MLflow store"),
    "model": ("training, `palitune evaluate run`", "no run folder, no MLflow store, no report"),
    "predictions": ("`palitune evaluate score`", "no scores file"),
    "registry": ("`palitune registry` / `predict`", "the registered models and aliases"),
}


def bad_inputs() -> list[BadInput]:
    """Every registered kind of bad input, in the order ``bad_inputs.py`` defines them."""
    from tests.reliability.bad_inputs import BAD_INPUTS

    return list(BAD_INPUTS)
