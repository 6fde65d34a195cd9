"""The lifecycle, one asset per artifact:

raw_dataset -> dataset_version -> finetuned_adapter -> evaluation_report -> model_version -> champion
"""

from orchestration.defs.dataset_assets import dataset_version, raw_dataset
from orchestration.defs.evaluation_assets import evaluation_report
from orchestration.defs.registry_assets import champion, model_version
from orchestration.defs.training_assets import finetuned_adapter

ALL = [raw_dataset, dataset_version, finetuned_adapter, evaluation_report, model_version, champion]
