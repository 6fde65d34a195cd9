"""Find the rows of a local Hugging Face dataset, split by split, with ``datasets`` doing the reading.

Three layouts, tried in this order:

- a hub dataset folder as ``huggingface-cli download`` / ``snapshot_download`` leave it:
  parquet files under ``data/`` (HuggingFaceM4/ChartQA, HuggingFaceM4/DocumentVQA,
  ahmed-masry/ChartQA) or under a config folder (lmms-lab/DocVQA keeps
  ``DocVQA/validation-*.parquet``), with the README's ``configs:`` front matter honoured.
  ``datasets.load_dataset_builder`` resolves the config and its ``data_files`` exactly as
  ``load_dataset`` would; each file is then streamed with ``load_dataset("parquet", ...)``, so
  errors name the file and nothing is copied into the datasets cache;
- ``save_to_disk``: a folder written by ``Dataset.save_to_disk`` (``state.json``) or
  ``DatasetDict.save_to_disk`` (``dataset_dict.json``), read with ``load_from_disk``;
- an imagefolder with ``metadata.jsonl``/``metadata.csv`` (``load_dataset("imagefolder")``).

``Image`` columns are read with ``decode=False``: the bytes are decoded by the image store,
which locates a bad image by file, row and column instead of failing inside ``datasets``.
``datasets`` is imported inside the loaders: it is slow to import.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.schema import DataError
from data.sources.common import canonical_split, confined_path
from data.sources.detect import hub_parquet_files

METADATA_FILES = ("metadata.jsonl", "metadata.csv")


@dataclass(frozen=True)
class Part:
    """Rows of one source split (or one parquet file of it), with where to point errors."""

    split: str  # palitune split
    source_split: str
    label: str  # the file or ``folder[split]`` that errors name; their line is the row index
    columns: list[str]
    rows: Iterable[dict[str, Any]]
    features: dict[str, Any]  # column -> its ``datasets`` feature, as the source declares it
    num_rows: int | None = None  # when known without reading the rows (a streamed imagefolder: not)


def load_parts(src: Path, config: str | None) -> tuple[dict[str, Any], list[Part]]:
    """The layout facts (``layout``, and ``config`` for a hub folder) and the parts of ``src``.

    Raises:
        DataError: no dataset found, an unknown split, an unknown config, or several configs
            with none chosen, located at the folder or its README.md.
    """
    if hub_parquet_files(src):
        name, files = _hub_data_files(src, config)
        return {"layout": "parquet", "config": name}, _load_parquet(files)
    if config is not None:
        raise DataError(src, None, "--config", "configs apply to a hub folder of parquet files, and there is none")
    if (src / "dataset_dict.json").is_file() or (src / "state.json").is_file():
        return {"layout": "save_to_disk"}, _load_from_disk(src)
    metadata = sorted(path for name in METADATA_FILES for path in src.rglob(name))
    if metadata:
        return {"layout": "imagefolder"}, _load_imagefolder(src, metadata)
    raise DataError(
        src,
        None,
        None,
        "no Hugging Face dataset found: expected a save_to_disk folder (dataset_dict.json or state.json), "
        "parquet files (data/train-*.parquet, <config>/validation-*.parquet, README configs) or an imagefolder "
        "with metadata.jsonl/metadata.csv",
    )


def _target_split(name: str, label: str, taken: dict[str, str]) -> str:
    split = canonical_split(name)
    if split is None:
        raise DataError(
            label, None, "split", f"unknown split {name!r}; expected train, validation/val/valid/dev or test"
        )
    if taken.setdefault(split, name) != name:
        raise DataError(label, None, "split", f"splits {taken[split]!r} and {name!r} both map to {split!r}")
    return split


def _without_decoding(dataset: Any) -> Any:
    """``dataset`` with every ``Image`` column yielding ``{"bytes", "path"}`` instead of PIL images."""
    from datasets import Image

    for column, feature in (dataset.features or {}).items():
        if isinstance(feature, Image) and feature.decode:
            dataset = dataset.cast_column(column, Image(decode=False))
    return dataset


def _load_from_disk(src: Path) -> list[Part]:
    from datasets import Dataset, load_from_disk

    loaded = load_from_disk(str(src))
    named = {"train": loaded} if isinstance(loaded, Dataset) else dict(loaded)
    taken: dict[str, str] = {}
    parts = []
    for name, dataset in named.items():
        label = f"{src}[{name}]"
        rows = _without_decoding(dataset)
        split = _target_split(name, label, taken)
        columns, features = list(dataset.column_names), dict(dataset.features)
        parts.append(Part(split, name, label, columns, rows, features, num_rows=len(dataset)))
    return parts


def _hub_data_files(src: Path, config: str | None) -> tuple[str, dict[str, list[Path]]]:
    """The config's name and its parquet files per source split, as ``load_dataset`` resolves
    them from the README's ``configs:`` (or, without one, from the file names)."""
    from datasets import get_dataset_config_names, load_dataset_builder

    readme = src / "README.md"
    where = readme if readme.is_file() else src
    try:
        builder = load_dataset_builder(str(src), name=config)
    except ValueError as err:
        names = get_dataset_config_names(str(src))
        if config is None and len(names) > 1:
            message = (
                f"{len(names)} configs ({', '.join(names)}) and none is the default; choose one with --config NAME"
            )
            raise DataError(where, None, "configs", message) from None
        raise DataError(where, None, "configs", f"{err}".splitlines()[0] + f"; configs are {names}") from None
    files: dict[str, list[Path]] = {}
    for name, paths in (builder.config.data_files or {}).items():
        files[str(name)] = sorted(Path(p) for p in paths)
        if bad := [p for p in files[str(name)] if p.suffix != ".parquet"]:
            message = f"a data file of split {name!r} that is not parquet ({len(bad)} such); only parquet is read here"
            raise DataError(bad[0], None, None, f"{message}: point at the dataset's folder, or fix its README configs")
    if not files:
        raise DataError(where, None, "configs", f"config {builder.config.name!r} names no data files")
    return str(builder.config.name), files


