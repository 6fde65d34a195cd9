"""Every kind of bad input the suite feeds palitune, one builder each.

Each is declared with where its refusal must point (``at``: file, line and field, as the
error message writes them) and a phrase the message must hold (``says``). A builder gets the
``Bench`` and a fresh folder of its own, writes one bad input and returns the command that
must refuse it, and the folder ``at`` is relative to. ``test_bad_inputs.py`` runs them all;
``python -m tests.reliability.table`` lists them in docs/reliability.md.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from tests.reliability.catalogue import BadInput


@dataclass(frozen=True)
class Attempt:
    """A command (``palitune ...`` or ``train ...``) and the folder the refusal's ``at`` is in."""

    command: list[str]
    root: Path | str  # a folder, or for the registry its tracking URI's folder


@dataclass
class Bench:
    """What the builders work with; made once per module by ``test_bad_inputs.py``."""

    root: Path
    ws: Path  # PALITUNE_HOME: a DVC repository whose remote holds a dataset version
    templates: dict[str, Path]  # task -> a valid dataset folder (4/2/2 examples)
    outside: Path  # a real image outside every dataset and source folder
    tiny_base: Path
    odd_base: Path  # a tiny base whose 72 px images do not tile into 16 px patches
    foreign_adapter: Path  # a complete adapter of a deeper tiny base
    tracking_uri: str  # sqlite:///<ws>/mlflow.db, made (palitune-vqa v1 champion) by ``registry()``
    make_registry: Callable[[], None]

    def dataset(self, folder: Path, task: str = "vqa") -> Path:
        shutil.copytree(self.templates[task], folder)
        return folder

    def registry(self) -> str:
        """The tracking URI's folder, its store made on first use (creating one takes seconds)."""
        self.make_registry()
        return self.tracking_uri.removesuffix("/mlflow.db")


Builder = Callable[[Bench, Path], Attempt]
BAD_INPUTS: list[BadInput] = []


def bad_input(stage: str, kind: str, at: str, says: str) -> Callable[[Builder], Builder]:
    """Register a builder of one kind of bad input for ``stage`` (see ``catalogue.STAGES``)."""

    def register(build: Builder) -> Builder:
        BAD_INPUTS.append(BadInput(build.__name__, stage, kind, at, says, build))
        return build

    return register


# -- datasets: palitune data version validates before DVC sees anything ------------------


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _edit(dataset: Path, split: str, line: int, change: Callable[[dict[str, Any]], Any]) -> None:
    """Apply ``change`` to the record on ``line`` (1-based) of ``split``."""
    path = dataset / f"{split}.jsonl"
    records = _records(path)
    change(records[line - 1])
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _image_of(dataset: Path, split: str, line: int) -> Path:
    return dataset / _records(dataset / f"{split}.jsonl")[line - 1]["image"]


def _version(dataset: Path) -> Attempt:
    return Attempt(["palitune", "data", "version", str(dataset)], dataset)


@bad_input("dataset", "zero-byte image", "val.jsonl:2: image", "images/val-00001.png: file is empty (0 bytes)")
def zero_byte_image(bench: Bench, folder: Path) -> Attempt:
    _image_of(bench.dataset(folder), "val", 2).write_bytes(b"")
    return _version(folder)


@bad_input("dataset", "truncated image (PNG cut in half)", "train.jsonl:1: image", "not a readable image")
def truncated_image(bench: Bench, folder: Path) -> Attempt:
    image = _image_of(bench.dataset(folder), "train", 1)
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    return _version(folder)


@bad_input("dataset", "not an image (text named .png)", "test.jsonl:1: image", "not a readable image")
def not_an_image(bench: Bench, folder: Path) -> Attempt:
    _image_of(bench.dataset(folder), "test", 1).write_text("<html>not a picture</html>")
    return _version(folder)


