"""Assets persist their own artifacts and hand nothing to an IO manager; downstream assets find
the artifacts through the event log; the champion's metadata reads as a person needs it."""

import typing
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, MaterializeResult, materialize

from data.workspace import Workspace
from orchestration.defs import assets
from orchestration.defs.dataset_assets import dataset_version
from orchestration.defs.registry_assets import champion_metadata
from orchestration.defs.resources import DvcResource, MlflowResource, WorkspaceResource
from registry.models import RegisteredVersion
from registry.promotion import Decision


def test_no_asset_passes_a_python_object_through_an_io_manager() -> None:
    """A pickled output is lost with its pod: every asset returns a ``MaterializeResult``
    (without a value, so no IO manager stores anything) and loads no input (its upstream
    assets are ``Nothing`` dependencies)."""
    for asset in assets.ALL:
        name = asset.key.to_user_string()
        returns = typing.get_type_hints(asset.op.compute_fn.decorated_fn).get("return")
        assert returns is MaterializeResult, f"{name} returns {returns}, not a MaterializeResult"
        for upstream in asset.op.input_defs:
            assert upstream.dagster_type.is_nothing, f"{name} loads {upstream.name} through an IO manager"


def test_a_downstream_asset_reads_its_upstream_from_the_event_log(tmp_path: Path) -> None:
    """Without a materialization of ``raw_dataset`` for the partition, ``dataset_version`` has
    nothing to version: it says so once, without retries."""
    resources = {"workspace": WorkspaceResource(root=str(tmp_path)), "dvc": DvcResource()}
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [dataset_version], partition_key="vqa", resources=resources, instance=instance, raise_on_error=False
        )
        assert not result.success
        events = result.events_for_node("dataset_version")
        assert not [e for e in events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
        (failure,) = [e for e in events if e.event_type == DagsterEventType.STEP_FAILURE]
        assert "raw_dataset[vqa] has not been materialized yet" in str(failure.step_failure_data.error)
        assert instance.get_latest_materialization_event(AssetKey("dataset_version")) is None


def _decision(promote: bool, p_value: float) -> Decision:
    kind = "untrained base" if promote else "champion v1"
    return Decision(promote, "vqa/test/vqa_accuracy", 0.8125, 0.0, kind, "why", 0.7123456, 0.9034567, p_value)


def test_champion_metadata_names_the_baseline_and_links_the_version_on_the_server_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PALITUNE_MLFLOW_UI", raising=False)
    layout = Workspace(tmp_path)
    challenger = RegisteredVersion("palitune-vqa", "2", "run", "models:/m-1")
    server = MlflowResource(tracking_uri="https://mlflow.example.org:8443/")
    page = lambda number: server.model_version_url(layout, "palitune-vqa", number)  # noqa: E731

    shown = champion_metadata(_decision(True, 0.0000999), challenger, "2", page)
    assert shown["baseline"] == "untrained base" and shown["baseline_score"] == 0.0
    assert shown["p_value"] == "<0.001" and shown["gain_ci"] == [0.7123, 0.9035]
    assert shown["champion_uri"] == "models:/palitune-vqa/2" and shown["challenger_uri"] == "models:/palitune-vqa/2"
    assert shown["champion_page"].value == "https://mlflow.example.org:8443/#/models/palitune-vqa/versions/2"

    kept = champion_metadata(_decision(False, 0.4321), challenger, "1", page)
    assert kept["baseline"] == "champion v1" and kept["p_value"] == "0.432" and not kept["promoted"]
    assert kept["champion_uri"] == "models:/palitune-vqa/1" and kept["challenger_uri"] == "models:/palitune-vqa/2"
    assert kept["challenger_page"].value.endswith("/#/models/palitune-vqa/versions/2")

    local = MlflowResource(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")  # the UI `make mlflow-ui` serves
    assert (
        local.model_version_url(layout, "palitune-vqa", "1") == "http://127.0.0.1:5000/#/models/palitune-vqa/versions/1"
    )
    assert champion_metadata(_decision(False, 1.0), challenger, None, page)["champion_version"] == "none"
