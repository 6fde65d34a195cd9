"""Peak training memory of a run, estimated from its config and the model's shapes alone.

``plan_memory(config, dims, gpu_gib)`` is a pure function: no weight is loaded and no device
is touched, so ``palitune train --plan`` answers before a 28B download starts. The shapes
come from ``training.model_shapes.model_dims``: the published architecture for a preset,
``config.json`` for a local folder.

What one training step holds at its peak (the counts follow what transformers' PaliGemma,
SigLIP and Gemma/Gemma 2 save for backward, read per operation and checked against saved-tensor
hooks and the allocator's peak at small shapes on a CPU, see ``tests/training/test_memory_plan.py``):

- **weights**: frozen parameters in the stored dtype of ``training.precision`` (nf4 plus its
  scales for qlora's linear layers), trainable ones in fp32 (bf16 for bf16-pure); peft's
  ``modules_to_save`` (the projector, a trained vision tower under LoRA) are a trained copy
  beside the frozen original.
- **gradients**: one per trainable parameter, all of them (they build up through backward
  while activations are still held, and stay across micro-batches under accumulation).
- **optimizer**: AdamW's two moments per trainable parameter (8-bit for ``adamw_8bit``).
- **activations**: per layer of each tower that backward goes through, the tensors saved
  for backward (layer inputs only under gradient checkpointing, plus one layer recomputed),
  autocast's compute-dtype copies of trained weights, and the gradients in flight when
  backward starts. A frozen vision tower saves nothing: cached (``feature_cache``) it does not
  run at all, uncached its forward's temporaries are gone before the text tower's activations
  exist, so the peak is the same either way; a tower that trains is never cached.
- **logits**: only the supervised (answer) positions are projected onto the vocabulary
  (``training.loss``); kept for backward: Gemma 2's softcap tanh output and the fp32
  log-softmax (their gradients, made at the start of backward, are counted as in flight).

Not counted: the CUDA context and kernels' workspaces, and allocator fragmentation; a GPU's
budget is taken as ``USABLE_FRACTION`` of its memory less ``CONTEXT_GIB``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from data.tasks import TASKS
from models.loading import AttnImplementation
from training.config import Method, Precision, RunConfig
from training.model_shapes import LORA_SITES, ModelDims

GIB = 2**30
CONTEXT_GIB = 1.0  # CUDA context, cuBLAS/cuDNN workspaces
USABLE_FRACTION = 0.92  # the caching allocator's fragmentation
PROMPT_TOKENS = 32  # <bos>, the task prefix and "\n": a question of about 25 words
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit codes, 8-bit absmax per 64, fp32 scale per 256 absmax
# Well-known GPUs by the memory they report (GiB), smallest first: what a config "fits".
GPUS = ((22.5, "24 GB (L4, A10, RTX 4090)"), (39.6, "40 GB (A100 40GB)"), (45.0, "48 GB (L40S, A6000)"),
        (79.6, "80 GB (A100 80GB, H100)"), (140.4, "141 GB (H200)"), (179.0, "192 GB (B200)"))  # fmt: skip


@dataclass(frozen=True)
class Breakdown:
    """Bytes of one training step by what holds them, and its peak.

    ``gradients`` is every gradient; ``activations`` what backward keeps (``saved_activations``,
    what autograd saves) plus what it recomputes and has in flight; ``logits`` the saved
    logits of the supervised rows. ``total`` is their sum when gradients stay across
    micro-batches (``grad_accumulation`` > 1); with one micro-batch, backward frees each
    layer's activations as it writes that layer's gradients, so the peak holds the larger of
    the two, or is the optimizer step's (fused AdamW reads the gradients, no temporary of their size).
    """

    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    saved_activations: float
    total: float


@dataclass(frozen=True)
class Switch:
    """A change to the config and the peak it gives."""

    change: str
    total_gib: float
    max_batch: int


@dataclass(frozen=True)
class MemoryPlan:
    """What ``palitune train --plan`` prints."""

    batch_size: int
    seq_len: int
    supervised_tokens: int  # per example
    breakdown: Breakdown
    gpu_gib: float
    budget_gib: float
    max_batch: int  # 0: not even batch 1
    switches: tuple[Switch, ...]  # each alone; only when the config does not fit

    @property
    def total_gib(self) -> float:
        return self.breakdown.total / GIB

    @property
    def fits(self) -> bool:
        return self.total_gib <= self.budget_gib


def _bytes(precision: Precision) -> int:
    return 4 if precision is Precision.FP32 else 2


def _trains(config: RunConfig) -> tuple[bool, bool, bool]:
    """Whether the vision tower, the projector and the text tower's own weights train."""
    full = config.method is Method.FULL
    return not config.freeze_vision, not config.freeze_projector, full