def png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    buffer = io.BytesIO()
    Image.new("1", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR: after signature (8), length (4), type (4)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # CRC over type and data
    return bytes(data)


@bad_input(
    "dataset", "decompression bomb (header of 100000 x 100000 pixels)", "train.jsonl:2: image", "decompression bomb"
)
def decompression_bomb(bench: Bench, folder: Path) -> Attempt:
    _image_of(bench.dataset(folder), "train", 2).write_bytes(png_claiming(100_000, 100_000))
    return _version(folder)


@bad_input("dataset", "missing image file", "val.jsonl:1: image", "images/val-00000.png: file not found")
def missing_image(bench: Bench, folder: Path) -> Attempt:
    _image_of(bench.dataset(folder), "val", 1).unlink()
    return _version(folder)


@bad_input("dataset", "path traversal with `..`", "train.jsonl:3: image", "escapes the dataset root")
def image_path_dotdot(bench: Bench, folder: Path) -> Attempt:
    relative = Path("..") / ".." / ".." / bench.outside.relative_to(bench.root)
    _edit(bench.dataset(folder), "train", 3, lambda r: r.update(image=str(relative)))
    return _version(folder)


@bad_input("dataset", "symlink out of the dataset root", "train.jsonl:4: image", "escapes the dataset root")
def image_symlink_out(bench: Bench, folder: Path) -> Attempt:
    (bench.dataset(folder) / "images" / "link.png").symlink_to(bench.outside)
    _edit(folder, "train", 4, lambda r: r.update(image="images/link.png"))
    return _version(folder)


@bad_input("dataset", "train/test leakage (same image bytes)", "test.jsonl:2: image", "same image bytes as train")
def train_test_leakage(bench: Bench, folder: Path) -> Attempt:
    dataset = bench.dataset(folder)
    _image_of(dataset, "test", 2).write_bytes(_image_of(dataset, "train", 1).read_bytes())
    return _version(folder)


@bad_input("dataset", "missing split file", "val.jsonl", "split file not found")
def missing_split(bench: Bench, folder: Path) -> Attempt:
    (bench.dataset(folder) / "val.jsonl").unlink()
    return _version(folder)


def _line_case(name: str, kind: str, at: tuple[str, int], says: str, rewrite: Callable[[bytes], bytes]) -> None:
    """Register a case that rewrites the raw bytes of one line, refused at that line."""
    split, line = at

    def build(bench: Bench, folder: Path) -> Attempt:
        path = bench.dataset(folder) / f"{split}.jsonl"
        lines = path.read_bytes().split(b"\n")
        lines[line - 1] = rewrite(lines[line - 1])
        path.write_bytes(b"\n".join(lines))
        return _version(folder)

    build.__name__ = name
    bad_input("dataset", kind, f"{split}.jsonl:{line}", says)(build)


_line_case("non_utf8_line", "non-UTF-8 line", ("train", 2), "not UTF-8", lambda b: b.replace(b"en ", b"en \xff\xfe "))
_line_case("invalid_json_line", "invalid JSON line", ("val", 2), "invalid JSON", lambda b: b[:-10])
_line_case(
    "line_not_an_object",
    "a line that is not a JSON object",
    ("test", 1),
    "expected a JSON object, got list",
    lambda b: b'["images/test-00000.png", "answer en ?"]',
)


DELETE = object()
DETECT_BOX = [10, 10, 20, 30, "circle"]
# (name, kind, template dataset, (split, line, field), says, {field: new value}); DELETE
# removes the field, a callable value is called with the bench.
FIELD_CASES: list[tuple[str, str, str, tuple[str, int, str], str, dict[str, Any]]] = [
    ("image_path_absolute", "absolute image path", "vqa", ("test", 2, "image"), "is absolute; make it relative",
     {"image": lambda bench: str(bench.outside)}),
    ("missing_field", "missing required field", "vqa", ("train", 1, "prefix"), "missing", {"prefix": DELETE}),
    ("unknown_field", "unknown field", "vqa", ("train", 2, "answer"), "unknown field", {"answer": "2"}),
    ("wrong_type_field", "wrong type (id is a number)", "vqa", ("val", 1, "id"), "must be a string", {"id": 7}),
    ("unknown_task", "unknown task", "vqa", ("train", 3, "task"), "unknown task 'pose'", {"task": "pose"}),
    ("empty_suffix", "empty suffix", "vqa", ("test", 2, "suffix"), "is empty or whitespace only", {"suffix": "  "}),
    ("answers_not_strings", "answers not a list of strings", "vqa", ("val", 2, "answers"),
     "must be a list of strings", {"answers": [2, 3]}),
    ("duplicate_id", "duplicate id", "vqa", ("test", 1, "id"), "duplicate id 'train-00000', first used at",
     {"id": "train-00000"}),
    ("inverted_box", "inverted box (x0 > x1)", "detect", ("train", 1, "boxes[0]"), "inverted or empty box",
     {"boxes": [[40, 10, 20, 30, "circle"]]}),
    ("box_out_of_bounds", "box out of the image's bounds", "detect", ("val", 1, "boxes[0]"),
     "outside the 64x64 image", {"boxes": [[10, 10, 200, 30, "circle"]]}),
    ("nan_box", "NaN box coordinate", "detect", ("test", 1, "boxes[0]"), "coordinates must be finite numbers",
     {"boxes": [[float("nan"), *DETECT_BOX[1:]]]}),  # json.dumps writes NaN, json.loads reads it back
    ("box_without_label", "box without its label", "detect", ("train", 2, "boxes[0]"),
     "must be [x0, y0, x1, y1, label]", {"boxes": [DETECT_BOX[:4]]}),
    ("detect_without_boxes", "detection example without boxes", "detect", ("train", 3, "boxes"),
     "required for task 'detect'", {"boxes": DELETE}),
    ("detect_suffix_not_its_boxes", "detection suffix that does not render its boxes", "detect",
     ("val", 2, "suffix"), "but the detect target renders as",
     {"suffix": "<loc0000><loc0000><loc0100><loc0100> circle"}),
    ("extract_without_fields", "extraction example without fields", "extract", ("train", 1, "fields"),
     "required for task 'extract'", {"fields": DELETE}),
    ("fields_not_an_object", "extraction fields not an object", "extract", ("test", 2, "fields"),
     "must be a JSON object", {"fields": ["date", "total"]}),
]  # fmt: skip


def _field_case(name: str, kind: str, template: str, at: tuple[str, int, str], says: str, changes: dict) -> None:
    """Register a case that changes fields of one line, refused at that line and field."""
    split, line, field = at

    def build(bench: Bench, folder: Path) -> Attempt:
        def change(record: dict[str, Any]) -> None:
            for key, value in changes.items():
                if value is DELETE:
                    del record[key]
                else:
                    record[key] = value(bench) if callable(value) else value

        _edit(bench.dataset(folder, template), split, line, change)
        return _version(folder)

    build.__name__ = name
    bad_input("dataset", kind, f"{split}.jsonl:{line}: {field}", says)(build)


for _case in FIELD_CASES:
    _field_case(*_case)


# -- sources: palitune data ingest of a PaliGemma JSONL export ----------------------------

EXPORT_LINE = "_annotations.train.jsonl:2"


def _ingest(folder: Path, **changes: Any) -> Attempt:
    """Ingest a PaliGemma JSONL export of three examples whose line 2 has ``changes`` (a
    ``None`` value removes the field)."""
    src = folder / "export"
    src.mkdir(parents=True)
    lines = []
    for i in range(3):
        Image.new("RGB", (32, 32), (60 * i, 90, 200 - 50 * i)).save(src / f"{i}.png")
        lines.append({"image": f"{i}.png", "prefix": "answer en what colour?", "suffix": "blue"})
    lines[1] = {k: v for k, v in {**lines[1], **changes}.items() if v is not None}
    (src / "_annotations.train.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    command = ["palitune", "data", "ingest", "--format", "paligemma-jsonl", str(src), "--out", str(folder / "out")]
    return Attempt(command, src)


@bad_input("source", "path traversal with `..` in an export", f"{EXPORT_LINE}: image", "'..' may lead out of")
def source_path_dotdot(bench: Bench, folder: Path) -> Attempt:
    return _ingest(folder, image="../../outside/secret.png")


@bad_input("source", "absolute image path in an export", f"{EXPORT_LINE}: image", "absolute path")
def source_path_absolute(bench: Bench, folder: Path) -> Attempt:
    return _ingest(folder, image=str(bench.outside))


@bad_input("source", "symlink out of an export", f"{EXPORT_LINE}: image", "through a symlink")
def source_symlink_out(bench: Bench, folder: Path) -> Attempt:
    attempt = _ingest(folder, image="link.png")
    (folder / "export" / "link.png").symlink_to(bench.outside)
    return attempt


@bad_input("source", "export line without its prefix", f"{EXPORT_LINE}: prefix", "missing or not a non-empty string")
def source_missing_prefix(bench: Bench, folder: Path) -> Attempt:
    return _ingest(folder, prefix=None)


@bad_input("source", "detection suffix with two location tokens", f"{EXPORT_LINE}: suffix", "1 objects but 0 decode")
def source_malformed_detection(bench: Bench, folder: Path) -> Attempt:
    return _ingest(folder, prefix="detect circle", suffix="<loc0010><loc0020> circle")


@bad_input("source", "split ratios that do not sum to 1", "export: --split-ratios", "the ratios must sum to 1")
def source_ratios_not_one(bench: Bench, folder: Path) -> Attempt:
    attempt = _ingest(folder)
    return Attempt([*attempt.command, "--split-ratios", "0.8,0.1,0.2"], folder)


@bad_input("source", "folder of no known layout (no `--format`)", "pictures: --format", "no known layout found")
def source_unknown_layout(bench: Bench, folder: Path) -> Attempt:
    (folder / "pictures").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "pictures" / "0.png")
    return Attempt(["palitune", "data", "ingest", str(folder / "pictures"), "--out", str(folder / "out")], folder)


@bad_input(
    "source",
    "COCO annotation whose `image_id` has no image",
    "coco/annotations/instances_val2017.json: annotations[0].image_id",
    "no image has that id",
)
def source_coco_unknown_image(bench: Bench, folder: Path) -> Attempt:
    (folder / "coco" / "val2017").mkdir(parents=True)
    (folder / "coco" / "annotations").mkdir()
    Image.new("RGB", (32, 24)).save(folder / "coco" / "val2017" / "000000000139.jpg")
    data = {
        "images": [{"id": 139, "file_name": "000000000139.jpg", "width": 32, "height": 24}],
        "annotations": [{"id": 1, "image_id": 285, "category_id": 18, "bbox": [1, 1, 8, 8], "iscrowd": 0}],
        "categories": [{"id": 18, "name": "dog", "supercategory": "animal"}],
    }
    (folder / "coco" / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return Attempt(["palitune", "data", "ingest", str(folder / "coco"), "--out", str(folder / "out")], folder)


def _hub_folder(bench: Bench, folder: Path, name: str, files: dict[str, dict[str, Any]]) -> Attempt:
    """A hub dataset folder ``name`` of parquet files (relative path -> columns), as
    ``huggingface-cli download`` leaves it; ``image`` columns of PIL images become ``Image``."""
    from datasets import Dataset, config
    from datasets import Image as ImageFeature

    config.HF_DATASETS_CACHE = bench.root.parent / "hf-cache"  # datasets' lock files: outside the bench, no ~/.cache
    for relative, rows in files.items():
        (folder / name / relative).parent.mkdir(parents=True, exist_ok=True)
        dataset = Dataset.from_dict(rows)
        if isinstance(rows["image"][0], Image.Image):
            dataset = dataset.cast_column("image", ImageFeature())
        dataset.to_parquet(str(folder / name / relative))
    return Attempt(["palitune", "data", "ingest", str(folder / name), "--out", str(folder / "out")], folder)


def _charts(n: int) -> dict[str, list[Any]]:
    return {"image": [Image.new("RGB", (20 + i, 16)) for i in range(n)], "query": ["value?"] * n, "label": [["1"]] * n}


@bad_input("source", "hub folder with two configs and no `--config`", "DocVQA/README.md: configs", "--config NAME")
def source_hub_two_configs(bench: Bench, folder: Path) -> Attempt:
    rows = {"image": [Image.new("RGB", (20, 16))], "question": ["date?"], "answers": [["1 May"]]}
    attempt = _hub_folder(bench, folder, "DocVQA", {f"{c}/validation-00000-of-00001.parquet": rows for c in ("A", "B")})
    configs = "".join(f"- config_name: {c}\n  data_files:\n  - split: validation\n    path: {c}/*\n" for c in "AB")
    (folder / "DocVQA" / "README.md").write_text(f"---\nconfigs:\n{configs}---\n")
    return attempt


@bad_input(
    "source",
    "parquet file missing the answer column",
    "ChartQA/data/val-00000-of-00001.parquet: label",
    "column not found (the answers)",
)
def source_parquet_missing_column(bench: Bench, folder: Path) -> Attempt:
    val = {k: v for k, v in _charts(1).items() if k != "label"}
    files = {"data/train-00000-of-00001.parquet": _charts(3), "data/val-00000-of-00001.parquet": val}
    return _hub_folder(bench, folder, "ChartQA", files)


@bad_input(
    "source",
    "image column holding bytes that are no image",
    "ChartQA/data/train-00000-of-00001.parquet:1: image",
    "image bytes do not decode",
)
def source_parquet_bytes_not_image(bench: Bench, folder: Path) -> Attempt:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 16)).save(buffer, format="PNG")
    rows = {**_charts(2), "image": [buffer.getvalue(), b"<html>not a chart</html>"]}
    return _hub_folder(bench, folder, "ChartQA", {"data/train-00000-of-00001.parquet": rows})


