"""Decide what trains: LoRA on the language model (plus the projector), or the full model."""

from __future__ import annotations

import torch
from transformers import PaliGemmaForConditionalGeneration

from training.config import Method, RunConfig

PROJECTOR = "multi_modal_projector"
VISION_TOWER = "vision_tower"


def prepare_model(model: PaliGemmaForConditionalGeneration, config: RunConfig) -> tuple[torch.nn.Module, int]:
    """Wrap or freeze ``model`` as the config's method says.

    Returns:
        The model to train and its number of trainable parameters.
    """
    if config.method is Method.LORA:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora.rank,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=config.lora.target_modules,
            modules_to_save=[PROJECTOR] if config.train_projector else None,
        )
        # peft freezes everything it does not adapt or save, the vision tower included.
        wrapped: torch.nn.Module = get_peft_model(model, lora)
    else:
        wrapped = model
        for name, param in model.named_parameters():
            param.requires_grad = not (config.freeze_vision and VISION_TOWER in name)
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    if trainable == 0:
        raise ValueError("nothing to train: the config freezes every parameter")
    return wrapped, trainable
