"""``palitune summary`` and ``palitune registry show``: what a person looks at after a run,
the model versions, their aliases and lineage."""

from __future__ import annotations

import argparse

from data.workspace import Workspace
from palitune.cli.common import FAILED, Subparsers, log


def add_commands(sub: Subparsers) -> None:
    """Add ``summary`` to the top-level subparsers ``sub``."""
    summary = sub.add_parser("summary", help="where to look: MLflow run, model versions, aliases, data")
    from data.tasks import TASKS

    summary.add_argument(
        "--task", default="vqa", choices=sorted(TASKS), help="task whose registered model to show (default vqa)"
    )
    summary.set_defaults(func=_summary)


def _summary(args: argparse.Namespace, ws: Workspace) -> int:
    return print_summary(ws, task=args.task)


def print_summary(ws: Workspace, *, task: str = "vqa") -> int:
    """Print the registered versions of ``palitune-<task>``; non-zero if there is no champion."""
    from registry.lineage import DATASET_TAG, PROMOTION_REASON_TAG
    from registry.models import CHAMPION, model_name
    from registry.tracking import UNTRAINED, client_for, logged_evaluation, run_link, ui_url, version_url
    from registry.versions import list_versions

    uri = ws.tracking_uri
    client, name = client_for(uri), model_name(task)
    versions = list_versions(client, name)
    print(f"workspace        {ws.root}")
    print(f"MLflow store     {uri}")
    print(f"  browse it:     {ui_url(uri)}  (for a local store: make mlflow-ui; PALITUNE_MLFLOW_UI moves it)")
    print(f"Dagster home     {ws.dagster_home}  (make ui, then http://127.0.0.1:3000)")
    print(f"registered model {name}: {len(versions)} version(s)")
    champion = None
    for v in versions:
        print(
            f"  v{v.version:<3} aliases={','.join(v.aliases) or '-':<28} dataset={v.tags.get(DATASET_TAG)} "
            f"metrics={v.metrics} decision={v.description or v.tags.get(PROMOTION_REASON_TAG, '-')}"
        )
        if CHAMPION in v.aliases:
            champion = v
    if champion is None or champion.run_id is None:
        print("no champion yet")
        return FAILED
    print(f"champion         models:/{name}@{CHAMPION} = v{champion.version}")
    print(f"  dataset hash   {champion.tags.get(DATASET_TAG)}")
    print(f"  MLflow version {version_url(uri, name, champion.version)}")
    print(f"  MLflow run     {champion.run_id}  {run_link(client, champion.run_id)}")
    untrained = logged_evaluation(client, champion.run_id, label=UNTRAINED)
    print(f"  untrained base {', '.join(f'{k}={v:.3f}' for k, v in untrained.items()) or '-'}")
    return 0


def print_lineage(ws: Workspace, name: str) -> int:
    """Print every version of ``name`` with its aliases and lineage tags; non-zero if none."""
    from registry.models import registered_model
    from registry.tracking import client_for, version_url
    from registry.versions import list_versions

    uri = ws.tracking_uri
    client = client_for(uri)
    registered_model(client, name)  # UnknownModelError, listing the models there are: exit 2 in one line
    versions = list_versions(client, name)
    if not versions:
        log.warning("%s: registered, but it has no version in %s", name, uri)
        return FAILED
    for v in versions:
        print(f"{name} v{v.version}  aliases: {', '.join(v.aliases) or '-'}")
        print(f"  description  {v.description or '-'}")
        print(f"  page         {version_url(uri, name, v.version)}")
        print(f"  source       {v.source}")
        print(f"  run          {v.run_id}")
        for key, value in v.lineage.items():
            print(f"  {key:<28} {value}")
    return 0