# -- run configs: python -m training.train --------------------------------------------------

VALID_CONFIG = "task: vqa\nmethod: lora\nbatch_size: 4\nlearning_rate: 1.0e-3\n"


def _train(bench: Bench, folder: Path, yaml_text: str, *overrides: str) -> Attempt:
    folder.mkdir(parents=True)
    (folder / "run.yaml").write_text(yaml_text)
    fields = [f"base_model={bench.tiny_base}", f"dataset={bench.templates['vqa']}", "output_dir=runs/refused"]
    return Attempt(["train", "--config", str(folder / "run.yaml"), *fields, *overrides], folder)


def _yaml(**changes: str) -> str:
    """``VALID_CONFIG`` with lines replaced, e.g. ``batch_size="batch_size: 0"``."""
    lines = dict(line.split(":", 1) for line in VALID_CONFIG.splitlines())
    return "".join(f"{key}:{value}\n" for key, value in lines.items() if key not in changes) + "".join(
        f"{text}\n" for text in changes.values()
    )


# (name, kind, says, run config YAML, overrides on the command line)
CONFIG_CASES: list[tuple[str, str, str, str, list[str]]] = [
    ("config_unknown_key", "unknown config key", "lora_rank: Extra inputs are not permitted",
     _yaml(lora_rank="lora_rank: 8"), []),
    ("config_unknown_nested_key", "unknown key inside a group", "lora.rnak: Extra inputs are not permitted",
     _yaml(lora="lora:\n  rnak: 8"), []),
    ("config_wrong_type", "wrong type (steps=many)", "steps: Input should be a valid integer", VALID_CONFIG,
     ["steps=many"]),
    ("config_negative_learning_rate", "negative learning rate", "learning_rate: Input should be greater than 0",
     _yaml(learning_rate="learning_rate: -1.0e-3"), []),
    ("config_batch_size_zero", "batch size 0", "batch_size: Input should be greater than 0",
     _yaml(batch_size="batch_size: 0"), []),
    ("config_unknown_task", "unknown task", "task: Value error, unknown task 'pose'", _yaml(task="task: pose"),
     []),
    ("config_unknown_method", "unknown method", "method: Input should be 'lora', 'qlora' or 'full'",
     _yaml(method="method: dora"), []),
    ("config_not_a_mapping", "config file that is not a mapping", "expected a mapping of config fields",
     "- task: vqa\n", []),
]  # fmt: skip


