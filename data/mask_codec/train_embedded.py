"""Train the embedded mask codec: a small VQ-VAE in vae-oid.npz's layout, on synthetic masks.

    python -m data.mask_codec.train_embedded --out data/mask_codec/embedded.safetensors

Deterministic on CPU: fixed seeds, one thread, deterministic algorithms, data drawn from
seeded generators, so the same arguments write the same bytes (and so the same sha256, the
codec's identity). VQ-VAE training as in van den Oord et al. 2017 ("Neural Discrete
Representation Learning"): straight-through gradients, a commitment loss and an EMA codebook
(their appendix); codes left unused are restarted on latents of the batch, which keeps the
128 codes in use. The reconstruction loss is binary cross-entropy on the decoder's logit, so
``> 0`` means inside, the threshold big_vision's evaluator applies.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from data.mask_codec.synthetic_masks import synthetic_targets
from data.mask_codec.vqvae import Architecture, MaskVQVAE

EMBEDDED_ARCH = Architecture(encoder_widths=(8, 16, 32, 32), embedding_dim=16, decoder_widths=(32, 32, 16, 8))
HELD_OUT_SEED = 2**31 - 1  # training batches are drawn from (seed, step); this stream is never trained on


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the embedded codec's training run."""

    steps: int = 2000
    batch: int = 64
    lr: float = 3e-3
    warmup: int = 100
    seed: int = 0
    commitment: float = 0.25  # beta of van den Oord et al.
    ema_decay: float = 0.99
    restart_every: int = 50  # steps between dead-code restarts
    arch: Architecture = EMBEDDED_ARCH


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch, use one thread and deterministic kernels (float sums depend on the thread
    split); the caller's RNG state, thread count and determinism setting come back afterwards."""
    threads, strict = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(strict)


class EmaCodebook:
    """EMA statistics of the codebook: counts and sums of the latents assigned to each code."""

    def __init__(self, codebook: torch.Tensor, decay: float) -> None:
        self.decay = decay
        self.counts = torch.ones(codebook.shape[0])
        self.sums = codebook.detach().clone()

    @torch.no_grad()
    def update(self, codebook: torch.Tensor, flat: torch.Tensor, codes: torch.Tensor) -> None:
        onehot = F.one_hot(codes, codebook.shape[0]).to(flat.dtype)
        self.counts.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.sums.mul_(self.decay).add_(onehot.T @ flat, alpha=1 - self.decay)
        total = self.counts.sum()
        smoothed = (self.counts + 1e-5) / (total + codebook.shape[0] * 1e-5) * total  # Laplace smoothing
        codebook.copy_(self.sums / smoothed[:, None])

    @torch.no_grad()
    def restart_dead(self, codebook: torch.Tensor, flat: torch.Tensor, generator: torch.Generator) -> int:
        """Move codes whose EMA count fell below 3% of a fair share onto random batch latents."""
        dead = self.counts < 0.03 * self.counts.sum() / codebook.shape[0]
        n = int(dead.sum())
        if n:
            pick = torch.randperm(flat.shape[0], generator=generator)[:n]
            codebook[dead] = flat[pick]
            self.sums[dead] = flat[pick]
            self.counts[dead] = 1.0
        return n


def _learning_rate(step: int, config: TrainConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def train(config: TrainConfig, log_every: int = 0) -> MaskVQVAE:
    """Train a codec from scratch; the same ``config`` gives bit-identical weights."""
    with deterministic(config.seed):
        return _train(config, log_every)


def _train(config: TrainConfig, log_every: int) -> MaskVQVAE:
    model = MaskVQVAE(config.arch)
    codebook = model._vq_vae._embedding
    codebook.requires_grad_(False)  # moved by EMA, not by the optimizer
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    ema: EmaCodebook | None = None
    for step in range(config.steps):
        targets = torch.from_numpy(synthetic_targets(config.batch, seed=(config.seed, step)))
        latents = model.encode_latents(targets * 2 - 1)
        flat = latents.reshape(-1, latents.shape[-1])
        if ema is None:  # start the codebook on real latents instead of near zero
            codebook.data.copy_(flat[torch.randperm(flat.shape[0], generator=generator)[: codebook.shape[0]]])
            ema = EmaCodebook(codebook, config.ema_decay)
        codes = model.nearest_codes(latents.detach())
        quantized = codebook[codes]
        straight = latents + (quantized - latents).detach()
        logits = model.decode_latents(straight)
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        loss = loss + config.commitment * F.mse_loss(latents, quantized)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.update(codebook.data, flat.detach(), codes.reshape(-1))
        restarted = 0
        if config.restart_every and (step + 1) % config.restart_every == 0 and step < 0.9 * config.steps:
            restarted = ema.restart_dead(codebook.data, flat.detach(), generator)
        if log_every and (step % log_every == 0 or step == config.steps - 1):
            used = int((ema.counts > 0.5).sum())
            print(f"step {step:5d}  loss {loss.item():.4f}  codes used {used:3d}  restarted {restarted}", flush=True)
    codebook.requires_grad_(True)
    return model.eval()


@torch.no_grad()
def reconstruction_ious(model: MaskVQVAE, targets: np.ndarray, batch: int = 256) -> np.ndarray:
    """Per-mask IoU of ``decode(encode(t)) > 0`` against ``t > 0.5`` (two empty masks count 1.0)."""
    ious = []
    for start in range(0, len(targets), batch):
        t = torch.from_numpy(targets[start : start + batch])
        pred = model.decode_codes(model.nearest_codes(model.encode_latents(t * 2 - 1))) > 0
        truth = t > 0.5
        inter = (pred & truth).sum((1, 2)).double()
        union = (pred | truth).sum((1, 2)).double()
        ious.append(torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).numpy())
    return np.concatenate(ious)


METADATA_KEY = "mask_codec"


def save_codec(model: MaskVQVAE, path: Path, config: TrainConfig, held_out_miou: float) -> None:
    """Write the weights (vae-oid.npz's key names) with the widths and how they were made.

    The description is one JSON string under ``METADATA_KEY``: safetensors writes several
    metadata entries in no fixed order, and the file's bytes are the codec's identity.
    """
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    description = {
        **config.arch.as_metadata(),
        "layout": "big_vision vae-oid.npz",
        "seed": config.seed,
        "steps": config.steps,
        "batch": config.batch,
        "lr": config.lr,
        "held_out_miou": round(held_out_miou, 4),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(description, sort_keys=True)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="safetensors file to write")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps, help="optimizer steps")
    parser.add_argument("--batch", type=int, default=TrainConfig.batch, help="masks per step")
    parser.add_argument("--lr", type=float, default=TrainConfig.lr, help="peak Adam learning rate")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed of weights and data")
    parser.add_argument("--held-out", type=int, default=2000, help="held-out masks to measure mIoU on")
    args = parser.parse_args(argv)
    config = replace(TrainConfig(), steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed)
    started = time.perf_counter()
    model = train(config, log_every=100)
    trained_s = time.perf_counter() - started
    miou = float(reconstruction_ious(model, synthetic_targets(args.held_out, seed=HELD_OUT_SEED)).mean())
    save_codec(model, args.out, config, miou)
    size = args.out.stat().st_size
    print(f"trained in {trained_s:.0f} s; held-out mIoU {miou:.4f} on {args.held_out} masks")
    print(f"wrote {args.out} ({size} bytes)")


if __name__ == "__main__":
    main()
