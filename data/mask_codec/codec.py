"""``MaskCodec``: object masks <-> PaliGemma's 16 segmentation codes, from one of two sources.

The codes of one object are the 4x4 grid (row-major) of nearest codebook entries of the
mask VQ-VAE's latents for the object's box, as ``encode_to_codebook_indices`` in
``big_vision/pp/proj/paligemma/segmentation.py`` computes them; decoding is
``get_reconstruct_masks`` in ``big_vision/evaluators/proj/paligemma/transfers/segmentation.py``.

Sources: big_vision's ``vae-oid.npz`` (the codec PaliGemma was trained with) when a path is
given, directly or through ``PALITUNE_MASK_CODEC``; otherwise the small embedded codec of the
same architecture shipped with this package (``train_embedded.py`` made it). A codec is
identified by the SHA-256 of its weights file, which a dataset records; using a dataset with
another codec is refused by ``require_codec``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

from data.mask_codec.checkpoint import MaskCodecError, model_from_arrays, read_arrays, sha256_hex
from data.mask_codec.resize import crop_to_codec, paste_from_codec, pixel_box
from data.mask_codec.vqvae import CODEBOOK_SIZE, MASK_SIZE, TOKENS, Architecture, MaskVQVAE

ENV_VAR = "PALITUNE_MASK_CODEC"
EMBEDDED = "embedded"  # the name, and a path value that selects the embedded codec explicitly
EMBEDDED_FILE = "embedded.safetensors"


@dataclass(frozen=True)
class CodecIdentity:
    """Which weights encoded a dataset: a readable name and the SHA-256 of the weights file."""

    name: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Mapping[str, object]) -> CodecIdentity:
        """Read a recorded identity (e.g. from a dataset manifest).

        Raises:
            MaskCodecError: ``name`` or ``sha256`` is missing or not a string.
        """
        name, sha = value.get("name"), value.get("sha256")
        if not isinstance(name, str) or not isinstance(sha, str):
            raise MaskCodecError(f"a recorded mask codec needs string 'name' and 'sha256', got {dict(value)!r}")
        return cls(name=name, sha256=sha)


class MaskCodec:
    """Encodes 64x64 box views of masks to 16 codes and decodes codes back; see the module doc."""

    def __init__(self, model: MaskVQVAE, identity: CodecIdentity) -> None:
        self.model = model.eval()
        self.identity = identity

    @property
    def architecture(self) -> Architecture:
        return self.model.arch

    def encode(self, masks: np.ndarray) -> np.ndarray:
        """(N, 64, 64) floats in [-1, 1] (-1 outside, 1 inside) -> (N, 16) int64 codes in 0..127.

        Raises:
            ValueError: wrong shape, or values outside [-1, 1] (a mask in [0, 1] or 0..255 is
                scaled by the caller; ``mask_to_codes`` does it).
        """
        masks = np.asarray(masks, dtype=np.float32)
        if masks.ndim != 3 or masks.shape[1:] != (MASK_SIZE, MASK_SIZE):
            raise ValueError(f"encode takes masks shaped (N, 64, 64), got {masks.shape}")
        if masks.size and (not np.isfinite(masks).all() or masks.min() < -1.0001 or masks.max() > 1.0001):
            raise ValueError(f"encode takes values in [-1, 1], got [{masks.min()}, {masks.max()}]")
        with torch.inference_mode():
            latents = self.model.encode_latents(torch.from_numpy(masks))
            return self.model.nearest_codes(latents).numpy().astype(np.int64)

    def decode(self, codes: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """(N, 16) codes -> (N, 64, 64) float32 decoder outputs; ``> 0`` is inside the mask.

        Raises:
            ValueError: wrong shape, non-integer codes, or codes outside 0..127.
        """
        array = np.asarray(codes)
        if array.ndim != 2 or array.shape[1] != TOKENS:
            raise ValueError(f"decode takes codes shaped (N, {TOKENS}), got {array.shape}")
        if array.size and (
            not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() >= CODEBOOK_SIZE
        ):
            raise ValueError(
                f"codes are integers in 0..{CODEBOOK_SIZE - 1}, got {array.dtype} {array.min()}..{array.max()}"
            )
        with torch.inference_mode():
            return self.model.decode_codes(torch.from_numpy(array.astype(np.int64))).numpy()

    def mask_to_codes(self, mask: np.ndarray, box: Sequence[float]) -> list[int]:
        """A full-size boolean ``H x W`` mask and its annotation box ``(x0, y0, x1, y1)`` in
        pixels -> the object's 16 codes (crop to the box, 64x64 antialiased bilinear, [-1, 1]).

        Raises:
            ValueError: the mask is not 2-D or the box is empty or outside it.
        """
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"mask_to_codes takes one H x W mask, got shape {mask.shape}")
        view = crop_to_codec(mask > 0, pixel_box(box, mask.shape[1], mask.shape[0]))
        return [int(c) for c in self.encode(view[None] * 2.0 - 1.0)[0]]

    def codes_to_mask(self, codes: Sequence[int], box: Sequence[float], image_size: tuple[int, int]) -> np.ndarray:
        """16 codes, the box they describe and the image's ``(width, height)`` -> a full-size
        boolean mask: the decoded 64x64 mask resized bilinearly into the box, ``> 0``, as
        big_vision's segmentation evaluator does; empty outside the box.
        """
        width, height = image_size
        logits = self.decode(np.asarray([list(codes)]))[0]
        return paste_from_codec(logits, pixel_box(box, width, height), width, height)


def _embedded_bytes() -> bytes:
    resource = files("data.mask_codec") / EMBEDDED_FILE
    if not resource.is_file():  # an install without the package data
        raise MaskCodecError(
            f"the embedded mask codec {EMBEDDED_FILE} is not installed with data.mask_codec: reinstall palitune "
            "(it is package data), or write it with python -m data.mask_codec.train_embedded"
        )
    return resource.read_bytes()


def load_codec(path: str | os.PathLike[str] | None = None) -> MaskCodec:
    """The mask codec at ``path``; without one, ``$PALITUNE_MASK_CODEC``; without that, the embedded one.

    ``path`` is big_vision's ``vae-oid.npz`` (or a ``.safetensors`` file with its keys), or
    ``"embedded"``. Weights are loaded strictly (see ``checkpoint.model_from_arrays``).

    Raises:
        MaskCodecError: the file is missing, unreadable or not in vae-oid.npz's layout.
    """
    chosen = os.fspath(path) if path is not None else os.environ.get(ENV_VAR, "").strip() or EMBEDDED
    if chosen == EMBEDDED:
        data, name, suffix, source = _embedded_bytes(), EMBEDDED, ".safetensors", f"embedded mask codec {EMBEDDED_FILE}"
    else:
        file = Path(chosen).expanduser()
        if not file.is_file():
            origin = "" if path is not None else f" (from ${ENV_VAR})"
            raise MaskCodecError(f"mask codec file not found: {file}{origin}; give big_vision's vae-oid.npz")
        data, name, suffix, source = file.read_bytes(), file.stem, file.suffix.lower(), str(file)
    model = model_from_arrays(read_arrays(data, suffix, source), source)
    return MaskCodec(model, CodecIdentity(name=name, sha256=sha256_hex(data)))


def require_codec(recorded: CodecIdentity | Mapping[str, object], codec: MaskCodec, what: str = "the dataset") -> None:
    """Refuse to use ``codec`` on data whose codes another codec made (the hashes differ).

    Raises:
        MaskCodecError: saying which codec made the data and which one is loaded, and how to fix it.
    """
    expected = recorded if isinstance(recorded, CodecIdentity) else CodecIdentity.from_dict(recorded)
    if expected.sha256 != codec.identity.sha256:
        raise MaskCodecError(
            f"{what} was encoded with mask codec {expected.name!r} (sha256 {expected.sha256[:12]}...), "
            f"but the loaded codec is {codec.identity.name!r} (sha256 {codec.identity.sha256[:12]}...): "
            "its <seg> codes mean other masks under this codec. Load the codec that encoded it "
            f"(the codec path setting or ${ENV_VAR}), or re-encode {what} with the loaded one."
        )
