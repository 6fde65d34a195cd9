"""Champion/challenger: move ``champion`` only to a version that wins on the same test set."""

from __future__ import annotations

import dataclasses
import tempfile
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from evaluation.compare import compare
from evaluation.report import EvaluationReport
from registry.lineage import LAST_CHALLENGE_TAG, PROMOTION_TAG_PREFIX, ROLLBACK_TAG
from registry.models import CHAMPION, PREVIOUS_CHAMPION, model_lock, version_by_alias
from registry.tracking import link_evaluation, logged_model_id


def _gate(default: Any, help_text: str, **extra: Any) -> Any:
    """A policy field that users set (a ``palitune registry promote`` flag, a Dagster config
    field), ``help_text`` its help in both; ``extra`` (``flag``, ``metavar``, ``example``)
    shapes the flag when its name or value is not the field's plain one."""
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help_text, **extra})
    return field(default=default, metadata={"help": help_text, **extra})


@dataclass(frozen=True)
class PromotionPolicy:
    """When a challenger may take ``champion``. All three gates must pass.

    The gates (the fields with help text) are declared here only: the flags of ``palitune
    registry promote`` and the config of the Dagster ``champion`` asset derive from them
    (``policy_gates``).

    Attributes:
        margin: the lower bound of the paired-bootstrap interval of the gain (challenger
            minus baseline, per example) must exceed it. With margin 0, the challenger must
            be better beyond the noise of the test set, not just higher.
        slice_tolerance: no slice (a tag value of the data) may lose more than this on average.
        min_slice_examples: slices smaller than this are reported, not judged (too noisy).
        floors: absolute minimums of the challenger's metrics, by metric name
            (``{"vqa_accuracy": 0.5}``; matched against ``task/split/<name>``).
        confidence, resamples, seed: of the paired bootstrap (``evaluation.compare``).
    """

    margin: float = _gate(0.0, "the gain's CI lower bound must exceed this")
    slice_tolerance: float = _gate(0.05, "largest mean loss allowed on a slice")
    min_slice_examples: int = _gate(20, "smaller slices are not judged")
    floors: dict[str, float] = _gate(
        {}, "absolute minimum", flag="--floor", metavar="METRIC=VALUE", example="vqa_accuracy=0.5"
    )
    confidence: float = 0.95
    resamples: int = 10_000
    seed: int = 0

    @classmethod
    def from_gates(cls, values: Mapping[str, Any]) -> PromotionPolicy:
        """A policy with the gates in ``values`` (by field name) and the other fields' defaults.

        Raises:
            ValueError: a name in ``values`` that is not a gate; the message lists the gates.
        """
        names = [gate.name for gate in policy_gates()]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"promotion policy: {', '.join(unknown)}: not a gate (gates: {', '.join(names)})")
        chosen: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in values.items()}
        return cls(**chosen)


@dataclass(frozen=True)
class Gate:
    """One user-set field of ``PromotionPolicy``: its name, type, default and help text."""

    name: str
    type: Any
    default: Any
    help: str
    metadata: Mapping[str, Any]


def policy_gates() -> list[Gate]:
    """The gates of ``PromotionPolicy`` in declaration order, with their resolved types."""
    hints = typing.get_type_hints(PromotionPolicy)
    gates = []
    for spec in dataclasses.fields(PromotionPolicy):
        if "help" in spec.metadata:
            factory = spec.default_factory
            default = spec.default if factory is dataclasses.MISSING else factory()
            gates.append(Gate(spec.name, hints[spec.name], default, spec.metadata["help"], spec.metadata))
    return gates


@dataclass(frozen=True)
class Decision:
    """What a promotion concluded: the scores compared, the paired gain's interval, and why."""

    promote: bool
    metric: str
    challenger: float
    baseline: float
    baseline_kind: str  # "champion vN" or "untrained base"
    reason: str
    ci_low: float = 0.0
    ci_high: float = 0.0
    p_value: float = 1.0
    failures: tuple[str, ...] = ()

    @property
    def p_value_text(self) -> str:
        """The p-value as a person reads it: three decimals, ``<0.001`` below that (a
        bootstrap's smallest p-value is ``1 / (resamples + 1)``, not a number worth printing)."""
        return "<0.001" if self.p_value < 0.001 else f"{self.p_value:.3f}"

    def summary(self) -> str:
        """The decision in one line, the model version's description in the MLflow UI, e.g.
        ``promoted: vqa/test/vqa_accuracy 0.5000 vs untrained base 0.0000, gain CI [+0.4000,
        +0.6000], p <0.001``; a rejection adds the first gate it failed."""
        verdict = "promoted" if self.promote else "rejected"
        line = (
            f"{verdict}: {self.metric} {self.challenger:.4f} vs {self.baseline_kind} {self.baseline:.4f}, "
            f"gain CI [{self.ci_low:+.4f}, {self.ci_high:+.4f}], p {self.p_value_text}"
        )
        if not self.failures:
            return line
        more = f" (+{len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        return f"{line}; {self.failures[0]}{more}"

    def as_tags(self) -> dict[str, str]:
        """The decision as model version tags, ``palitune.promotion.<field>``."""
        fields = {
            "decision": "promoted" if self.promote else "rejected",
            "metric": self.metric,
            "challenger": f"{self.challenger:.6g}",
            "baseline": f"{self.baseline:.6g}",
            "baseline_kind": self.baseline_kind,
            "gain_ci": f"[{self.ci_low:.6g}, {self.ci_high:.6g}]",
            "p_value": f"{self.p_value:.4g}",
            "reason": self.reason,
        }
        return {PROMOTION_TAG_PREFIX + key: value for key, value in fields.items()}


