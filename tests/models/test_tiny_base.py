from pathlib import Path

from transformers import AutoProcessor, PaliGemmaForConditionalGeneration, PaliGemmaProcessor

from models.tiny_base import TinyBaseSpec, build_tiny_base


def test_reloads_through_the_same_path_as_a_hub_checkpoint(tiny_base: Path) -> None:
    model = PaliGemmaForConditionalGeneration.from_pretrained(tiny_base)
    processor = AutoProcessor.from_pretrained(tiny_base)
    assert isinstance(processor, PaliGemmaProcessor)
    vocab = processor.tokenizer.get_vocab()
    assert "<image>" in vocab
    assert all(f"<loc{i:04d}>" in vocab for i in range(1024))
    assert all(f"<seg{i:03d}>" in vocab for i in range(128))
    assert model.config.image_token_index == vocab["<image>"]
    assert model.config.text_config.vocab_size >= len(processor.tokenizer)
    assert processor.image_seq_length == (model.config.vision_config.image_size // 16) ** 2
    assert (tiny_base / "model.safetensors").is_file()
    assert not list(tiny_base.glob("*.bin")), "weights must be safetensors only"


def test_same_seed_same_bytes_other_seed_other_weights(tiny_base: Path, tmp_path: Path) -> None:
    again = build_tiny_base(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_base / name).read_bytes(), name
    other = build_tiny_base(tmp_path / "other", TinyBaseSpec(seed=1))
    assert (other / "tokenizer.json").read_bytes() == (tiny_base / "tokenizer.json").read_bytes()
    assert (other / "model.safetensors").read_bytes() != (tiny_base / "model.safetensors").read_bytes()


def test_a_failed_build_keeps_the_previous_base(tiny_base: Path, tmp_path: Path, monkeypatch) -> None:
    target = build_tiny_base(tmp_path / "base")
    before = (target / "model.safetensors").read_bytes()

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(PaliGemmaProcessor, "save_pretrained", broken_save)
    try:
        build_tiny_base(target, TinyBaseSpec(seed=3))
    except OSError:
        pass
    assert (target / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"], "no staging folder left behind"
