"""PaliGemma's mask codec: an object's mask inside its box <-> 16 ``<segNNN>`` codes.

``load_codec()`` gives the codec (big_vision's ``vae-oid.npz`` when a path or
``$PALITUNE_MASK_CODEC`` names it, else the embedded one); ``MaskCodec.mask_to_codes`` and
``MaskCodec.codes_to_mask`` convert full-size masks; ``require_codec`` refuses data that
another codec encoded.
"""

from data.mask_codec.checkpoint import MaskCodecError
from data.mask_codec.codec import ENV_VAR, CodecIdentity, MaskCodec, load_codec, require_codec
from data.mask_codec.vqvae import Architecture, MaskVQVAE

__all__ = [
    "ENV_VAR",
    "Architecture",
    "CodecIdentity",
    "MaskCodec",
    "MaskCodecError",
    "MaskVQVAE",
    "load_codec",
    "require_codec",
]
