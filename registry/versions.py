"""What a registered model holds: its versions, the aliases each carries and their lineage."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow.tracking import MlflowClient

from registry.lineage import TAG_PREFIX, metric_tags


@dataclass(frozen=True)
class VersionView:
    """One model version as a person reads it.

    Attributes:
        version: its number, as text.
        aliases: the aliases it holds, sorted.
        run_id: the MLflow run that trained it (``None`` if it was registered without one).
        source: where its model lives (``models:/m-...``).
        tags: every tag of the version.
        description: its one-line description: the promotion decision, once there is one.
    """

    version: str
    aliases: tuple[str, ...]
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def metrics(self) -> dict[str, str]:
        """Its metrics recorded at registration, by name."""
        return metric_tags(self.tags)

    @property
    def lineage(self) -> dict[str, str]:
        """Its palitune tags (lineage, metrics, promotion) without the ``palitune.`` prefix, sorted."""
        return {k.removeprefix(TAG_PREFIX): v for k, v in sorted(self.tags.items()) if k.startswith(TAG_PREFIX)}


def list_versions(client: MlflowClient, name: str) -> list[VersionView]:
    """Every version of registered model ``name``, oldest first; empty when there is no such model."""
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    aliases_of: dict[str, list[str]] = {}
    if versions:  # search results carry no aliases; the registered model does
        for alias, number in client.get_registered_model(name).aliases.items():
            aliases_of.setdefault(str(number), []).append(alias)
    return [
        VersionView(
            str(v.version),
            tuple(sorted(aliases_of.get(str(v.version), []))),
            v.run_id,
            str(v.source),
            dict(v.tags),
            v.description or "",
        )
        for v in versions
    ]
