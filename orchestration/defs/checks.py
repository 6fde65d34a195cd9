"""Blocking checks: a failing one stops everything downstream of its asset."""

from pathlib import Path

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from data.validate import validate_dataset
from orchestration.defs.dataset_assets import raw_dataset


@asset_check(asset=raw_dataset, blocking=True, description="The dataset passes `palitune data validate`.")
def dataset_is_valid(raw_dataset: str) -> AssetCheckResult:
    report = validate_dataset(Path(raw_dataset))
    shown = "\n".join(str(p) for p in report.problems[:50]) or "none"
    return AssetCheckResult(
        passed=report.ok,
        severity=AssetCheckSeverity.ERROR,
        metadata={"counts": MetadataValue.json(report.counts), "problems": MetadataValue.text(shown)},
    )


ALL = [dataset_is_valid]