def _config_case(name: str, kind: str, says: str, yaml_text: str, overrides: list[str]) -> None:
    def build(bench: Bench, folder: Path) -> Attempt:
        return _train(bench, folder, yaml_text, *overrides)

    build.__name__ = name
    bad_input("config", kind, "run.yaml", says)(build)


for _config in CONFIG_CASES:
    _config_case(*_config)


# -- models: what training and evaluation load ---------------------------------------------


@bad_input(
    "model",
    "image size not divisible by the patch size",
    "config.json: vision_config.image_size",
    "72 is not a multiple of vision_config.patch_size 16",
)
def base_image_size_not_divisible(bench: Bench, folder: Path) -> Attempt:
    return Attempt(_train(bench, folder, VALID_CONFIG, f"base_model={bench.odd_base}").command, bench.odd_base)


def _evaluate(bench: Bench, folder: Path, adapter: Path) -> list[str]:
    command = ["palitune", "evaluate", "run", "--model", str(bench.tiny_base), "--adapter", str(adapter)]
    return [*command, "--dataset", str(bench.templates["vqa"]), "--output", str(folder / "report")]


@bad_input(
    "model",
    "adapter of another base model",
    "adapter_config.json: base_model_name_or_path",
    "does not fit base",
)
def adapter_of_another_base(bench: Bench, folder: Path) -> Attempt:
    return Attempt(_evaluate(bench, folder, bench.foreign_adapter), bench.foreign_adapter)


