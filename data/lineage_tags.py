"""The MLflow tag keys palitune writes on a run or a model version, named once.

Here, at the bottom of the import graph, so that training (which logs a run's tags) and the
registry (which reads and extends them) spell them the same way; ``registry.lineage`` says
what a version is traced to with them.
"""

TAG_PREFIX = "palitune."
TASK_TAG = "palitune.task"
DATASET_TAG = "palitune.dataset_hash"
BASE_MODEL_TAG = "palitune.base_model"
CONFIG_HASH_TAG = "palitune.config_hash"
METHOD_TAG = "palitune.method"
GIT_COMMIT_TAG = "palitune.git_commit"
GIT_DIRTY_TAG = "palitune.git_dirty"
DAGSTER_RUN_TAG = "palitune.dagster_run_id"
METRIC_TAG_PREFIX = "palitune.metric."
PROMOTION_TAG_PREFIX = "palitune.promotion."
LAST_CHALLENGE_TAG = PROMOTION_TAG_PREFIX + "last_challenge"
PROMOTION_REASON_TAG = PROMOTION_TAG_PREFIX + "reason"
ROLLBACK_TAG = "palitune.rollback"
UNVERSIONED = "unversioned"  # the dataset tag of a run trained on a folder DVC does not track
