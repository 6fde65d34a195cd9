"""The synthetic datasets as a DVC pipeline: params.yaml sizes them, dvc.lock versions them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from data.pipeline import PipelineError, read_params, reproduce, set_params
from data.schema import read_split
from data.synthetic import GENERATORS, SplitSizes, write_synthetic
from data.versioning import ensure_repo, recorded_hash, restore_dataset, verify_dataset, version_dataset

SIZES = SplitSizes(train=6, val=2, test=2)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _dvc(root: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True, check=True)
    return result.stdout


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    ensure_repo(root, tmp_path / "remote")
    return root


def test_repro_renders_what_params_say_and_versions_it_in_the_lock(root: Path, tmp_path: Path) -> None:
    reproduce(root, [])  # writes dvc.yaml and the default params.yaml, renders nothing
    assert sorted(read_params(root)) == sorted(GENERATORS)
    set_params(root, "ocr", seed=3, sizes=SIZES, image_size=48)
    (out,) = reproduce(root, ["ocr"])

    assert out == root / "dvc-data" / "synthetic" / "ocr"
    assert [len(read_split(out, split)) for split in ("train", "val", "test")] == [6, 2, 2]
    # Same bytes as rendering it by hand with those parameters.
    assert _files(out) == _files(write_synthetic("ocr", tmp_path / "by-hand", seed=3, sizes=SIZES, image_size=48))
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["synthesize@ocr"]
    assert lock["params"]["params.yaml"]["synthetic.ocr"]["seed"] == 3
    assert recorded_hash(out) == lock["outs"][0]["md5"].removesuffix(".dir")
    assert json.loads(_dvc(root, "status", "--json", "synthesize@ocr")) == {}  # nothing stale

    version = version_dataset(root, out)
    assert version.hash == recorded_hash(out) and version.dvc_file == root / "dvc.lock"
    assert verify_dataset(out) == version.hash
    clone = tmp_path / "clone"  # a hash alone restores it elsewhere, from the remote
    ensure_repo(clone, tmp_path / "remote")
    assert _files(restore_dataset(clone, version.hash, clone / "dvc-data" / "ocr").path) == _files(out)


def test_repro_skips_unchanged_and_rerenders_changed_params(root: Path) -> None:
    reproduce(root, [])
    set_params(root, "vqa", seed=0, sizes=SIZES, image_size=64)
    (out,) = reproduce(root, ["vqa"])
    first = recorded_hash(out)
    stamp = (out / "train.jsonl").stat().st_mtime_ns
    reproduce(root, ["vqa"])
    assert (out / "train.jsonl").stat().st_mtime_ns == stamp  # skipped: params and output unchanged

    set_params(root, "vqa", seed=1, sizes=SIZES, image_size=64)
    reproduce(root, ["vqa"])
    assert recorded_hash(out) != first


def test_versioning_a_stale_output_is_refused_and_the_lock_kept(root: Path) -> None:
    reproduce(root, [])
    set_params(root, "caption", seed=0, sizes=SIZES, image_size=64)
    (out,) = reproduce(root, ["caption"])
    lock_before = (root / "dvc.lock").read_bytes()
    set_params(root, "caption", seed=5, sizes=SIZES, image_size=64)  # edited, not re-rendered

    with pytest.raises(PipelineError, match=r"params.yaml: synthetic.caption: changed .* palitune data repro"):
        version_dataset(root, out)
    assert (root / "dvc.lock").read_bytes() == lock_before


def test_a_hand_edited_output_is_committed_as_it_is_now(root: Path) -> None:
    reproduce(root, [])
    set_params(root, "vqa", seed=0, sizes=SIZES, image_size=64)
    (out,) = reproduce(root, ["vqa"])
    rendered = recorded_hash(out)
    lines = (out / "test.jsonl").read_text().splitlines()
    (out / "test.jsonl").write_text("\n".join(lines[:1]) + "\n")

    version = version_dataset(root, out)
    assert version.hash != rendered and recorded_hash(out) == version.hash
    assert verify_dataset(out) == version.hash


def test_unknown_task_in_repro_is_named(root: Path) -> None:
    reproduce(root, [])
    data = yaml.safe_load((root / "params.yaml").read_text())
    del data["synthetic"]["ocr"]
    (root / "params.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(PipelineError, match="params.yaml: synthetic: no parameters for task.*ocr"):
        reproduce(root, ["ocr"])


def test_first_params_give_the_reading_tasks_ten_times_the_images(tmp_path: Path) -> None:
    from data.pipeline import ensure_pipeline

    ensure_pipeline(tmp_path)
    sizes = {task: params["train"] for task, params in read_params(tmp_path).items()}
    assert {task for task, size in sizes.items() if size == 20_000} == {"ocr", "docvqa", "extract", "detect", "segment"}
    assert sizes["vqa"] == sizes["chartqa"] == sizes["caption"] == 2000
