"""Decide what trains: LoRA/QLoRA on the language model (plus whatever is not frozen), or the
full model (less whatever is frozen); then store each parameter in its dtype and switch on
gradient checkpointing where asked."""

from __future__ import annotations

import torch
from transformers import PaliGemmaForConditionalGeneration

from models.loading import peft_wrapping
from training.config import Method, RunConfig
from training.precision import place_parameters

PROJECTOR = "multi_modal_projector"
VISION_TOWER = "vision_tower"


def prepare_model(model: PaliGemmaForConditionalGeneration, config: RunConfig) -> tuple[torch.nn.Module, int]:
    """Wrap or freeze ``model`` as the config's method says, in the config's precision.

    Returns:
        The model to train and its number of trainable parameters.

    Raises:
        ValueError: the config freezes every parameter.
    """
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if config.method in (Method.LORA, Method.QLORA):
        from peft import LoraConfig, get_peft_model

        # QLoRA needs nothing more than LoRA here: peft's prepare_model_for_kbit_training would
        # also upcast every non-quantized frozen weight (embeddings, norms, the vision
        # tower's convolution) to fp32 and enable reentrant checkpointing.
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
        # peft freezes everything it does not adapt or save, and upcasts LoRA A/B (not the
        # saved modules: place_parameters does those) to fp32.
        with peft_wrapping():
            wrapped: torch.nn.Module = get_peft_model(model, lora)
    else:
        wrapped = model
        for name, param in model.named_parameters():
            frozen = (config.freeze_vision and VISION_TOWER in name) or (config.freeze_projector and PROJECTOR in name)
            param.requires_grad = not frozen
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    if trainable == 0:
        raise ValueError("nothing to train: the config freezes every parameter")
    place_parameters(wrapped, config.precision)
    return wrapped, trainable


def enable_gradient_checkpointing(model: PaliGemmaForConditionalGeneration) -> None:
    """Recompute every SigLIP and Gemma layer in backward (non-reentrant checkpoints).

    Non-reentrant: the reentrant variant computes no gradient for the parameters inside a
    checkpoint unless one of its inputs requires grad (a frozen base under LoRA has none
    without a hook). transformers also hooks the input embeddings to require grad, as peft
    expects. Only a model in training mode recomputes; evaluation is unaffected.
    """
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
