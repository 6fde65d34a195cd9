"""What a person looks at after a run: the model versions, their aliases and lineage."""

from __future__ import annotations

import sys

from data.workspace import Workspace
from registry.models import CHAMPION, model_name
from registry.tracking import client_for, run_url


def print_summary(ws: Workspace, *, task: str = "vqa") -> int:
    """Print the registered versions of ``palitune-<task>``; non-zero if there is no champion."""
    uri = ws.tracking_uri
    client, name = client_for(uri), model_name(task)
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    aliases_of: dict[str, list[str]] = {}
    if versions:  # search results carry no aliases; the registered model does
        for alias, number in client.get_registered_model(name).aliases.items():
            aliases_of.setdefault(str(number), []).append(alias)
    print(f"workspace        {ws.root}")
    print(f"MLflow store     {uri}")
    print(f"  browse it:     .venv/bin/mlflow ui --backend-store-uri {uri} --host 127.0.0.1")
    print(f"Dagster home     {ws.dagster_home}  (make ui, then http://127.0.0.1:3000)")
    print(f"registered model {name}: {len(versions)} version(s)")
    champion = None
    for v in versions:
        aliases = ",".join(sorted(aliases_of.get(str(v.version), []))) or "-"
        tags = v.tags
        metrics = {
            k.removeprefix("palitune.metric."): val for k, val in tags.items() if k.startswith("palitune.metric.")
        }
        print(
            f"  v{v.version:<3} aliases={aliases:<28} dataset={tags.get('palitune.dataset_hash')} "
            f"metrics={metrics} decision={tags.get('palitune.promotion.reason', '-')}"
        )
        if CHAMPION in aliases_of.get(str(v.version), []):
            champion = v
    if champion is None or champion.run_id is None:
        print("no champion yet")
        return 1
    run = client.get_run(champion.run_id)
    print(f"champion         models:/{name}@{CHAMPION} = v{champion.version}")
    print(f"  dataset hash   {champion.tags.get('palitune.dataset_hash')}")
    print(f"  MLflow run     {champion.run_id}  {run_url(uri, champion.run_id, run.info.experiment_id)}")
    print(f"  untrained base {_untrained_score(run.data.metrics)}")
    return 0


def _untrained_score(metrics: dict[str, float]) -> str:
    return (
        ", ".join(f"{k.removeprefix('untrained/')}={v:.3f}" for k, v in metrics.items() if k.startswith("untrained/"))
        or "-"
    )


def print_lineage(ws: Workspace, name: str) -> int:
    """Print every version of ``name`` with its aliases and lineage tags; non-zero if none."""
    uri = ws.tracking_uri
    client = client_for(uri)
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    if not versions:
        print(f"{name}: no such registered model in {uri}", file=sys.stderr)
        return 1
    aliases_of: dict[str, list[str]] = {}
    for alias, number in client.get_registered_model(name).aliases.items():
        aliases_of.setdefault(str(number), []).append(alias)
    for v in versions:
        print(f"{name} v{v.version}  aliases: {', '.join(sorted(aliases_of.get(str(v.version), []))) or '-'}")
        print(f"  source       {v.source}")
        print(f"  run          {v.run_id}")
        for key, value in sorted(v.tags.items()):
            if key.startswith("palitune."):
                print(f"  {key.removeprefix('palitune.'):<28} {value}")
    return 0
