"""Decide what trains: LoRA/QLoRA on the language model (plus whatever is not frozen), or the
full model (less whatever is frozen)."""

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
    if config.method in (Method.LORA, Method.QLORA):
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if config.method is Method.QLORA:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
        # Trained fully beside the adapter: the projector unless frozen, the vision tower if not frozen.
        saved = [
            name
            for name, frozen in ((PROJECTOR, config.freeze_projector), (VISION_TOWER, config.freeze_vision))
            if not frozen
        ]
        lora = LoraConfig(
            r=config.lora.rank,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=config.lora.target_modules,
            modules_to_save=saved or None,
        )
        # peft freezes everything it does not adapt or save.
        wrapped: torch.nn.Module = get_peft_model(model, lora)
    else:
        wrapped = model
        for name, param in model.named_parameters():
            frozen = (config.freeze_vision and VISION_TOWER in name) or (config.freeze_projector and PROJECTOR in name)
            param.requires_grad = not frozen
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    if trainable == 0:
        raise ValueError("nothing to train: the config freezes every parameter")
    return wrapped, trainable
