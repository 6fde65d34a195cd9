"""The shapes of a PaliGemma that its training memory depends on, known before it loads.

A preset's are the published checkpoints' (their ``config.json``: SigLIP So400m/14 and Gemma
2B, or Gemma 2 2B / 9B / 27B); a local folder's come from its ``config.json``; the tiny base's
from its spec. Parameter counts are closed forms of these shapes (tested equal to the module
tree transformers builds on the meta device).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.presets import PATCH, preset_for
from models.tiny_base import PALIGEMMA_EXTRA_TOKENS, TinyBaseSpec
from training.config import LoraConfig

LORA_SITES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelDims:
    """The shapes of a PaliGemma that memory depends on."""

    image_size: int
    patch: int
    vision_hidden: int
    vision_mlp: int
    vision_layers: int
    vision_heads: int
    text_family: str  # "gemma" (PaliGemma) or "gemma2" (PaliGemma 2: four norms per layer, eager attention)
    text_hidden: int
    text_mlp: int
    text_layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch) ** 2

    @property
    def vision_params(self) -> int:
        d, m = self.vision_hidden, self.vision_mlp
        layer = 4 * (d * d + d) + (d * m + m) + (m * d + d) + 4 * d
        return 3 * self.patch**2 * d + d + self.image_tokens * d + self.vision_layers * layer + 2 * d

    @property
    def projector_params(self) -> int:
        return self.vision_hidden * self.text_hidden + self.text_hidden

    @property
    def text_params(self) -> int:
        """Gemma's parameters; the output head is tied to the input embeddings."""
        norms = 4 if self.text_family == "gemma2" else 2
        return (
            self.vocab * self.text_hidden
            + self.text_layers * self.text_layer_linear
            + (self.text_layers * norms + 1) * self.text_hidden
        )

    @property
    def patch_embed(self) -> int:
        """Weights of SigLIP's patch embedding (a convolution: one matmul per patch)."""
        return 3 * self.patch**2 * self.vision_hidden

    @property
    def vision_layer_linear(self) -> int:
        """q, k, v, o and the two MLP matmuls of one SigLIP layer."""
        return 4 * self.vision_hidden**2 + 2 * self.vision_hidden * self.vision_mlp

    @property
    def projector_linear(self) -> int:
        return self.vision_hidden * self.text_hidden

    @property
    def head_linear(self) -> int:
        """The output head (tied to the input embeddings)."""
        return self.text_hidden * self.vocab

    @property
    def text_layer_linear(self) -> int:
        """q and o (all heads), k and v (the KV heads), gate, up and down of one Gemma layer."""
        d, q, kv = self.text_hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        return 2 * d * q + 2 * d * kv + 3 * d * self.text_mlp

    @property
    def linear_params(self) -> int:
        """Parameters in linear layers (what a 4-bit base quantizes): all but embeddings, norms, patches."""
        vision_linear = self.vision_layers * self.vision_layer_linear
        return vision_linear + self.projector_linear + self.text_layers * self.text_layer_linear

    @property
    def params(self) -> int:
        return self.vision_params + self.projector_params + self.text_params

    def lora_params(self, lora: LoraConfig) -> int:
        """LoRA A and B of every text layer's sites the target regex names."""
        d, q, kv, m = self.text_hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.text_mlp
        sizes = {"q_proj": d + q, "k_proj": d + kv, "v_proj": d + kv, "o_proj": q + d,
                 "gate_proj": d + m, "up_proj": d + m, "down_proj": m + d}  # fmt: skip
        return self.text_layers * lora.rank * sum(sizes[s] for s in LORA_SITES if s in lora.target_modules)


SIGLIP_SO400M = {"patch": PATCH, "vision_hidden": 1152, "vision_mlp": 4304, "vision_layers": 27, "vision_heads": 16}
# The published text towers (the checkpoints' config.json): Gemma 2B, Gemma 2 2B / 9B / 27B.
PUBLISHED_TEXT = {
    "paligemma-3b": dict(text_family="gemma", text_hidden=2048, text_mlp=16384, text_layers=18, heads=8,
                         kv_heads=1, head_dim=256, vocab=257216),
    "paligemma2-3b": dict(text_family="gemma2", text_hidden=2304, text_mlp=9216, text_layers=26, heads=8,
                          kv_heads=4, head_dim=256, vocab=257216),
    "paligemma2-10b": dict(text_family="gemma2", text_hidden=3584, text_mlp=14336, text_layers=42, heads=16,
                           kv_heads=8, head_dim=256, vocab=257216),
    "paligemma2-28b": dict(text_family="gemma2", text_hidden=4608, text_mlp=36864, text_layers=46, heads=32,
                           kv_heads=16, head_dim=128, vocab=257216),
}  # fmt: skip


def dims_from_config(config: dict[str, Any]) -> ModelDims:
    """The shapes in a PaliGemma ``config.json`` (as a dict).

    Raises:
        ValueError: a field the plan needs is missing, named.
    """
    try:
        vision, text = config["vision_config"], config["text_config"]
        return ModelDims(
            image_size=vision["image_size"], patch=vision["patch_size"], vision_hidden=vision["hidden_size"],
            vision_mlp=vision["intermediate_size"], vision_layers=vision["num_hidden_layers"],
            vision_heads=vision["num_attention_heads"],
            text_family=text.get("model_type", "gemma"), text_hidden=text["hidden_size"],
            text_mlp=text["intermediate_size"], text_layers=text["num_hidden_layers"],
            heads=text["num_attention_heads"],
            kv_heads=text.get("num_key_value_heads") or text["num_attention_heads"],
            head_dim=text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"],
            vocab=text["vocab_size"],
        )  # fmt: skip
    except KeyError as err:
        raise ValueError(f"config.json: no field {err.args[0]!r} (not a PaliGemma config?)") from None


def model_dims(base_model: str) -> ModelDims:
    """The shapes of ``base_model`` without loading it: a preset's published shapes, a local
    folder's ``config.json``, or the tiny base's spec.

    Raises:
        ValueError: a hub id that is not a preset (its shapes would need a download).
    """
    preset = preset_for(base_model)
    if preset is not None and preset.name == "tiny":
        spec = TinyBaseSpec()
        return ModelDims(spec.image_size, spec.patch_size, spec.vision_hidden, spec.intermediate, spec.layers,
                         spec.heads, "gemma", spec.text_hidden, spec.intermediate, spec.layers, spec.heads, 1,
                         spec.text_hidden // spec.heads, spec.bpe_vocab + PALIGEMMA_EXTRA_TOKENS)  # fmt: skip
    if preset is not None:
        family = preset.name.rsplit("-pt-", 1)[0]
        return ModelDims(image_size=preset.image_size, **SIGLIP_SO400M, **PUBLISHED_TEXT[family])  # type: ignore[arg-type]
    path = Path(base_model) / "config.json"
    if path.is_file():
        return dims_from_config(json.loads(path.read_text()))
    raise ValueError(
        f"base_model: {base_model!r} is neither a preset nor a local folder with a config.json; "
        "plan with the preset name or a downloaded folder"
    )
