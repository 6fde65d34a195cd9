"""Reading mask codec weights strictly: big_vision's ``vae-oid.npz`` or a safetensors file.

Both hold the same keys (a PyTorch state dict's names, see ``data.mask_codec.vqvae``). Arrays
are read with ``allow_pickle=False``: a checkpoint is data, never code.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping

import numpy as np
import torch
from safetensors.numpy import load as load_safetensors

from data.mask_codec.vqvae import CODEBOOK_SIZE, MaskVQVAE, architecture_from_shapes


class MaskCodecError(ValueError):
    """Mask codec weights that cannot be used, or a codec that does not match a dataset's."""


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of a weights file's bytes: the codec's identity."""
    return hashlib.sha256(data).hexdigest()


def read_arrays(data: bytes, suffix: str, source: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` or ``.safetensors`` file (``suffix``) read from ``source``, by key.

    Raises:
        MaskCodecError: the file is neither, or cannot be parsed (the message names ``source``).
    """
    try:
        if suffix == ".npz":
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                return {key: np.asarray(npz[key]) for key in npz.files}
        if suffix == ".safetensors":
            return dict(load_safetensors(data))
    except (ValueError, OSError) as error:  # np.load refuses pickled object arrays with ValueError
        raise MaskCodecError(f"cannot read mask codec weights {source}: {error}") from error
    raise MaskCodecError(f"mask codec weights must be a .npz (big_vision's vae-oid.npz) or .safetensors file: {source}")


def model_from_arrays(arrays: Mapping[str, np.ndarray], source: str) -> MaskVQVAE:
    """Build the VQ-VAE the arrays describe and load them strictly.

    Widths come from the arrays' shapes; then every key the architecture has must be present,
    no other key may be, and every shape must match.

    Raises:
        MaskCodecError: naming the first missing, unexpected or misshapen key, or a codebook
            that is not 128 entries (PaliGemma has 128 ``<seg>`` tokens).
    """
    shapes = {key: tuple(array.shape) for key, array in arrays.items()}
    try:
        arch = architecture_from_shapes(shapes)
    except (KeyError, ValueError) as error:
        raise MaskCodecError(f"{source}: {error.args[0]}") from error
    if arch.codebook_size != CODEBOOK_SIZE:
        raise MaskCodecError(
            f"{source}: codebook '_vq_vae._embedding' has {arch.codebook_size} entries; "
            f"PaliGemma's <seg> tokens need {CODEBOOK_SIZE}"
        )
    model = MaskVQVAE(arch)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    if missing:
        raise MaskCodecError(f"{source}: missing key {missing[0]!r} (of {len(missing)} missing: {missing})")
    if unexpected:
        raise MaskCodecError(
            f"{source}: unexpected key {unexpected[0]!r} (of {len(unexpected)} unexpected: {unexpected}); "
            "this is not a checkpoint in big_vision's vae-oid.npz layout"
        )
    for key, shape in expected.items():
        if shapes[key] != shape:
            raise MaskCodecError(f"{source}: key {key!r} has shape {shapes[key]}, the architecture needs {shape}")
        if not np.issubdtype(arrays[key].dtype, np.floating):
            raise MaskCodecError(f"{source}: key {key!r} has dtype {arrays[key].dtype}, expected floating point")
    state = {key: torch.from_numpy(np.array(arrays[key], dtype=np.float32)) for key in expected}
    model.load_state_dict(state, strict=True)
    return model.eval()
