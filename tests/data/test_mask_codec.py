"""The mask codec: big_vision's vae-oid.npz layout loaded strictly and computed as big_vision
computes it, the embedded codec's quality, the full-size round trip and codec identity."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from safetensors import safe_open

from data.mask_codec import ENV_VAR, CodecIdentity, MaskCodec, MaskCodecError, load_codec, require_codec
from data.mask_codec.synthetic_masks import synthetic_object, synthetic_targets
from data.mask_codec.train_embedded import METADATA_KEY, TrainConfig, save_codec, train

# ---- big_vision's vae-oid.npz, written out from its readers (not from our module) ----------


def vae_oid_shapes(dim: int = 512) -> dict[str, tuple[int, ...]]:
    """Keys and shapes as big_vision's ``encode_to_codebook_indices`` and ``_get_params`` read them
    (PyTorch layouts: Conv2d (out, in, kh, kw), ConvTranspose2d (in, out, kh, kw))."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, shape: tuple[int, int, int, int]) -> None:
        shapes[f"{name}.weight"] = shape
        shapes[f"{name}.bias"] = (
            shape[1] if name in ("decoder.4", "decoder.6", "decoder.8", "decoder.10") else shape[0],
        )

    def resblock(name: str, width: int) -> None:
        conv(f"{name}.0", (width, width, 3, 3))
        conv(f"{name}.2", (width, width, 3, 3))
        conv(f"{name}.4", (width, width, 1, 1))

    for n, (cin, cout) in enumerate([(1, 16), (16, 32), (32, 64), (64, 128)]):
        conv(f"encoder.{2 * n}", (cout, cin, 4, 4))
    resblock("encoder.8.net", 128)
    resblock("encoder.9.net", 128)
    conv("encoder.10", (dim, 128, 1, 1))
    shapes["_vq_vae._embedding"] = (128, dim)
    conv("decoder.0", (128, dim, 1, 1))
    resblock("decoder.2.net", 128)
    resblock("decoder.3.net", 128)
    for name, (cin, cout) in zip(
        ("decoder.4", "decoder.6", "decoder.8", "decoder.10"), [(128, 128), (128, 64), (64, 32), (32, 16)], strict=True
    ):
        conv(name, (cin, cout, 4, 4))
    conv("decoder.12", (1, 16, 1, 1))
    return shapes


