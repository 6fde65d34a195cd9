"""Build a tiny, randomly initialised PaliGemma with a locally trained tokenizer.

The tiny base is palitune's embedded default: it needs no download, builds in seconds on a
CPU, and is written in the same on-disk layout as a hub checkpoint, so everything
downstream loads it with ``PaliGemmaForConditionalGeneration.from_pretrained(dir)`` and
``AutoProcessor.from_pretrained(dir)`` exactly as it would load
``google/paligemma2-3b-pt-448``.

Same seed, same arguments -> the same vocabulary and the same weights, byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import (
    GemmaConfig,
    GemmaTokenizer,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    SiglipVisionConfig,
)
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

from data.atomic import staged_dir

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]  # ids 0..4, Gemma's order
BYTE_TOKENS = [f"<0x{i:02X}>" for i in range(256)]  # byte fallback: any text encodes
PALIGEMMA_EXTRA_TOKENS = 1 + 1024 + 128  # <image>, <locNNNN>, <segNNN> added by the processor
BUILD_INFO_FILE = "palitune_base.json"

# Words the synthetic tasks and common prompts use; the tokenizer learns merges over them.
_CORPUS_WORDS = """
answer caption detect ocr extract segment en what which how many much is are the a an of
in on at to and or colour color shape circle square triangle star rectangle ellipse
red green blue yellow orange purple pink brown black white grey gray cyan magenta
one two three four five six seven eight nine ten zero yes no left right top bottom
center centre middle small large big tiny image picture photo chart bar line value
total date name price amount number text word there this that it has have with
question receipt form invoice field key document page table row column year month
""".split()


@dataclass(frozen=True)
class TinyBaseSpec:
    """The architecture of the tiny base. Defaults train a VQA task in about a minute."""

    seed: int = 0
    image_size: int = 64
    patch_size: int = 16
    vision_hidden: int = 64
    text_hidden: int = 64
    intermediate: int = 128
    layers: int = 2
    heads: int = 4
    bpe_vocab: int = 600

    @property
    def image_seq_length(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def _corpus() -> list[str]:
    """A deterministic corpus: every word alone, in pairs, and the digits."""
    lines = list(_CORPUS_WORDS)
    lines += [f"{a} {b}" for a in _CORPUS_WORDS[:40] for b in _CORPUS_WORDS[40:80]]
    lines += [str(n) for n in range(1000)]
    lines += [f"{n}.{m:02d}" for n in range(0, 100, 7) for m in range(0, 100, 25)]
    return lines


def train_tokenizer(spec: TinyBaseSpec) -> GemmaTokenizer:
    """Train a byte-fallback BPE on the built-in corpus and wrap it as a GemmaTokenizer."""
    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    # Same surface form as Gemma: spaces become "▁" and stay attached to the next word.
    bpe.normalizer = normalizers.Replace(" ", "▁")
    bpe.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(
        vocab_size=spec.bpe_vocab,
        special_tokens=SPECIAL_TOKENS + BYTE_TOKENS,
        show_progress=False,
    )
    corpus = _corpus()
    bpe.train_from_iterator([" " + line for line in corpus] + corpus, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    # tokenizers wants (left, right) pairs here, whatever the hint says
    return GemmaTokenizer(vocab=state["vocab"], merges=merges)  # type: ignore[arg-type]


def build_processor(spec: TinyBaseSpec) -> PaliGemmaProcessor:
    """The processor: SigLIP image preprocessing at the model's size plus the tokenizer."""
    image_processor = SiglipImageProcessorPil(
        size={"height": spec.image_size, "width": spec.image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    # PaliGemmaProcessor reads this to expand <image>; it is None unless set.
    image_processor.image_seq_length = spec.image_seq_length  # type: ignore[attr-defined]
    return PaliGemmaProcessor(image_processor=image_processor, tokenizer=train_tokenizer(spec))


def build_model(spec: TinyBaseSpec, processor: PaliGemmaProcessor) -> PaliGemmaForConditionalGeneration:
    """A randomly initialised PaliGemma whose shapes match ``processor``."""
    tokenizer = processor.tokenizer
    vision = SiglipVisionConfig(
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        hidden_size=spec.vision_hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        vision_use_head=False,
    )
    text = GemmaConfig(
        vocab_size=len(tokenizer),  # must cover <image>, <loc> and <seg> tokens
        hidden_size=spec.text_hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=1,
        head_dim=spec.text_hidden // spec.heads,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        # A random stand-in for pretrained weights. Gemma ties the output head to the input
        # embeddings, so with the usual 0.02 init no output can be confident and LoRA on a
        # frozen base cannot learn; 1/sqrt(hidden) gives peaked logits and layers whose
        # outputs are of the residual stream's size, as in a trained model.
        initializer_range=spec.text_hidden**-0.5,
    )
    config = PaliGemmaConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_index=processor.image_token_id,
        projection_dim=spec.text_hidden,  # must equal the text hidden size
    )
    with torch.random.fork_rng():  # seeded weights without touching the caller's RNG
        torch.manual_seed(spec.seed)
        model = PaliGemmaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval()


def build_tiny_base(out_dir: Path, spec: TinyBaseSpec | None = None) -> Path:
    """Write the tiny base (model, processor, tokenizer) to ``out_dir``.

    The folder is written next to its destination and moved into place, so a crash never
    leaves a half-written base behind. An existing folder is replaced.

    Returns:
        ``out_dir``, ready for ``from_pretrained``.
    """
    spec = spec or TinyBaseSpec()
    out_dir = Path(out_dir)
    processor = build_processor(spec)
    model = build_model(spec, processor)
    with staged_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        (tmp / BUILD_INFO_FILE).write_text(json.dumps(asdict(spec), indent=2, sort_keys=True) + "\n")
    return out_dir


def tiny_base_is_current(path: Path, spec: TinyBaseSpec | None = None) -> bool:
    """True when ``path`` holds a tiny base built from ``spec``."""
    info = Path(path) / BUILD_INFO_FILE
    if not info.is_file():
        return False
    return json.loads(info.read_text()) == asdict(spec or TinyBaseSpec())
