"""Fixtures of the training tests: a workspace holding a versioned small VQA dataset."""

from pathlib import Path

import pytest

from data.synthetic import write_shapes_vqa
from data.versioning import ensure_repo, version_dataset
from tests.conftest import SMALL


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace whose ``dvc-data/vqa`` is a small VQA dataset, versioned with DVC."""
    ensure_repo(tmp_path, tmp_path / "dvc-remote")
    version_dataset(tmp_path, write_shapes_vqa(tmp_path / "dvc-data" / "vqa", sizes=SMALL))
    return tmp_path