def parameter_bytes(config: RunConfig, dims: ModelDims) -> tuple[float, int]:
    """Bytes of all weights and the number of trainable parameters."""
    vision, projector, _ = _trains(config)
    compute = 2 if config.method is Method.QLORA else _bytes(config.precision)  # qlora loads bf16 whatever is asked
    trained_bytes = 2 if config.precision is Precision.BF16_PURE else 4
    trained = vision * dims.vision_params + projector * dims.projector_params
    if config.method is Method.FULL:
        trained += dims.text_params
        return trained * trained_bytes + (dims.params - trained) * compute, trained
    frozen: float = dims.params * compute  # peft keeps every original module, saved ones beside their trained copy
    if config.method is Method.QLORA:
        frozen -= dims.linear_params * (compute - NF4_BYTES)
    lora = dims.lora_params(config.lora)
    return frozen + (trained + lora) * trained_bytes, trained + lora


def _text_layer(config: RunConfig, dims: ModelDims, tokens: int, batch: int, seq: int) -> float:
    """Bytes one Gemma layer saves for backward (read per op; see the module docstring)."""
    a, d, q, m = _bytes(config.precision), dims.text_hidden, dims.heads * dims.head_dim, dims.text_mlp
    norms = 4 if dims.text_family == "gemma2" else 2
    full = config.method is Method.FULL
    # RMSNorm upcasts its input to fp32 (and keeps its output when its weight trains); linear inputs
    # and autocast's casts of them; the MLP's gate, activation, up and product; q, k, v, attention out.
    per_token = norms * (1 + full) * d * 4 + (2 if a == 4 else 5) * d * a + 4 * m * a + 4 * q * a
    if not full:
        per_token += _lora_sites(config) * config.lora.rank * a  # each adapter's rank-r intermediate
    eager = dims.text_family == "gemma2" or config.attn_implementation is AttnImplementation.EAGER
    if config.attn_implementation is AttnImplementation.FLEX_ATTENTION:
        eager = False
    scores = batch * dims.heads * seq * seq * 8 if eager else 0  # softcapped scores, fp32 softmax (+ its cast)
    return tokens * per_token + scores


def _lora_sites(config: RunConfig) -> int:
    return sum(site in config.lora.target_modules for site in LORA_SITES)


def _vision_layer(config: RunConfig, dims: ModelDims, batch: int) -> float:
    """Bytes one trained SigLIP layer saves: layer-norm inputs (fp32 residual), q, k, v, out, MLP."""
    a, d, m = _bytes(config.precision), dims.vision_hidden, dims.vision_mlp
    residual = 2 if config.precision is Precision.BF16_PURE else 4
    per_token = 2 * d * residual + 8 * d * a - (2 * d * a if residual == a else 0) + 2 * m * a
    scores = batch * dims.vision_heads * dims.image_tokens**2 * (4 if a == 4 else 6)
    eager = config.attn_implementation is AttnImplementation.EAGER
    return batch * dims.image_tokens * per_token + (scores if eager else 0)