def random_checkpoint(dim: int = 512, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in vae_oid_shapes(dim).items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = 1.0 if key == "_vq_vae._embedding" else (0.05 if len(shape) == 1 else 1.5 / np.sqrt(fan_in))
        out[key] = (rng.standard_normal(shape) * scale).astype(np.float32)
    return out


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` as the checkpoint was written: one array per key, no compression."""
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stubs type **kwds as allow_pickle


@pytest.fixture(scope="module")
def checkpoint() -> dict[str, np.ndarray]:
    return random_checkpoint()


@pytest.fixture
def npz_path(tmp_path: Path, checkpoint: dict[str, np.ndarray]) -> Path:
    path = tmp_path / "vae-oid.npz"
    save_npz(path, checkpoint)
    return path


# ---- an independent numpy reference: big_vision's TF encoder and flax decoder, NHWC -----------


def _conv_nhwc(x: np.ndarray, kernel_hwio: np.ndarray, stride: int, pads: tuple[int, int]) -> np.ndarray:
    x = np.pad(x, ((0, 0), pads, pads, (0, 0)))
    kh, kw = kernel_hwio.shape[:2]
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]  # N H W C kh kw
    return np.einsum("nhwcij,ijco->nhwo", windows, kernel_hwio, optimize=True)


def _same_pads(size: int, k: int, stride: int) -> tuple[int, int]:
    total = max((-(-size // stride) - 1) * stride + k - size, 0)  # TensorFlow's "SAME"
    return total // 2, total - total // 2


def _tf_conv(ckpt: dict[str, np.ndarray], x: np.ndarray, name: str, stride: int) -> np.ndarray:
    kernel = np.transpose(ckpt[f"{name}.weight"], (2, 3, 1, 0))  # as big_vision's _conv_tf
    return _conv_nhwc(x, kernel, stride, _same_pads(x.shape[1], kernel.shape[0], stride)) + ckpt[f"{name}.bias"]


def _resblock(ckpt: dict[str, np.ndarray], x: np.ndarray, name: str) -> np.ndarray:
    y = np.maximum(_tf_conv(ckpt, x, f"{name}.0", 1), 0)
    y = np.maximum(_tf_conv(ckpt, y, f"{name}.2", 1), 0)
    return x + _tf_conv(ckpt, y, f"{name}.4", 1)


def reference_encode(ckpt: dict[str, np.ndarray], masks01: np.ndarray) -> np.ndarray:
    """``encode_to_codebook_indices``: masks in [0, 1], (N, 64, 64) -> (N, 16)."""
    x = (2.0 * (masks01 - 0.5))[..., None].astype(np.float64)
    for n in range(4):
        x = np.maximum(_tf_conv(ckpt, x, f"encoder.{2 * n}", 2), 0)
    for n in range(2):
        x = _resblock(ckpt, x, f"encoder.{8 + n}.net")
    x = _tf_conv(ckpt, x, "encoder.10", 1)
    emb = ckpt["_vq_vae._embedding"].astype(np.float64)
    flat = x.reshape(-1, emb.shape[1])
    distances = (flat**2).sum(1, keepdims=True) + (emb**2).sum(1) - 2 * flat @ emb.T
    return distances.argmin(1).reshape(-1, 16)


def _flax_conv_transpose(ckpt: dict[str, np.ndarray], x: np.ndarray, name: str) -> np.ndarray:
    """flax ``nn.ConvTranspose(kernel 4, strides 2, padding=2, transpose_kernel=True)``: lax
    dilates the input by the stride, pads it by 2, and correlates with the kernel flipped in
    space and with its channel axes swapped."""
    kernel = np.transpose(ckpt[f"{name}.weight"], (2, 3, 1, 0))  # _get_params' transp: (kh, kw, out, in)
    kernel = kernel[::-1, ::-1].swapaxes(2, 3)  # -> (kh, kw, in, out)
    n, h, w, c = x.shape
    dilated = np.zeros((n, 2 * h - 1, 2 * w - 1, c), dtype=x.dtype)
    dilated[:, ::2, ::2] = x
    return _conv_nhwc(dilated, kernel, 1, (2, 2)) + ckpt[f"{name}.bias"]


def reference_decode(ckpt: dict[str, np.ndarray], codes: np.ndarray) -> np.ndarray:
    """``get_reconstruct_masks``: (N, 16) -> (N, 64, 64)."""
    emb = ckpt["_vq_vae._embedding"].astype(np.float64)
    x = emb[codes.reshape(-1)].reshape(codes.shape[0], 4, 4, -1)
    x = np.maximum(_tf_conv(ckpt, x, "decoder.0", 1), 0)
    x = _resblock(ckpt, _resblock(ckpt, x, "decoder.2.net"), "decoder.3.net")
    for name in ("decoder.4", "decoder.6", "decoder.8", "decoder.10"):
        x = np.maximum(_flax_conv_transpose(ckpt, x, name), 0)
    return _tf_conv(ckpt, x, "decoder.12", 1)[..., 0]


# ---- (1) strict loading of the real layout -----------------------------------------------


def test_vae_oid_layout_loads_with_its_widths_and_file_identity(npz_path: Path) -> None:
    codec = load_codec(npz_path)
    assert codec.architecture.encoder_widths == (16, 32, 64, 128)
    assert codec.architecture.decoder_widths == (128, 64, 32, 16)
    assert codec.architecture.embedding_dim == 512
    assert codec.identity == CodecIdentity("vae-oid", hashlib.sha256(npz_path.read_bytes()).hexdigest())


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ("missing", "decoder.12.bias"),
        ("missing", "encoder.9.net.2.weight"),
        ("extra", "_vq_vae._ema_w"),
        ("shape", "decoder.6.weight"),
        ("shape", "encoder.8.net.0.weight"),
    ],
)
def test_a_checkpoint_off_the_layout_is_refused_naming_the_key(
    tmp_path: Path, checkpoint: dict[str, np.ndarray], change: str, key: str
) -> None:
    broken = dict(checkpoint)
    if change == "missing":
        del broken[key]
    elif change == "extra":
        broken[key] = np.zeros((128, 512), np.float32)
    else:
        broken[key] = np.zeros(broken[key].shape[:-1] + (broken[key].shape[-1] + 1,), np.float32)
    path = tmp_path / "vae-oid.npz"
    save_npz(path, broken)
    with pytest.raises(MaskCodecError, match=key.replace(".", r"\.")):
        load_codec(path)


def test_pickled_arrays_and_wrong_codebook_sizes_are_refused(tmp_path: Path, checkpoint: dict[str, np.ndarray]) -> None:
    pickled = tmp_path / "pickled.npz"
    save_npz(pickled, {**checkpoint, "decoder.12.bias": np.array([object()], dtype=object)})
    with pytest.raises(MaskCodecError, match="pickled.npz"):
        load_codec(pickled)
    small = tmp_path / "small.npz"
    save_npz(small, {**checkpoint, "_vq_vae._embedding": checkpoint["_vq_vae._embedding"][:64]})
    with pytest.raises(MaskCodecError, match="128"):
        load_codec(small)
    with pytest.raises(MaskCodecError, match="not found"):
        load_codec(tmp_path / "absent.npz")


def test_the_environment_variable_names_the_default_codec(npz_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(npz_path))
    assert load_codec().identity.name == "vae-oid"
    assert load_codec("embedded").identity.name == "embedded"
    monkeypatch.setenv(ENV_VAR, str(npz_path.with_name("gone.npz")))
    with pytest.raises(MaskCodecError, match=ENV_VAR):
        load_codec()


# ---- (2) the torch codec computes what big_vision computes --------------------------------


def test_torch_codec_matches_big_vision_encoder_and_decoder(npz_path: Path, checkpoint: dict[str, np.ndarray]) -> None:
    codec = load_codec(npz_path)
    masks = synthetic_targets(4, seed=3)
    codes = codec.encode(masks * 2 - 1)
    assert codes.shape == (4, 16) and codes.dtype == np.int64
    np.testing.assert_array_equal(codes, reference_encode(checkpoint, masks))
    random_codes = np.random.default_rng(1).integers(0, 128, (3, 16))
    decoded = codec.decode(random_codes)
    reference = reference_decode(checkpoint, random_codes)
    assert decoded.shape == (3, 64, 64)
    np.testing.assert_allclose(decoded, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
    np.testing.assert_array_equal(codec.decode(random_codes), decoded)  # deterministic
    np.testing.assert_array_equal(codec.encode(masks * 2 - 1), codes)


def test_bad_inputs_are_refused(npz_path: Path) -> None:
    codec = load_codec(npz_path)
    with pytest.raises(ValueError, match="64, 64"):
        codec.encode(np.zeros((2, 32, 32)))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        codec.encode(np.full((1, 64, 64), 255.0))
    with pytest.raises(ValueError, match="0..127"):
        codec.decode([[128] * 16])
    with pytest.raises(ValueError, match="16"):
        codec.decode([[0] * 15])


# ---- (3)-(6) the embedded codec ------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded() -> MaskCodec:
    return load_codec(None)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_embedded_codec_reconstructs_held_out_masks(embedded: MaskCodec) -> None:
    targets = synthetic_targets(200, seed=20261201)  # a stream neither training nor the script's check used
    decoded = embedded.decode(embedded.encode(targets * 2 - 1))
    ious = [_iou(d > 0, t > 0.5) for d, t in zip(decoded, targets, strict=True)]
    assert np.mean(ious) >= 0.9


def test_full_size_round_trip_through_the_box(embedded: MaskCodec) -> None:
    rng = np.random.default_rng(99)
    ious = []
    for _ in range(40):
        mask, box = synthetic_object(rng)
        codes = embedded.mask_to_codes(mask, box)
        assert len(codes) == 16 and all(0 <= c < 128 for c in codes)
        back = embedded.codes_to_mask(codes, box, (mask.shape[1], mask.shape[0]))
        x0, y0, x1, y1 = box
        outside = back.copy()
        outside[y0:y1, x0:x1] = False
        assert back.shape == mask.shape and not outside.any()
        ious.append(_iou(back, mask))
    assert np.mean(ious) >= 0.85


def test_a_rectangle_in_a_loose_float_box(embedded: MaskCodec) -> None:
    mask = np.zeros((120, 200), dtype=bool)
    mask[30:90, 50:150] = True
    box = (40.4, 24.6, 160.2, 96.0)
    back = embedded.codes_to_mask(embedded.mask_to_codes(mask, box), box, (200, 120))
    assert _iou(back, mask) >= 0.9
    with pytest.raises(ValueError, match="empty or inverted"):
        embedded.mask_to_codes(mask, (50, 30, 50, 90))


def test_a_dataset_encoded_by_another_codec_is_refused(embedded: MaskCodec, npz_path: Path) -> None:
    require_codec(embedded.identity, embedded)
    require_codec(embedded.identity.as_dict(), embedded)
    real = load_codec(npz_path)
    with pytest.raises(MaskCodecError, match=r"encoded with mask codec 'vae-oid'.*loaded codec is 'embedded'"):
        require_codec(real.identity.as_dict(), embedded, what="dataset abc123")
    with pytest.raises(MaskCodecError, match="sha256"):
        require_codec({"name": "vae-oid"}, embedded)


def test_embedded_weights_are_small_and_describe_themselves(embedded: MaskCodec) -> None:
    resource = files("data.mask_codec") / "embedded.safetensors"
    data = resource.read_bytes()
    assert len(data) < 1_000_000
    assert embedded.identity.sha256 == hashlib.sha256(data).hexdigest()
    with safe_open(str(resource), framework="np") as f:
        metadata = json.loads(f.metadata()[METADATA_KEY])
    assert metadata["layout"] == "big_vision vae-oid.npz"
    assert metadata["held_out_miou"] >= 0.9
    assert metadata["encoder_widths"] == ",".join(map(str, embedded.architecture.encoder_widths))


# ---- (7) the training script is deterministic ----------------------------------------------


def test_training_is_deterministic(tmp_path: Path) -> None:
    config = replace(TrainConfig(), steps=4, batch=8, restart_every=2, warmup=2)
    threads = torch.get_num_threads()
    first, second = train(config), train(config)
    for key, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value, rtol=0, atol=0)
    save_codec(first, tmp_path / "a.safetensors", config, 0.5)
    save_codec(second, tmp_path / "b.safetensors", config, 0.5)
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    other = train(replace(config, seed=1))
    assert not torch.equal(other.state_dict()["decoder.12.weight"], first.state_dict()["decoder.12.weight"])
    assert torch.get_num_threads() == threads  # training leaves the process's settings alone