@bad_input("model", "pickled adapter weights (.bin)", "adapter_model.bin", "pickled weights are refused")
def adapter_pickled(bench: Bench, folder: Path) -> Attempt:
    adapter = folder / "adapter"
    shutil.copytree(bench.foreign_adapter, adapter)
    (adapter / "adapter_model.safetensors").rename(adapter / "adapter_model.bin")
    return Attempt(_evaluate(bench, folder, adapter), adapter)


@bad_input("model", "adapter folder not (yet) written", "adapter", "no such adapter or model folder")
def adapter_missing(bench: Bench, folder: Path) -> Attempt:
    run = folder / "runs" / "unfinished"
    return Attempt(_evaluate(bench, folder, run / "adapter"), run)


# -- predictions: palitune evaluate score ---------------------------------------------------


def _score(folder: Path, task: str, lines: list[Any]) -> Attempt:
    folder.mkdir(parents=True)
    path = folder / "predictions.jsonl"
    path.write_bytes(b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines))
    command = ["palitune", "evaluate", "score", "--task", task, "--predictions", str(path)]
    return Attempt([*command, "--output", str(folder / "scores.json")], folder)


VQA = {"prediction": "2", "answers": ["2"]}
DETECT = {"prediction": "<loc0100><loc0100><loc0500><loc0500> circle", "boxes": [[6, 6, 32, 32, "circle"]]}
SIZE = {"width": 64, "height": 64}


