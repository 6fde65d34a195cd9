"""The training loss: cross-entropy over supervised answer tokens only, summed, weighted by tokens.

Two things differ from ``model(**batch).loss``:

- **Logits of supervised positions only.** PaliGemma's labels cover the suffix (the answer
  and ``<eos>``); the prompt and the 256-4,096 image tokens are never scored. The full
  computation still projects every position onto the 257k-token vocabulary, softcaps it
  and upcasts it for log-softmax: about 6 bytes per (batch x sequence x vocab) kept for
  backward, ~29 GiB at 448 px and batch 8. Here the backbone's hidden states are sliced to
  the positions whose next token is supervised before ``lm_head`` (transformers'
  ``logits_to_keep`` with a boolean mask), so the model's own head and final-logit
  softcapping (Gemma 2: ``tanh(logits / cap) * cap``) apply to those rows alone. That is
  what big_vision computes, too.
- **A sum, not a mean.** Each micro-batch returns the sum of its token losses and its token
  count; the loop divides by the supervised tokens of the whole optimizer step, over every
  micro-batch and rank (as torchtune does). A mean per micro-batch would weight a token of a
  short-answer micro-batch more than one of a long-answer micro-batch, so accumulated
  gradients would differ from those of the one large batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # the processor's label for positions outside the suffix


def supervised_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the logits that are scored sit, and the tokens they are scored against.

    Position ``t`` predicts token ``t + 1``, so a position is kept when the label after it is
    supervised.

    Returns:
        A boolean ``(batch, seq)`` mask of kept positions and the ``(kept,)`` target ids, both
        in row-major order (the order in which ``hidden_states[mask]`` returns rows).
    """
    following = labels[:, 1:]
    supervised = following != IGNORE_INDEX
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = supervised
    return keep, following[supervised]


def supervised_token_count(batch: dict[str, Any]) -> int:
    """The number of tokens ``batch`` is scored on."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def token_loss_sum(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """The summed cross-entropy of ``batch``'s supervised tokens, and how many there are.

    ``model`` is a PaliGemma for conditional generation, possibly wrapped by peft, DDP or
    Accelerate (whose autocast then applies): each passes ``logits_to_keep`` through. The
    log-softmax runs in fp32 whatever the compute dtype.
    """
    keep, targets = supervised_positions(batch["labels"])
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    # use_cache=False: a training forward has no use for a key/value cache of every layer.
    logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits
    loss_sum = F.cross_entropy(logits.float(), targets, reduction="sum")
    return loss_sum, int(targets.numel())
