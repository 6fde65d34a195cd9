"""DVC versions: the hash is the dataset's identity, and a hash alone restores the data."""

import shutil
from pathlib import Path

from data.synthetic import SplitSizes, write_shapes_vqa
from data.versioning import ensure_repo, recorded_hash, restore_dataset, version_dataset

SIZES = SplitSizes(train=12, val=4, test=4)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_bytes_same_hash_one_byte_changed_new_hash(tmp_path: Path) -> None:
    hashes = []
    for name in ("a", "b"):  # two independent repositories, same rendered bytes
        root = tmp_path / name
        ensure_repo(root, root / "remote")
        hashes.append(version_dataset(root, write_shapes_vqa(root / "datasets" / "vqa", sizes=SIZES)).hash)
    assert hashes[0] == hashes[1]
    assert len(hashes[0]) == 32

    dataset = tmp_path / "a" / "datasets" / "vqa"
    with (dataset / "train.jsonl").open("a") as f:
        f.write("\n")
    changed = version_dataset(tmp_path / "a", dataset)
    assert changed.hash != hashes[0]
    assert recorded_hash(dataset) == changed.hash


def test_a_hash_restores_the_dataset_from_the_remote_alone(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    ensure_repo(root, tmp_path / "remote")
    dataset = write_shapes_vqa(root / "datasets" / "vqa", sizes=SIZES)
    original = _files(dataset)
    digest = version_dataset(root, dataset).hash

    # A fresh clone: a new repository, no cache, only the remote and the hash.
    clone = tmp_path / "clone"
    ensure_repo(clone, tmp_path / "remote")
    restored = restore_dataset(clone, digest, clone / "datasets" / "vqa")
    assert _files(restored.path) == original
    assert recorded_hash(restored.path) == digest


def test_re_rendering_is_byte_identical(tmp_path: Path) -> None:
    first = _files(write_shapes_vqa(tmp_path / "one", sizes=SIZES))
    second = _files(write_shapes_vqa(tmp_path / "two", sizes=SIZES))
    assert first == second
    other_seed = _files(write_shapes_vqa(tmp_path / "three", sizes=SIZES, seed=1))
    assert other_seed != first
    shutil.rmtree(tmp_path / "three")
