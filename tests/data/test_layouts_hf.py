"""Hugging Face hub dataset folders, laid out exactly as ``huggingface-cli download`` (or
``snapshot_download``) leaves them, and ``save_to_disk`` folders, ingested with the format
detected.

Each fixture copies its dataset's file names, README ``configs:`` front matter, column names
and types: lmms-lab/DocVQA (config folders DocVQA/ and InfographicVQA/), HuggingFaceM4/ChartQA
(``label`` a list of strings), ahmed-masry/ChartQA (``image`` raw PNG bytes, ``label`` a
string), HuggingFaceM4/DocumentVQA (several files per split; ``answers`` null in test).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from data.schema import SPLITS, DataError, Example, read_split
from data.sources import detect_format, ingest
from data.validate import validate_dataset


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep what ``datasets`` writes (lock files of streamed loads) out of the user's cache."""
    from datasets import config

    monkeypatch.setattr(config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf-cache"))


def _read(out: Path) -> dict[str, list[Example]]:
    return {split: read_split(out, split) for split in SPLITS}


def _counts(out: Path) -> list[int]:
    return [len(examples) for examples in _read(out).values()]


def _source(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "manifest.json").read_text())["source"])


def _page(i: int, shade: int = 0) -> Image.Image:
    return Image.new("RGB", (30 + i, 20), (25 * i % 255, 60 + shade, 90))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _parquet(path: Path, rows: dict[str, Any], features: dict[str, Any]) -> Path:
    from datasets import Dataset, Features

    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(rows, features=Features(features)).to_parquet(str(path))
    return path


def _readme(root: Path, configs: list[tuple[str, dict[str, str]]], *, default: str | None = None) -> None:
    """README.md whose front matter declares ``configs`` (name -> split -> path glob)."""
    lines = ["---", "license: mit", "task_categories:", "- visual-question-answering", "configs:"]
    for name, splits in configs:
        lines += [f"- config_name: {name}"] + (["  default: true"] if name == default else []) + ["  data_files:"]
        lines += [f"  - split: {split}\n    path: {glob}" for split, glob in splits.items()]
    (root / "README.md").write_text("\n".join([*lines, "---", "", "# Dataset card", ""]))


def _download_leftovers(root: Path, files: list[Path]) -> None:
    """What ``huggingface-cli download --local-dir`` writes besides the files: ``.gitattributes``
    and ``.cache/huggingface/download/<path>.metadata``."""
    (root / ".gitattributes").write_text("*.parquet filter=lfs diff=lfs merge=lfs -text\n")
    for path in files:
        meta = root / ".cache" / "huggingface" / "download" / f"{path.relative_to(root)}.metadata"
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text("0123abcd\n1700000000.0\n")


# ---------------------------------------------------------------- lmms-lab/DocVQA


def _docvqa_features() -> dict[str, Any]:
    from datasets import Image as ImageFeature
    from datasets import Sequence, Value

    text = Value("string")
    return {
        "questionId": text,
        "question": text,
        "question_types": Sequence(text),
        "image": ImageFeature(),
        "docId": Value("int64"),
        "ucsf_document_id": text,
        "ucsf_document_page_no": text,
        "answers": Sequence(text),
        "data_split": text,
    }


def _docvqa_rows(split: str, pages: list[int], labelled: bool) -> dict[str, list[Any]]:
    n = len(pages)
    return {
        "questionId": [f"{split}{i}" for i in range(n)],
        "question": [f"What is  field {i}?" for i in range(n)],
        "question_types": [["form"] if labelled else None for _ in range(n)],
        "image": [_page(p, 60 if split == "test" else 0) for p in pages],
        "docId": [100 + p for p in pages],
        "ucsf_document_id": [f"doc{p}" for p in pages],
        "ucsf_document_page_no": ["1"] * n,
        "answers": [[f"value {i}", f"VALUE {i}"] if labelled else None for i in range(n)],
        "data_split": [split] * n,
    }


