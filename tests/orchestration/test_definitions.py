from dagster import AssetKey, Definitions

from orchestration.definitions import defs

LINEAGE = ["raw_dataset", "dataset_version", "finetuned_adapter", "evaluation_report", "model_version", "champion"]


def test_definitions_load_and_form_the_lifecycle_chain() -> None:
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert set(LINEAGE) <= keys
    for upstream, downstream in zip(LINEAGE, LINEAGE[1:], strict=False):
        assert AssetKey(upstream) in graph.get(AssetKey(downstream)).parent_keys
    for key in LINEAGE:
        assert graph.get(AssetKey(key)).description, f"{key} has no description"