def decide(
    challenger: EvaluationReport,
    baseline: EvaluationReport,
    baseline_kind: str,
    *,
    policy: PromotionPolicy | None = None,
) -> Decision:
    """Judge the challenger against the baseline, both scored on the same examples.

    Promote only when the paired-bootstrap lower bound of the per-example gain exceeds the
    margin, no large-enough slice regresses beyond the tolerance, and every floor holds.

    Raises:
        ValueError: when the two reports were not scored on the same examples.
    """
    policy = policy or PromotionPolicy()
    if [p.id for p in challenger.predictions] != [p.id for p in baseline.predictions] or (
        challenger.dataset_hash != baseline.dataset_hash
    ):
        raise ValueError("challenger and baseline were not evaluated on the same examples")
    paired = compare(challenger, baseline, resamples=policy.resamples, seed=policy.seed, confidence=policy.confidence)
    metric = challenger.primary_metric
    new, old = challenger.metrics[metric], baseline.metrics[metric]
    failures = []
    if not paired.ci_low > policy.margin:
        failures.append(
            f"gain {paired.mean_difference:+.4f}, {policy.confidence:.0%} CI [{paired.ci_low:+.4f}, "
            f"{paired.ci_high:+.4f}]: lower bound not above margin {policy.margin}"
        )
    for delta in paired.slices:
        if delta.examples >= policy.min_slice_examples and delta.mean_difference < -policy.slice_tolerance:
            failures.append(
                f"slice {delta.key}={delta.value} ({delta.examples} examples) regresses by "
                f"{-delta.mean_difference:.4f} > tolerance {policy.slice_tolerance}"
            )
    failures += challenger.floor_failures(policy.floors)
    head = f"{metric} {new:.4f} vs {baseline_kind} {old:.4f} ({paired.summary()})"
    reason = f"{head}: " + ("; ".join(failures) if failures else f"wins beyond margin {policy.margin}")
    return Decision(
        not failures,
        metric,
        new,
        old,
        baseline_kind,
        reason,
        paired.ci_low,
        paired.ci_high,
        paired.p_value,
        tuple(failures),
    )


def apply_decision(client: MlflowClient, name: str, version: str, decision: Decision) -> str | None:
    """Record the decision on the version (its tags, and its one-line description, which the
    MLflow UI shows in the versions table); when it wins, make it ``champion`` and keep the
    replaced one as ``previous-champion``. Returns the champion version afterwards."""
    for key, value in decision.as_tags().items():
        client.set_model_version_tag(name, version, key, value)
    client.update_model_version(name, version, description=decision.summary())
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
    untrained: EvaluationReport | Callable[[], EvaluationReport],
    evaluate_version: ChampionEvaluator,
    *,
    policy: PromotionPolicy | None = None,
) -> tuple[Decision, str | None]:
    """Compare the new version with the current champion on the challenger's test set.

    With no champion yet, the baseline is the untrained base scored on that set (``untrained``
    may be a function, called only then). The champion is re-scored
    (``evaluate_version(version, scratch_dir)``) rather than trusting numbers it got on
    another dataset version.

    Returns:
        The decision and the champion version afterwards.
    """
    policy = policy or PromotionPolicy()
    # The evaluation the run logged becomes metrics of the version's logged model, linked to
    # its dataset, before the decision is written beside it (repeating it stores nothing new).
    registered = client.get_model_version(name, version)
    model_id = logged_model_id(registered)
    if registered.run_id and model_id:
        link_evaluation(client, str(registered.run_id), model_id)
    with model_lock(client, name):  # read champion, judge, move aliases: one step
        current = version_by_alias(client, name, CHAMPION)
        if current is None or str(current.version) == version:
            baseline, kind = (untrained() if callable(untrained) else untrained), "untrained base"
        else:
            with tempfile.TemporaryDirectory(prefix="palitune-champion-") as scratch:
                baseline = evaluate_version(current, Path(scratch))
            kind = f"champion v{current.version}"
        decision = decide(challenger, baseline, kind, policy=policy)
        holder = apply_decision(client, name, version, decision)
        if current is not None and str(current.version) != version:  # the champion learns of the challenge too
            verdict = "lost to" if decision.promote else "defended against"
            client.set_model_version_tag(
                name,
                str(current.version),
                LAST_CHALLENGE_TAG,
                f"{verdict} v{version}: {decision.reason}",
            )
        return decision, holder


def rollback(client: MlflowClient, name: str) -> tuple[str, str]:
    """Give ``champion`` back to the ``previous-champion`` in one step.

    The two aliases swap, so a rollback can itself be undone by rolling back again.

    Returns:
        (the new champion, the version it replaced).

    Raises:
        ValueError: when the model has no champion or no previous champion.
    """
    with model_lock(client, name):
        current, previous = version_by_alias(client, name, CHAMPION), version_by_alias(client, name, PREVIOUS_CHAMPION)
        if current is None or previous is None:
            missing = CHAMPION if current is None else PREVIOUS_CHAMPION
            raise ValueError(f"{name}: no version holds alias {missing!r}; nothing to roll back to")
        new, old = str(previous.version), str(current.version)
        client.set_registered_model_alias(name, CHAMPION, new)
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, old)
        client.set_model_version_tag(name, new, ROLLBACK_TAG, f"champion again, replacing v{old}")
        client.set_model_version_tag(name, old, ROLLBACK_TAG, f"rolled back to v{new}")
        return new, old