def lmms_lab_docvqa(root: Path) -> Path:
    """lmms-lab/DocVQA: configs DocVQA and InfographicVQA, each a folder of validation-* and
    test-* parquet files; the test split's answers are null."""
    from datasets import Image as ImageFeature
    from datasets import Sequence, Value

    src = root / "DocVQA"
    files = [
        _parquet(
            src / "DocVQA" / "validation-00000-of-00001.parquet",
            _docvqa_rows("val", [0, 0, 1, 2, 3, 4], True),
            _docvqa_features(),
        ),
        _parquet(
            src / "DocVQA" / "test-00000-of-00001.parquet", _docvqa_rows("test", [5, 6], False), _docvqa_features()
        ),
    ]
    text = Value("string")
    info_features = {
        "questionId": text,
        "question": text,
        "answers": Sequence(text),
        "answer_type": Sequence(text),
        "image": ImageFeature(),
        "image_url": text,
        "operation/reasoning": Sequence(text),
        "ocr": text,
        "data_split": text,
    }
    info_rows: dict[str, Any] = {
        "questionId": ["65718"],
        "question": ["Which year?"],
        "answers": [["2013"]],
        "answer_type": [["single span"]],
        "image": [_page(9)],
        "image_url": ["x.jpg"],
        "operation/reasoning": [None],
        "ocr": ["{}"],
        "data_split": ["val"],
    }
    files.append(_parquet(src / "InfographicVQA" / "validation-00000-of-00001.parquet", info_rows, info_features))
    _readme(
        src,
        [
            (name, {"validation": f"{name}/validation-*", "test": f"{name}/test-*"})
            for name in ("DocVQA", "InfographicVQA")
        ],
    )
    _parquet(src / "InfographicVQA" / "test-00000-of-00001.parquet", {**info_rows, "answers": [None]}, info_features)
    _download_leftovers(src, files)
    return src


def test_lmms_lab_docvqa_needs_a_config(tmp_path: Path) -> None:
    src = lmms_lab_docvqa(tmp_path)
    assert detect_format(src) == "hf"
    with pytest.raises(DataError, match="2 configs .DocVQA, InfographicVQA. and none is the default") as err:
        ingest(None, src, tmp_path / "out")
    assert (err.value.file, err.value.line, err.value.field) == (str(src / "README.md"), None, "configs")
    with pytest.raises(DataError, match="'Nope' not found"):
        ingest(None, src, tmp_path / "out", config="Nope")
    assert not (tmp_path / "out").exists()


def test_lmms_lab_docvqa_drops_the_unlabelled_test_and_carves_from_validation(tmp_path: Path) -> None:
    src = lmms_lab_docvqa(tmp_path)
    out = ingest(None, src, tmp_path / "out", config="DocVQA")
    splits = _read(out)
    assert sum(_counts(out)) == 6 and all(_counts(out))
    example = next(e for split in splits.values() for e in split if e.id == "val-00000")
    assert (example.task, example.prefix, example.suffix) == ("docvqa", "answer en What is field 0?", "value 0")
    assert example.answers == ["value 0", "VALUE 0"]
    source = _source(out)
    assert (source["layout"], source["config"], source["splits"]) == (
        "parquet",
        "DocVQA",
        {"validation": "val", "test": "test"},
    )
    assert source["read"] == {"train": 0, "val": 6, "test": 0}
    assert source["dropped"] == {"test": {"no label (null answer)": 2}}
    assert {split: c["images"] for split, c in source["carved"].items()} == {"train": 3, "test": 1}
    assert not (out / "unlabelled.jsonl").exists()
    stored = {f"images/{p.name}" for p in (out / "images").iterdir()}
    assert stored == {e.image for split in splits.values() for e in split}  # no image of a dropped row
    assert validate_dataset(out).ok


def test_lmms_lab_docvqa_unlabelled_rows_kept_for_prediction(tmp_path: Path) -> None:
    src = lmms_lab_docvqa(tmp_path)
    out = ingest(None, src, tmp_path / "out", config="DocVQA", eval_only=True, keep_unlabelled=True)
    assert _counts(out) == [0, 0, 6]
    kept = [json.loads(line) for line in (out / "unlabelled.jsonl").read_text().splitlines()]
    assert [(k["id"], k["task"], k["prefix"]) for k in kept] == [
        ("test-00000", "docvqa", "answer en What is field 0?"),
        ("test-00001", "docvqa", "answer en What is field 1?"),
    ]
    assert all((out / k["image"]).is_file() for k in kept)
    assert _source(out)["unlabelled"] == {"file": "unlabelled.jsonl", "examples": 2}
    assert validate_dataset(out).ok


def test_lmms_lab_infographicvqa_config(tmp_path: Path) -> None:
    out = ingest(None, lmms_lab_docvqa(tmp_path), tmp_path / "out", config="InfographicVQA", eval_only=True)
    assert _counts(out) == [0, 0, 1]
    assert _source(out)["dropped"] == {"test": {"no label (null answer)": 1}}


# ---------------------------------------------------------------- ChartQA, two ways


