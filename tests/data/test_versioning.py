"""DVC versions: the hash is the dataset's identity, and a hash alone restores the data."""

import shutil
from pathlib import Path

import pytest

from data.schema import DataError
from data.synthetic import SplitSizes, write_shapes_vqa
from data.versioning import ensure_repo, recorded_hash, restore_dataset, verify_dataset, version_dataset

SIZES = SplitSizes(train=12, val=4, test=4)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_bytes_same_hash_one_byte_changed_new_hash(tmp_path: Path) -> None:
    hashes = []
    for name in ("a", "b"):  # two independent repositories, same rendered bytes
        root = tmp_path / name
        ensure_repo(root, root / "remote")
        hashes.append(version_dataset(root, write_shapes_vqa(root / "dvc-data" / "vqa", sizes=SIZES)).hash)
    assert hashes[0] == hashes[1]
    assert len(hashes[0]) == 32

    dataset = tmp_path / "a" / "dvc-data" / "vqa"
    with (dataset / "train.jsonl").open("a") as f:
        f.write("\n")
    changed = version_dataset(tmp_path / "a", dataset)
    assert changed.hash != hashes[0]
    assert recorded_hash(dataset) == changed.hash


def test_a_hash_restores_the_dataset_from_the_remote_alone(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    ensure_repo(root, tmp_path / "remote")
    dataset = write_shapes_vqa(root / "dvc-data" / "vqa", sizes=SIZES)
    original = _files(dataset)
    digest = version_dataset(root, dataset).hash

    # A fresh clone: a new repository, no cache, only the remote and the hash.
    clone = tmp_path / "clone"
    ensure_repo(clone, tmp_path / "remote")
    restored = restore_dataset(clone, digest, clone / "dvc-data" / "vqa")
    assert _files(restored.path) == original
    assert recorded_hash(restored.path) == digest


def test_re_rendering_is_byte_identical(tmp_path: Path) -> None:
    first = _files(write_shapes_vqa(tmp_path / "one", sizes=SIZES))
    second = _files(write_shapes_vqa(tmp_path / "two", sizes=SIZES))
    assert first == second
    other_seed = _files(write_shapes_vqa(tmp_path / "three", sizes=SIZES, seed=1))
    assert other_seed != first
    shutil.rmtree(tmp_path / "three")


def test_changed_files_are_refused_until_restored(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    ensure_repo(root, tmp_path / "remote")
    dataset = write_shapes_vqa(root / "dvc-data" / "vqa", sizes=SIZES)
    digest = version_dataset(root, dataset).hash
    assert verify_dataset(dataset) == digest

    (dataset / "images" / "train-00001.png").write_bytes(b"not the same image")
    (dataset / "images" / "test-00000.png").unlink()
    (dataset / "notes.txt").write_text("extra")
    with pytest.raises(DataError) as raised:
        verify_dataset(dataset)
    message = str(raised.value)
    assert f"does not match dataset version {digest}" in message
    assert "images/train-00001.png: md5 differs" in message
    assert "images/test-00000.png: missing" in message
    assert "notes.txt: not part of the version" in message

    shutil.rmtree(dataset)
    restored = restore_dataset(root, digest, dataset)
    assert verify_dataset(restored.path) == digest
    assert restored.files == SIZES.train + SIZES.val + SIZES.test + 4  # images, 3 split files, manifest


def test_unversioned_folders_cannot_be_verified(tmp_path: Path) -> None:
    dataset = write_shapes_vqa(tmp_path / "vqa", sizes=SIZES)
    with pytest.raises(DataError, match="not a versioned dataset"):
        verify_dataset(dataset)


def test_an_invalid_dataset_is_never_versioned(tmp_path: Path) -> None:
    from data.validate import InvalidDatasetError

    root = tmp_path / "ws"
    ensure_repo(root, tmp_path / "remote")
    dataset = write_shapes_vqa(root / "dvc-data" / "vqa", sizes=SIZES)
    (dataset / "images" / "val-00001.png").write_bytes(b"")
    before = _files(dataset)
    with pytest.raises(InvalidDatasetError, match="val.jsonl:2: image"):
        version_dataset(root, dataset)
    assert not (root / "dvc-data" / "vqa.dvc").exists()
    assert recorded_hash(dataset) is None
    assert _files(dataset) == before, "nothing changed on disk"
    assert not any((tmp_path / "remote").rglob("*.dir")), "nothing pushed"
