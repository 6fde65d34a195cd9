"""Training's codec check: a segment dataset is trained on only under the codec that encoded it.

Apart from ``data.segment_target`` because it raises ``data.schema.DataError``: the schema
reads records through the task table, which renders segment targets through
``data.segment_target``, so that module cannot import the schema back.
"""

from __future__ import annotations

from pathlib import Path

from data.mask_codec.checkpoint import MaskCodecError
from data.schema import MANIFEST_FILE, DataError
from data.segment_target import MANIFEST_KEY, require_dataset_codec

SEGMENT_TASK = "segment"


def require_training_codec(dataset_dir: Path, task: str) -> dict[str, str] | None:
    """Before training ``task`` on ``dataset_dir``: for ``segment``, the codec in force must be
    the one that encoded the dataset (its manifest's ``mask_codec``); returns that codec's
    record, for the run to keep beside its adapter so that serving can refuse another codec.
    ``None`` for any other task (nothing to check).

    Raises:
        DataError: located at the dataset's manifest, field ``mask_codec``: the manifest is
            missing, records no codec, or another one (the message says how to fix it). A
            ``DataError`` so that training exits as for any bad input, without a retry.
    """
    if task != SEGMENT_TASK:
        return None
    manifest = Path(dataset_dir) / MANIFEST_FILE
    if not manifest.is_file():
        raise DataError(manifest, None, MANIFEST_KEY, "no manifest: a segment dataset records its mask codec there")
    try:
        codec = require_dataset_codec(manifest)
    except (MaskCodecError, ValueError) as err:
        raise DataError(manifest, None, MANIFEST_KEY, str(err)) from None
    return codec.identity.as_dict()