def _chartqa_features(label_is_list: bool) -> dict[str, Any]:
    from datasets import ClassLabel, Sequence, Value
    from datasets import Image as ImageFeature

    label = Sequence(Value("string")) if label_is_list else Value("string")
    return {
        "image": ImageFeature(),
        "query": Value("string"),
        "label": label,
        "human_or_machine": ClassLabel(names=["human", "machine"]),
    }


SPLIT_SIZES = {"train": 5, "val": 2, "test": 2}


def huggingface_m4_chartqa(root: Path) -> Path:
    """HuggingFaceM4/ChartQA: data/{train,val,test}-*.parquet, ``label`` a list of strings."""
    src = root / "ChartQA"
    files = []
    for s, (split, n) in enumerate(SPLIT_SIZES.items()):
        rows: dict[str, Any] = {
            "image": [_page(i, 40 * s) for i in range(n)],
            "query": [f"Value of bar {i}?" for i in range(n)],
            "label": [[str(i + s)] for i in range(n)],
            "human_or_machine": [i % 2 for i in range(n)],
        }
        files.append(_parquet(src / "data" / f"{split}-00000-of-00001.parquet", rows, _chartqa_features(True)))
    _readme(src, [("default", {split: f"data/{split}-*" for split in SPLIT_SIZES})])
    _download_leftovers(src, files)
    return src


def ahmed_masry_chartqa(root: Path, *, bad_image: Any = None) -> Path:
    """ahmed-masry/ChartQA: data/{train,val,test}-*.parquet with ``imgname``, ``query``, ``label``
    (a string) and ``image`` as raw PNG bytes (a binary column); a README without configs."""
    from datasets import Value

    src = root / "ahmed-masry-ChartQA"
    features = {"imgname": Value("string"), "query": Value("string"), "label": Value("string")}
    for s, (split, n) in enumerate(SPLIT_SIZES.items()):
        images = [_png(_page(i, 40 * s)) for i in range(n)]
        if bad_image is not None and split == "train":
            images[1] = bad_image
        rows: dict[str, Any] = {
            "imgname": [f"{i}.png" for i in range(n)],
            "query": [f"Is bar {i} higher?" for i in range(n)],
            "label": ["Yes" if i % 2 else "No" for i in range(n)],
            "image": images,
        }
        image_type = Value("string") if isinstance(bad_image, str) else Value("binary")
        _parquet(src / "data" / f"{split}-00000-of-00001.parquet", rows, {**features, "image": image_type})
    (src / "README.md").write_text("---\nlicense: gpl-3.0\n---\n# ChartQA\n")
    return src


def test_huggingface_m4_chartqa(tmp_path: Path) -> None:
    out = ingest(None, huggingface_m4_chartqa(tmp_path), tmp_path / "out")
    splits = _read(out)
    assert _counts(out) == [5, 2, 2]
    first = splits["val"][1]
    assert (first.task, first.id, first.prefix, first.answers) == (
        "chartqa",
        "val-00001",
        "answer en Value of bar 1?",
        ["2"],
    )
    assert _source(out)["carved"] == {} and _source(out)["dropped"] == {}
    assert validate_dataset(out).ok


def test_ahmed_masry_chartqa_raw_png_bytes(tmp_path: Path) -> None:
    out = ingest(None, ahmed_masry_chartqa(tmp_path), tmp_path / "out")
    splits = _read(out)
    assert _counts(out) == [5, 2, 2]
    assert [e.answers for e in splits["train"][:2]] == [["No"], ["Yes"]]
    with Image.open(out / splits["train"][3].image) as stored:
        assert stored.size == (33, 20)
    assert _source(out)["splits"] == {"train": "train", "val": "val", "test": "test"}
    assert validate_dataset(out).ok


def test_a_snapshot_download_of_symlinks_into_the_hub_cache(tmp_path: Path) -> None:
    """``snapshot_download`` without ``local_dir``: files are symlinks to ../../blobs/<hash>."""
    repo = tmp_path / "hub" / "datasets--HuggingFaceM4--ChartQA"
    snapshot = repo / "snapshots" / "b605b6e08b57faf4359aeb2fe6a3ca595f99b6c5"
    shutil.copytree(huggingface_m4_chartqa(tmp_path), snapshot)
    (repo / "blobs").mkdir()
    for path in [p for p in snapshot.rglob("*") if p.is_file() and ".cache" not in p.parts]:
        blob = repo / "blobs" / f"{abs(hash(path.name)):x}"
        path.rename(blob)
        path.symlink_to(Path("../" * (len(path.relative_to(snapshot).parts) - 1)) / "../../blobs" / blob.name)
    assert _counts(ingest(None, snapshot, tmp_path / "out")) == [5, 2, 2]