@bad_input("predictions", "invalid JSON line", "predictions.jsonl:2", "invalid JSON")
def predictions_invalid_json(bench: Bench, folder: Path) -> Attempt:
    return _score(folder, "vqa", [VQA, b'{"prediction": "2", "answers": ["2"'])


@bad_input("predictions", "non-UTF-8 line", "predictions.jsonl:3", "not UTF-8")
def predictions_non_utf8(bench: Bench, folder: Path) -> Attempt:
    return _score(folder, "vqa", [VQA, VQA, b'{"prediction": "\xff", "answers": ["2"]}'])


@bad_input("predictions", "a line that is not a JSON object", "predictions.jsonl:1", "expected a JSON object")
def predictions_not_an_object(bench: Bench, folder: Path) -> Attempt:
    return _score(folder, "vqa", [["2", "2"], VQA])


@bad_input("predictions", "missing prediction", "predictions.jsonl:2: prediction", "missing or not a string")
def predictions_missing_prediction(bench: Bench, folder: Path) -> Attempt:
    return _score(folder, "vqa", [VQA, {"answers": ["2"]}])


@bad_input("predictions", "missing targets", "predictions.jsonl:1: answers", "missing (the accepted answers")
def predictions_missing_answers(bench: Bench, folder: Path) -> Attempt:
    return _score(folder, "docvqa", [{"prediction": "12.50"}, VQA])


@bad_input(
    "predictions",
    "malformed `<loc>` text",
    "predictions.jsonl:2: prediction",
    "malformed location token(s) <loc100>, <loc2000>",
)
def predictions_malformed_loc(bench: Bench, folder: Path) -> Attempt:
    bad = {**DETECT, **SIZE, "prediction": "<loc0100><loc100><loc2000><loc0500> circle"}
    return _score(folder, "detect", [{**DETECT, **SIZE}, bad])


@bad_input("predictions", "detection without the image size", "predictions.jsonl:1: width", "positive integer")
def predictions_detect_without_size(bench: Bench, folder: Path) -> Attempt:
    return _score(folder, "detect", [DETECT])


@bad_input("predictions", "detection target boxes malformed", "predictions.jsonl:1: boxes", "[[x0, y0, x1, y1, label]")
def predictions_detect_bad_boxes(bench: Bench, folder: Path) -> Attempt:
    return _score(folder, "detect", [{**DETECT, **SIZE, "boxes": [[1, 2, 3]]}])


@bad_input("predictions", "empty predictions file", "predictions.jsonl", "no predictions")
def predictions_empty(bench: Bench, folder: Path) -> Attempt:
    return _score(folder, "vqa", [])


# -- registry: names that do not exist ------------------------------------------------------


@bad_input("registry", "registered model that does not exist (rollback)", "mlflow.db", "'palitune-nope' does not exist")
def registry_unknown_model(bench: Bench, folder: Path) -> Attempt:
    return Attempt(["palitune", "registry", "rollback", "palitune-nope"], bench.registry())


@bad_input("registry", "alias that does not exist (export)", "mlflow.db", "no version holds alias 'gold'")
def registry_unknown_alias(bench: Bench, folder: Path) -> Attempt:
    command = ["palitune", "registry", "export", "palitune-vqa@gold", "--merged", "--out", str(folder / "export")]
    return Attempt(command, bench.registry())


@bad_input("registry", "registered model that does not exist (predict)", "mlflow.db", "'palitune-nope' does not exist")
def registry_unknown_model_uri(bench: Bench, folder: Path) -> Attempt:
    folder.mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(folder / "photo.png")
    command = ["palitune", "predict", "--model", "models:/palitune-nope@champion", "--image", str(folder / "photo.png")]
    return Attempt([*command, "--prompt", "caption en"], bench.registry())
