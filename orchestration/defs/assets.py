"""The lifecycle, one asset per artifact:

raw_dataset -> dataset_version -> finetuned_adapter -> evaluation_report -> model_version -> champion

Each persists its artifact itself (DVC, disk, MLflow) and returns a ``MaterializeResult``;
the next one finds the artifact through the metadata in the event log (``upstream``), so
no output is pickled and a re-execution from failure works with a pod per run.
"""

from orchestration.defs.dataset_assets import dataset_version, raw_dataset
from orchestration.defs.evaluation_assets import evaluation_report
from orchestration.defs.registry_assets import champion, model_version
from orchestration.defs.training_assets import finetuned_adapter

ALL = [raw_dataset, dataset_version, finetuned_adapter, evaluation_report, model_version, champion]
