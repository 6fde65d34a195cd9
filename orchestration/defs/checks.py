"""Blocking checks: a failing one stops everything downstream of its asset."""

from dagster import AssetCheckResult, AssetCheckSeverity, asset_check

from data.schema import SPLITS, DataError, read_split
from orchestration.defs.dataset_assets import raw_dataset
from orchestration.defs.resources import WorkspaceResource


@asset_check(asset=raw_dataset, blocking=True, description="Every split parses, with images inside the root.")
def dataset_is_valid(workspace: WorkspaceResource) -> AssetCheckResult:
    root = workspace.layout.datasets / "vqa"
    counts, problems = {}, []
    for split in SPLITS:
        try:
            counts[split] = len(read_split(root, split))
        except DataError as err:
            problems.append(str(err))
    missing = [split for split, n in counts.items() if n == 0]
    problems += [f"{root / split}.jsonl: empty split" for split in missing]
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={"counts": counts, "problems": "\n".join(problems) or "none"},
    )


ALL = [dataset_is_valid]