# ---------------------------------------------------------------- HuggingFaceM4/DocumentVQA


def test_huggingface_m4_documentvqa_several_files_per_split(tmp_path: Path) -> None:
    src = tmp_path / "DocumentVQA"
    features = {**_docvqa_features(), "questionId": _docvqa_features()["docId"]}
    del features["data_split"]
    for name, pages, labelled in (
        ("train-00000-of-00002", [0, 1], True),
        ("train-00001-of-00002", [2, 3], True),
        ("validation-00000-of-00001", [4], True),
        ("test-00000-of-00001", [5], False),
    ):
        rows = _docvqa_rows(name.split("-")[0], pages, labelled)
        rows["questionId"] = list(range(len(pages)))
        del rows["data_split"]
        _parquet(src / "data" / f"{name}.parquet", rows, features)
    _readme(src, [("default", {s: f"data/{s}-*" for s in ("train", "validation", "test")})])
    out = ingest(None, src, tmp_path / "out")
    assert _counts(out) == [3, 1, 1]  # the unlabelled test is dropped, one train page carved into test
    splits = _read(out)
    assert sorted(e.id for e in splits["train"] + splits["test"]) == [f"train-{i:05d}" for i in range(4)]  # two files
    source = _source(out)
    assert source["dropped"] == {"test": {"no label (null answer)": 1}}
    assert source["carved"] == {"test": {"from": "train", "images": 1, "examples": 1}}


def test_a_source_of_unlabelled_rows_only_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "DocVQA-test"
    _parquet(src / "data" / "test-00000-of-00001.parquet", _docvqa_rows("test", [1, 2], False), _docvqa_features())
    with pytest.raises(DataError, match="no labelled examples .dropped: {'test': {'no label .null answer.': 2}}"):
        ingest(None, src, tmp_path / "out", eval_only=True)


# ---------------------------------------------------------------- save_to_disk


def test_dataset_save_to_disk_is_train_and_carved(tmp_path: Path) -> None:
    from datasets import Dataset, Features

    rows = _docvqa_rows("train", list(range(10)), True)
    Dataset.from_dict(rows, features=Features(_docvqa_features())).save_to_disk(tmp_path / "saved")
    assert detect_format(tmp_path / "saved") == "hf"
    out = ingest(None, tmp_path / "saved", tmp_path / "out", split_ratios=(0.6, 0.2, 0.2))
    assert _counts(out) == [6, 2, 2]
    assert _source(out)["layout"] == "save_to_disk"
    with pytest.raises(DataError, match="configs apply to a hub folder"):
        ingest(None, tmp_path / "saved", tmp_path / "again", config="default")


# ---------------------------------------------------------------- bad input


def test_a_parquet_file_missing_the_answer_column_is_located(tmp_path: Path) -> None:
    src = huggingface_m4_chartqa(tmp_path)
    path = src / "data" / "val-00000-of-00001.parquet"
    features = _chartqa_features(True)
    del features["label"]
    _parquet(path, {"image": [_page(1, 7)], "query": ["q?"], "human_or_machine": [0]}, features)
    with pytest.raises(DataError, match=r"column not found \(the answers\)") as err:
        ingest(None, src, tmp_path / "out")
    assert (err.value.file, err.value.field) == (str(path), "label")


def test_a_parquet_file_missing_the_question_column_names_it(tmp_path: Path) -> None:
    src = huggingface_m4_chartqa(tmp_path)
    path = src / "data" / "train-00000-of-00001.parquet"
    features = _chartqa_features(True)
    del features["query"]
    _parquet(path, {"image": [_page(1, 7)], "label": [["1"]], "human_or_machine": [0]}, features)
    with pytest.raises(DataError, match="closest is chartqa, which needs column 'query'") as err:
        ingest(None, src, tmp_path / "out")
    assert (err.value.file, err.value.field) == (str(path), "query")


@pytest.mark.parametrize(
    ("bad", "line", "message"),
    [(b"<html>not a chart</html>", 1, "image bytes do not decode"), ("charts/1.png", None, "holds Value.'string'.")],
)
def test_an_image_column_holding_no_image_is_located(tmp_path: Path, bad: Any, line: int | None, message: str) -> None:
    src = ahmed_masry_chartqa(tmp_path, bad_image=bad)
    with pytest.raises(DataError, match=message) as err:
        ingest(None, src, tmp_path / "out")
    path = src / "data" / "train-00000-of-00001.parquet"
    assert (err.value.file, err.value.line, err.value.field) == (str(path), line, "image")
    assert not (tmp_path / "out").exists()