def estimate(config: RunConfig, dims: ModelDims, batch: int, seq: int, supervised: int) -> Breakdown:
    """The memory of one step of ``config`` at ``batch`` examples of ``seq`` tokens, ``supervised`` scored."""
    weights, trainable = parameter_bytes(config, dims)
    trained_bytes = 2 if config.precision is Precision.BF16_PURE else 4
    a = _bytes(config.precision)
    vision, projector, _ = _trains(config)
    tokens, rows = batch * seq, batch * supervised
    layer = _text_layer(config, dims, tokens, batch, seq)
    # Around the layers: the merged input embeddings, the final norm (fp32) and the kept rows.
    saved: float = 2 * tokens * dims.text_hidden * a + tokens * dims.text_hidden * 4
    recomputed: float = 0.0
    if config.gradient_checkpointing:  # each layer's input is kept, one layer's activations rebuilt at a time
        recomputed = dims.text_layers * tokens * dims.text_hidden * a + layer
    else:
        saved += dims.text_layers * layer
    if vision:
        vision_layer = _vision_layer(config, dims, batch)
        if config.gradient_checkpointing:
            recomputed += dims.vision_layers * batch * dims.image_tokens * dims.vision_hidden * 4 + vision_layer
        else:
            saved += dims.vision_layers * vision_layer
    if projector or vision:  # the projector's input and its output merged into the text
        saved += batch * dims.image_tokens * (dims.vision_hidden + dims.text_hidden) * a
    if a == 2 and trained_bytes == 4:  # autocast keeps a compute-dtype copy of each trained weight it multiplies
        saved += trainable * 2
    # Gradients in flight at the start of backward: the fp32 log-softmax's and the residual stream's.
    in_flight = 2 * rows * dims.vocab * 4 + 4 * tokens * dims.text_hidden * 4
    activations = saved + recomputed + in_flight
    softcap = dims.text_family == "gemma2"  # Gemma 2's final-logit softcapping keeps its tanh output
    logits = rows * dims.vocab * (4 + (a if softcap else 0))  # and the fp32 log-softmax
    gradients = trainable * trained_bytes
    optimizer = optimizer_bytes(config, trainable)
    if config.grad_accumulation > 1:
        peak = weights + optimizer + gradients + activations + logits
    else:  # the fused AdamW step adds no full-size temporary to the gradients it reads
        peak = weights + optimizer + max(activations + logits + _first_gradients(config, dims), gradients)
    return Breakdown(weights, gradients, optimizer, activations, logits, saved, peak)


def optimizer_bytes(config: RunConfig, trainable: int) -> float:
    """AdamW's two moments per trainable parameter: in the trainable dtype, or 8-bit with an fp32
    scale per block of 256 for bitsandbytes' 8-bit AdamW."""
    if str(getattr(config, "optimizer", "adamw")) == "adamw_8bit":
        return trainable * 2 * (1 + 4 / 256)
    return trainable * 2 * (2 if config.precision is Precision.BF16_PURE else 4)


def _first_gradients(config: RunConfig, dims: ModelDims) -> float:
    """Gradients written before the first activation is freed: the tied embeddings' in a full fine-tune."""
    if config.method is not Method.FULL:
        return 0.0
    return dims.vocab * dims.text_hidden * (2 if config.precision is Precision.BF16_PURE else 4)


def budget_gib(gpu_gib: float) -> float:
    """What a GPU reporting ``gpu_gib`` leaves for tensors."""
    return max(gpu_gib - CONTEXT_GIB, 0.0) * USABLE_FRACTION


def sequence_shape(
    config: RunConfig, dims: ModelDims, prompt_tokens: int | None, answer_tokens: int | None
) -> tuple[int, int]:
    """The padded sequence length and the supervised tokens per example: image tokens, prompt,
    answer; the answer defaults to the task's generation budget (a bound on its suffix)."""
    answer = answer_tokens if answer_tokens is not None else TASKS[config.task].max_new_tokens
    prompt = prompt_tokens if prompt_tokens is not None else PROMPT_TOKENS
    return dims.image_tokens + prompt + answer, answer


