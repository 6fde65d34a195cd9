"""Champion/challenger: move ``champion`` only to a version that wins on the same test set."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from evaluation.report import EvaluationReport
from registry.models import CHAMPION, PREVIOUS_CHAMPION, version_by_alias


@dataclass(frozen=True)
class Decision:
    promote: bool
    metric: str
    challenger: float
    baseline: float
    baseline_kind: str  # "champion vN" or "untrained base"
    reason: str

    def as_tags(self) -> dict[str, str]:
        return {
            "palitune.promotion.decision": "promoted" if self.promote else "rejected",
            "palitune.promotion.metric": self.metric,
            "palitune.promotion.challenger": f"{self.challenger:.6g}",
            "palitune.promotion.baseline": f"{self.baseline:.6g}",
            "palitune.promotion.baseline_kind": self.baseline_kind,
            "palitune.promotion.reason": self.reason,
        }


def decide(
    challenger: EvaluationReport, baseline: EvaluationReport, baseline_kind: str, *, margin: float = 0.0
) -> Decision:
    """Promote when the challenger's primary metric beats the baseline's by more than
    ``margin``, both scored on the same examples of the same dataset version.

    Raises:
        ValueError: when the two reports were not scored on the same examples.
    """
    if [p.id for p in challenger.predictions] != [p.id for p in baseline.predictions] or (
        challenger.dataset_hash != baseline.dataset_hash
    ):
        raise ValueError("challenger and baseline were not evaluated on the same examples")
    metric = challenger.primary_metric
    new, old = challenger.metrics[metric], baseline.metrics[metric]
    promote = new > old + margin
    verdict = "beats" if promote else "does not beat"
    reason = f"{metric} {new:.4f} {verdict} {baseline_kind} {old:.4f} + margin {margin}"
    return Decision(promote, metric, new, old, baseline_kind, reason)


def apply_decision(client: MlflowClient, name: str, version: str, decision: Decision) -> str | None:
    """Record the decision on the version; when it wins, make it ``champion`` and keep the
    replaced one as ``previous-champion``. Returns the champion version afterwards."""
    for key, value in decision.as_tags().items():
        client.set_model_version_tag(name, version, key, value)
    current = version_by_alias(client, name, CHAMPION)
    if decision.promote:
        if current is not None and str(current.version) != version:
            client.set_registered_model_alias(name, PREVIOUS_CHAMPION, str(current.version))
        client.set_registered_model_alias(name, CHAMPION, version)
        return version
    return None if current is None else str(current.version)


ChampionEvaluator = Callable[[ModelVersion, Path], EvaluationReport]


def run_promotion(
    client: MlflowClient,
    name: str,
    version: str,
    challenger: EvaluationReport,
    untrained: EvaluationReport,
    evaluate_version: ChampionEvaluator,
    *,
    margin: float = 0.0,
) -> tuple[Decision, str | None]:
    """Compare the new version with the current champion on the challenger's test set.

    With no champion yet, the baseline is the untrained base scored on that set. The
    champion is re-scored (``evaluate_version(version, scratch_dir)``) rather than trusting
    numbers it got on another dataset version.

    Returns:
        The decision and the champion version afterwards.
    """
    current = version_by_alias(client, name, CHAMPION)
    if current is None or str(current.version) == version:
        baseline, kind = untrained, "untrained base"
    else:
        with tempfile.TemporaryDirectory(prefix="palitune-champion-") as scratch:
            baseline = evaluate_version(current, Path(scratch))
        kind = f"champion v{current.version}"
    decision = decide(challenger, baseline, kind, margin=margin)
    return decision, apply_decision(client, name, version, decision)