def _load_parquet(files: dict[str, list[Path]]) -> list[Part]:
    from datasets import load_dataset

    taken: dict[str, str] = {}
    parts = []
    for name, paths in files.items():
        split = _target_split(name, str(paths[0]), taken)
        for path in paths:
            num_rows = _parquet_rows(path)
            dataset = load_dataset("parquet", data_files=str(path), split="train", streaming=True)
            features = dict(dataset.features or {})
            rows = _without_decoding(dataset)
            parts.append(Part(split, name, str(path), list(features), rows, features, num_rows=num_rows))
    return parts


def _parquet_rows(path: Path) -> int:
    """The number of rows of a parquet file, from its footer alone (no row is read)."""
    import pyarrow
    import pyarrow.parquet as pq

    try:
        return int(pq.read_metadata(path).num_rows)
    except (pyarrow.ArrowException, OSError) as err:
        raise DataError(path, None, None, f"not a readable parquet file ({err})") from None


def _load_imagefolder(src: Path, metadata: list[Path]) -> list[Part]:
    from datasets import load_dataset

    for path in metadata:
        _check_metadata(src, path)
    loaded = load_dataset("imagefolder", data_dir=str(src), streaming=True)
    taken: dict[str, str] = {}
    parts = []
    for name, dataset in loaded.items():
        label = f"{src}[{name}]"
        features = dict(dataset.features or {})
        parts.append(Part(_target_split(name, label, taken), name, label, list(features), dataset, features))
    return parts


def _check_metadata(src: Path, path: Path) -> None:
    """Every ``file_name`` of an imagefolder metadata file names an existing file under ``src``."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = [(reader.line_num, row) for row in reader]
    else:
        rows = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((lineno, json.loads(line)))
            except json.JSONDecodeError as err:
                raise DataError(path, lineno, None, f"invalid JSON ({err.msg} at column {err.colno})") from None
    for lineno, row in rows:
        for key, value in row.items() if isinstance(row, dict) else ():
            if key == "file_name" or key.endswith("_file_name"):
                image = confined_path(path.parent, value, file=path, line=lineno, field=key)
                confined_path(src, str(image.relative_to(src)), file=path, line=lineno, field=key)
                if not image.is_file():
                    raise DataError(path, lineno, key, f"image file not found: {image}")
