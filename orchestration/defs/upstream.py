"""What a downstream asset knows of its upstream: the metadata its last materialization recorded.

Every asset persists its artifact itself (a dataset folder versioned by DVC, an adapter on
disk, a run and a model version in MLflow) and returns a ``MaterializeResult``: no Python
object goes through an IO manager. Downstream assets find the artifact from the metadata
of the upstream's latest materialization of the same task partition, read from the
instance's event log. That log is the one store every run shares (SQLite locally,
PostgreSQL at scale), so a re-execution from failure in a fresh pod, with none of the first
run's local files, finds what it needs.
"""

from __future__ import annotations

from typing import Any

from dagster import AssetExecutionContext, AssetKey, AssetRecordsFilter, Failure


class UpstreamMetadata(dict[str, Any]):
    """An upstream materialization's metadata by key; a missing key is a ``Failure`` naming the
    asset and the key (a materialization recorded by an older code version may lack it)."""

    def __init__(self, asset: str, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.asset = asset

    def __missing__(self, key: str) -> Any:
        raise Failure(
            description=f"{self.asset}: its latest materialization has no metadata {key!r}; "
            f"materialize {self.asset} again",
            allow_retries=False,
        )


def upstream_metadata(context: AssetExecutionContext, asset: str) -> UpstreamMetadata:
    """The metadata of the latest materialization of ``asset`` for this run's task partition,
    as plain values (a path as its string, a URL as its text).

    Raises:
        Failure: (not retried) ``asset`` has no materialization for the partition yet.
    """
    task = context.partition_key
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[task]), limit=1
    ).records
    materialization = records[0].asset_materialization if records else None
    if materialization is None:
        raise Failure(
            description=f"{asset}[{task}] has not been materialized yet: materialize it (or the whole graph) first",
            allow_retries=False,
        )
    return UpstreamMetadata(asset, {key: value.value for key, value in materialization.metadata.items()})