def largest_batch(config: RunConfig, dims: ModelDims, seq: int, supervised: int, budget: float, cap: int = 4096) -> int:
    """The largest micro-batch whose estimate fits ``budget`` GiB (0 if none)."""
    if estimate(config, dims, 1, seq, supervised).total / GIB > budget:
        return 0
    low, high = 1, cap
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (
            (mid, high) if estimate(config, dims, mid, seq, supervised).total / GIB <= budget else (low, mid - 1)
        )
    return low


def _switches(config: RunConfig) -> list[tuple[str, dict[str, Any], bool]]:
    """Single changes that lower memory: the change, its fields, and whether it keeps what trains."""
    out: list[tuple[str, dict[str, Any], bool]] = []
    if config.precision is Precision.FP32:
        out.append(("precision: bf16", {"precision": Precision.BF16}, True))
    if not config.gradient_checkpointing:
        out.append(("gradient_checkpointing: true", {"gradient_checkpointing": True}, True))
    if config.method is Method.LORA:
        out.append(("method: qlora", {"method": Method.QLORA, "precision": Precision.BF16}, False))
    if config.method is Method.FULL and config.precision is Precision.BF16:
        out.append(("precision: bf16-pure", {"precision": Precision.BF16_PURE}, True))
    if config.method is Method.FULL and str(getattr(config, "optimizer", "adamw_8bit")) == "adamw":
        out.append(("optimizer: adamw_8bit", {"optimizer": "adamw_8bit"}, True))
    if not config.freeze_vision:
        out.append(("freeze_vision: true", {"freeze_vision": True}, False))
    if config.method is Method.FULL:
        out.append(("method: lora", {"method": Method.LORA}, False))
    return out


def plan_memory(
    config: RunConfig,
    dims: ModelDims,
    gpu_gib: float,
    *,
    prompt_tokens: int | None = None,
    answer_tokens: int | None = None,
) -> MemoryPlan:
    """The memory plan of ``config`` on a GPU reporting ``gpu_gib`` GiB; pure, nothing loads."""
    seq, supervised = sequence_shape(config, dims, prompt_tokens, answer_tokens)
    budget = budget_gib(gpu_gib)
    breakdown = estimate(config, dims, config.batch_size, seq, supervised)
    max_batch = largest_batch(config, dims, seq, supervised, budget)
    switches: list[Switch] = []
    if breakdown.total / GIB > budget:
        if max_batch:
            accumulation = -(-config.batch_size * config.grad_accumulation // max_batch)  # the same global batch
            smaller = config.model_copy(update={"batch_size": max_batch, "grad_accumulation": accumulation})
            total = estimate(smaller, dims, max_batch, seq, supervised).total / GIB
            switches.append(Switch(f"batch_size: {max_batch}, grad_accumulation: {accumulation}", total, max_batch))
        candidates = _switches(config)
        keeping = [(change, fields) for change, fields, keeps in candidates if keeps]
        if len(keeping) > 1:  # the changes that keep what trains, all at once
            together = {key: value for _, fields in keeping for key, value in fields.items()}
            candidates.append((", ".join(change for change, _ in keeping), together, True))
        for change, fields, _ in candidates:
            changed = config.model_copy(update=fields)
            total = estimate(changed, dims, config.batch_size, seq, supervised).total / GIB
            switches.append(Switch(change, total, largest_batch(changed, dims, seq, supervised, budget)))
    return MemoryPlan(config.batch_size, seq, supervised, breakdown, gpu_gib, budget, max_batch, tuple(switches))


def smallest_gpu(plan: MemoryPlan) -> str | None:
    """The smallest well-known GPU whose budget holds ``plan``'s peak, or ``None``."""
    return next((name for gib, name in GPUS if plan.total_gib <= budget_gib(gib)), None)
