"""The mask VQ-VAE of PaliGemma's segmentation tokens, in torch, with widths read from weights.

Layout and key names follow big_vision's ``vae-oid.npz`` (a PyTorch state dict saved as
numpy arrays), as read by ``big_vision/pp/proj/paligemma/segmentation.py``
(``encode_to_codebook_indices``) and
``big_vision/evaluators/proj/paligemma/transfers/segmentation.py`` (``_get_params``,
``Decoder``, ``ResBlock``)::

    encoder.{0,2,4,6}      Conv2d 4x4 stride 2 ("SAME" = padding 1), each followed by ReLU
    encoder.{8,9}.net.*    residual blocks: conv3x3, ReLU, conv3x3, ReLU, conv1x1, plus input
    encoder.10             Conv2d 1x1 to the embedding width D
    _vq_vae._embedding     codebook, 128 x D
    decoder.0              Conv2d 1x1 from D, followed by ReLU
    decoder.{2,3}.net.*    residual blocks
    decoder.{4,6,8,10}     ConvTranspose2d 4x4 stride 2 padding 1, each followed by ReLU
    decoder.12             Conv2d 1x1 to one channel: the mask logit, > 0 inside

Keeping the checkpoint's own names as module names makes ``load_state_dict`` the mapping:
flax's ``nn.ConvTranspose(padding=2, transpose_kernel=True)`` on the kernel
``transpose(w, (2, 3, 1, 0))`` is exactly torch's ``ConvTranspose2d(padding=1)`` on ``w``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

GRID = 4  # 64x64 after four stride-2 stages: a 4x4 grid of codes
TOKENS = GRID * GRID
MASK_SIZE = 64
CODEBOOK_SIZE = 128  # PaliGemma's <seg000>..<seg127>
ENCODER_DOWN = ("encoder.0", "encoder.2", "encoder.4", "encoder.6")
DECODER_UP = ("decoder.4", "decoder.6", "decoder.8", "decoder.10")
ENCODER_RES = ("encoder.8.net", "encoder.9.net")
DECODER_RES = ("decoder.2.net", "decoder.3.net")
EMBEDDING = "_vq_vae._embedding"


@dataclass(frozen=True)
class Architecture:
    """The widths of one mask VQ-VAE, as read from its weights.

    big_vision's ``Decoder`` fixes vae-oid.npz's decoder at (128, 64, 32, 16); its encoder is
    (16, 32, 64, 128); the embedding width comes from ``_vq_vae._embedding``.
    """

    encoder_widths: tuple[int, int, int, int]
    embedding_dim: int
    decoder_widths: tuple[int, int, int, int]
    codebook_size: int = CODEBOOK_SIZE

    def as_metadata(self) -> dict[str, str]:
        """The widths as flat strings (safetensors metadata holds str -> str)."""
        return {
            "encoder_widths": ",".join(map(str, self.encoder_widths)),
            "embedding_dim": str(self.embedding_dim),
            "decoder_widths": ",".join(map(str, self.decoder_widths)),
            "codebook_size": str(self.codebook_size),
        }


def _shape(shapes: Mapping[str, tuple[int, ...]], key: str, rank: int) -> tuple[int, ...]:
    if key not in shapes:
        raise KeyError(f"mask codec weights lack {key!r}, which the big_vision layout requires")
    shape = tuple(shapes[key])
    if len(shape) != rank:
        raise ValueError(f"mask codec weight {key!r} has shape {shape}, expected {rank} dimensions")
    return shape


def architecture_from_shapes(shapes: Mapping[str, tuple[int, ...]]) -> Architecture:
    """Read the widths from a checkpoint's key -> shape map (only the keys that fix a width).

    Raises:
        KeyError: a key that fixes a width is missing (the message names it).
        ValueError: such a key has the wrong rank.
    """
    encoder = tuple(_shape(shapes, f"{name}.weight", 4)[0] for name in ENCODER_DOWN)
    decoder = tuple(_shape(shapes, f"{name}.weight", 4)[1] for name in DECODER_UP)  # (in, out, kh, kw)
    codebook = _shape(shapes, EMBEDDING, 2)
    return Architecture(
        encoder_widths=(encoder[0], encoder[1], encoder[2], encoder[3]),
        embedding_dim=codebook[1],
        decoder_widths=(decoder[0], decoder[1], decoder[2], decoder[3]),
        codebook_size=codebook[0],
    )


class ResBlock(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(conv3x3(x)))))``: big_vision's ``ResBlock``, under ``.net``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class Codebook(nn.Module):
    """Holds the codebook as ``_embedding`` so its state-dict key is ``_vq_vae._embedding``."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self._embedding = nn.Parameter(torch.empty(size, dim).uniform_(-1.0 / size, 1.0 / size))

    @property
    def weight(self) -> torch.Tensor:
        return self._embedding


class MaskVQVAE(nn.Module):
    """Encoder, codebook and decoder of the mask VQ-VAE; state-dict keys are vae-oid.npz's."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        e1, e2, e3, e4 = arch.encoder_widths
        d1, d2, d3, d4 = arch.decoder_widths
        relu = nn.ReLU
        self.encoder = nn.Sequential(
            nn.Conv2d(1, e1, 4, stride=2, padding=1), relu(),
            nn.Conv2d(e1, e2, 4, stride=2, padding=1), relu(),
            nn.Conv2d(e2, e3, 4, stride=2, padding=1), relu(),
            nn.Conv2d(e3, e4, 4, stride=2, padding=1), relu(),
            ResBlock(e4), ResBlock(e4),
            nn.Conv2d(e4, arch.embedding_dim, 1),
        )  # fmt: skip
        self._vq_vae = Codebook(arch.codebook_size, arch.embedding_dim)
        self.decoder = nn.Sequential(
            nn.Conv2d(arch.embedding_dim, d1, 1), relu(),
            ResBlock(d1), ResBlock(d1),
            nn.ConvTranspose2d(d1, d1, 4, stride=2, padding=1), relu(),
            nn.ConvTranspose2d(d1, d2, 4, stride=2, padding=1), relu(),
            nn.ConvTranspose2d(d2, d3, 4, stride=2, padding=1), relu(),
            nn.ConvTranspose2d(d3, d4, 4, stride=2, padding=1), relu(),
            nn.Conv2d(d4, 1, 1),
        )  # fmt: skip

    @property
    def codebook(self) -> torch.Tensor:
        return self._vq_vae.weight

    def encode_latents(self, masks: torch.Tensor) -> torch.Tensor:
        """(N, 64, 64) in [-1, 1] -> (N, 16, D) latents, row-major over the 4x4 grid."""
        z = self.encoder(masks[:, None])  # (N, D, 4, 4)
        # big_vision reshapes NHWC to [-1, 16]: channels last, then rows, then columns
        return z.permute(0, 2, 3, 1).reshape(z.shape[0], TOKENS, -1)

    def nearest_codes(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, 16, D) -> (N, 16) indices of the nearest codebook entries (squared L2, as big_vision)."""
        flat = latents.reshape(-1, latents.shape[-1])
        emb = self.codebook
        distances = flat.pow(2).sum(1, keepdim=True) + emb.pow(2).sum(1) - 2 * flat @ emb.T
        return distances.argmin(1).reshape(latents.shape[0], TOKENS)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, 16, D) -> (N, 64, 64) mask logits (> 0 inside)."""
        grid = latents.reshape(latents.shape[0], GRID, GRID, -1).permute(0, 3, 1, 2)
        return self.decoder(grid)[:, 0]

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, 16) indices -> (N, 64, 64) mask logits."""
        return self.decode_latents(self.codebook[codes])
