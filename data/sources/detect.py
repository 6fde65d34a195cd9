"""Tell a source folder's layout from the files in it, for ``palitune data ingest`` without
``--format``.

Each format is recognised by the files its producer writes (see the reader modules for the
sources): a folder that matches none is refused with the list of what was looked for, and
one that matches several asks for ``--format``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from data.schema import DataError
from data.sources.common import canonical_split

PALIGEMMA_FILES = (
    "_annotations.train.jsonl",
    "_annotations.valid.jsonl",
    "_annotations.val.jsonl",
    "_annotations.test.jsonl",
)
ROBOFLOW_JSONL_FILE = "annotations.jsonl"
ROBOFLOW_COCO_FILE = "_annotations.coco.json"
HF_MARKERS = ("dataset_dict.json", "state.json", "metadata.jsonl", "metadata.csv")


def paligemma_root(src: Path) -> Path | None:
    """The folder holding ``_annotations.<split>.jsonl``: ``src`` itself or, as a Roboflow
    ``paligemma`` download unpacks, ``src/dataset``; ``None`` when neither does."""
    for root in (src, src / "dataset"):
        if any((root / name).is_file() for name in PALIGEMMA_FILES):
            return root
    return None


def split_folders(src: Path, file_name: str) -> dict[str, Path]:
    """palitune split -> the sub-folder of ``src`` (``train``, ``valid``, ``test``, ...) that
    holds ``file_name``, as Roboflow's ``jsonl`` and ``coco`` exports lay splits out.

    Raises:
        DataError: two folders that name the same split (``val`` and ``valid``).
    """
    found: dict[str, Path] = {}
    for folder in sorted(p for p in src.iterdir() if p.is_dir()) if src.is_dir() else []:
        split = canonical_split(folder.name)
        if split is None or not (folder / file_name).is_file():
            continue
        if split in found:
            message = f"{found[split].name}/{file_name} already holds the {split} split; keep only one of them"
            raise DataError(folder / file_name, None, None, message)
        found[split] = folder
    return found


def _is_coco(src: Path) -> bool:
    annotations = src / "annotations"
    return any(annotations.glob("instances_*.json")) or any(annotations.glob("captions_*.json"))


def hub_parquet_files(src: Path) -> list[Path]:
    """Parquet files up to three levels down (``x.parquet``, ``data/x.parquet``,
    ``data/<config>/x.parquet``), outside dot folders such as the ``.cache/huggingface`` that
    ``huggingface-cli download`` writes; shallow so a folder of many datasets is not one."""
    found = [p for pattern in ("*.parquet", "*/*.parquet", "*/*/*.parquet") for p in src.glob(pattern)]
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(src).parts))


def _is_hf(src: Path) -> bool:
    return any((src / name).is_file() for name in HF_MARKERS) or bool(hub_parquet_files(src))


LAYOUTS: dict[str, tuple[str, Callable[[Path], bool]]] = {
    "paligemma-jsonl": (
        "_annotations.{train,valid,test}.jsonl in the folder or in dataset/ (Roboflow paligemma export)",
        lambda src: paligemma_root(src) is not None,
    ),
    "roboflow-jsonl": (
        "{train,valid,test}/annotations.jsonl (Roboflow jsonl export, maestro's JSONL layout)",
        lambda src: bool(split_folders(src, ROBOFLOW_JSONL_FILE)),
    ),
    "roboflow-coco": (
        "{train,valid,test}/_annotations.coco.json (Roboflow coco export, maestro's COCO layout)",
        lambda src: bool(split_folders(src, ROBOFLOW_COCO_FILE)),
    ),
    "coco": ("annotations/instances_<split>.json or annotations/captions_<split>.json (COCO 2017)", _is_coco),
    "hf": (
        "*.parquet files (data/, a config folder, README configs), dataset_dict.json or state.json "
        "(save_to_disk), or metadata.jsonl/metadata.csv (imagefolder)",
        _is_hf,
    ),
}


def detect_format(src: Path) -> str:
    """The one format of ``LAYOUTS`` whose files ``src`` holds.

    Raises:
        DataError: at ``src`` when no layout matches (listing what was looked for) or several do.
    """
    matches = [fmt for fmt, (_, matches_layout) in LAYOUTS.items() if matches_layout(src)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise DataError(
            src, None, "--format", f"the folder matches several layouts ({', '.join(matches)}); pass --format"
        )
    looked = "; ".join(f"{fmt}: {what}" for fmt, (what, _) in LAYOUTS.items())
    raise DataError(src, None, "--format", f"no known layout found; looked for {looked}")
