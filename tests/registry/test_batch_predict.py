"""Batch prediction: ``palitune predict`` over a folder or a JSONL, from ``models:/...@champion``
in a real SQLite MLflow store, gives each image the answer a one-image prediction gives, in
input order; bad inputs are refused before any model loads, and an interrupted run keeps the
batches it finished."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from models.loading import load_base
from palitune.cli import main
from registry.models import CHAMPION, register_adapter
from registry.serving import answer_in_batches, load_registered
from registry.tracking import client_for, open_run

NAME = "palitune-vqa"
URI = f"models:/{NAME}@{CHAMPION}"
BUDGET = 6
COLOURS = [(220, 30, 30), (30, 30, 220), (30, 200, 30), (240, 240, 20), (10, 10, 10), (250, 250, 250), (200, 30, 130)]


@dataclass(frozen=True)
class Store:
    tracking_uri: str
    root: Path
    adapter: Path
    base: Path


def noisy_adapter(base: Path, out: Path) -> Path:
    """A LoRA adapter folder for ``base`` whose weights are seeded noise (std 0.3), so that
    the tiny model's answers differ from image to image and prompt to prompt (the untrained
    base answers nearly everything with nothing): a test of order and equality that can fail."""
    import torch
    from peft import LoraConfig, get_peft_model

    model, processor = load_base(str(base))
    lora = get_peft_model(
        model, LoraConfig(r=4, target_modules=r".*language_model.*\.(q_proj|v_proj|o_proj|down_proj)")
    )
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, weight in lora.named_parameters():
            if "lora_" in name:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.3)
    lora.save_pretrained(str(out))
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def store(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A tiny-base adapter registered in a SQLite store, holding ``champion``."""
    root = tmp_path_factory.mktemp("batch-predict")
    adapter = noisy_adapter(tiny_base, root / "adapter")
    uri = f"sqlite:///{root}/mlflow.db"
    client = client_for(uri)
    run_id = open_run(client, "palitune", root / "artifacts", run_name="batch-predict", tags={})
    version = register_adapter(
        client,
        run_id,
        adapter,
        NAME,
        {"palitune.base_model": "tiny"},
        max_new_tokens=BUDGET,
        models_dir=tiny_base.parent,
    )
    client.set_registered_model_alias(NAME, CHAMPION, version.version)
    return Store(uri, root, adapter, tiny_base)


@pytest.fixture
def cli_env(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.tracking_uri)
    monkeypatch.setenv("PALITUNE_HOME", str(tmp_path / "ws"))
    return tmp_path


def _images(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        paths.append(folder / f"img{i:02d}.png")
        Image.new("RGB", (64, 64), COLOURS[i % len(COLOURS)]).save(paths[-1])
    return paths


def _singles(store: Store, images: list[str], prompts: list[str]) -> list[dict[str, object]]:
    """Each image answered on its own, through the same registered model."""
    predictor = load_registered(store.tracking_uri, URI)
    return [predictor.answers([image], [prompt])[0] for image, prompt in zip(images, prompts, strict=True)]


def _read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_folder_and_a_jsonl_give_the_single_image_answers_in_order(
    store: Store, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _images(cli_env / "pictures", 7)
    prompt = "answer en what colour is the box?"
    out = cli_env / "out" / "folder.jsonl"
    code = main(["predict", "--model", URI, "--images", str(cli_env / "pictures"), "--prompt", prompt])
    assert code == 0
    assert main(["predict", "--model", URI, "--images", str(cli_env / "pictures"), "--prompt", prompt,
                 "--batch-size", "3", "--out", str(out)]) == 0  # fmt: skip
    rows = _read(out)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == rows, "without --out the same lines go to stdout, whatever the batch size"
    singles = _singles(store, [str(p) for p in images], [prompt] * len(images))
    assert [row["image"] for row in rows] == [str(p) for p in images], "by name, every image once"
    assert [row["prompt"] for row in rows] == [prompt] * len(images)
    assert [{"text": row["text"]} for row in rows] == singles
    assert len({row["text"] for row in rows}) >= 5, "answers that tell the images apart"

    # A JSONL in another order, prompts of different lengths (left padding in one batch),
    # paths relative to the JSONL's folder.
    order = [4, 0, 6, 2, 5, 1, 3]
    prompts = [f"answer en {'which ' * (i % 3)}colour?" for i in order]
    listing = cli_env / "pictures" / "pairs.jsonl"
    lines = [json.dumps({"image": images[i].name, "prompt": q}) for i, q in zip(order, prompts, strict=True)]
    listing.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")  # a blank line is skipped
    out = cli_env / "pairs.out.jsonl"
    assert main(["predict", "--model", URI, "--jsonl", str(listing), "--batch-size", "4", "--out", str(out)]) == 0
    rows = _read(out)
    assert [row["image"] for row in rows] == [images[i].name for i in order], "input order kept"
    assert [row["prompt"] for row in rows] == prompts
    singles = _singles(store, [str(images[i]) for i in order], prompts)
    assert [{"text": row["text"]} for row in rows] == singles
    assert len({row["text"] for row in rows}) >= 5


def test_an_adapter_folder_predicts_a_folder_as_its_registered_version_does(store: Store, cli_env: Path) -> None:
    _images(cli_env / "pictures", 5)
    common = ["--images", str(cli_env / "pictures"), "--prompt", "caption en", "--batch-size", "2"]
    local = ["--model", str(store.adapter), "--base", str(store.base), "--max-new-tokens", str(BUDGET)]
    assert main(["predict", *local, *common, "--out", str(cli_env / "adapter.jsonl")]) == 0
    assert main(["predict", "--model", URI, *common, "--out", str(cli_env / "registry.jsonl")]) == 0
    assert _read(cli_env / "adapter.jsonl") == _read(cli_env / "registry.jsonl")


def test_answer_in_batches_keeps_order_and_chunks(store: Store, tmp_path: Path) -> None:
    images = [str(p) for p in _images(tmp_path, 5)]
    predictor = load_registered(store.tracking_uri, URI, batch_size=2)
    chunks = list(answer_in_batches(predictor, images, ["caption en"] * 5, 2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert [a for c in chunks for a in c] == predictor.answers(images, ["caption en"] * 5)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        list(answer_in_batches(predictor, images, ["caption en"] * 5, 0))


def test_an_interrupted_run_keeps_the_batches_it_finished(
    store: Store, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _images(cli_env / "pictures", 5)
    data = images[3].read_bytes()
    images[3].write_bytes(data[: len(data) // 2])  # its header reads, its pixels do not
    out = cli_env / "out.jsonl"
    code = main(["predict", "--model", URI, "--images", str(cli_env / "pictures"), "--prompt", "caption en",
                 "--batch-size", "2", "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert f"the batch from {images[2]} (input 3 of 5)" in err and f"the 2 lines before it are in {out}" in err, err
    assert [row["image"] for row in _read(out)] == [str(images[0]), str(images[1])]


def test_a_terminal_gets_a_progress_bar_and_a_log_does_not(
    store: Store, cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _images(cli_env / "pictures", 3)
    argv = ["predict", "--model", URI, "--images", str(cli_env / "pictures"), "--prompt", "caption en"]
    assert main([*argv, "--out", str(cli_env / "a.jsonl")]) == 0
    assert "predict:" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main([*argv, "--batch-size", "2", "--out", str(cli_env / "b.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "predict: 100%" in err and "3/3" in err, err
    assert _read(cli_env / "a.jsonl") == _read(cli_env / "b.jsonl")


@pytest.mark.parametrize(
    ("lines", "args", "message"),
    [
        (None, ["--images", "{tmp}/nowhere", "--prompt", "p"], "{tmp}/nowhere: no such folder"),
        (None, ["--jsonl", "{tmp}/none.jsonl"], "{tmp}/none.jsonl: no such file"),
        (None, ["--image", "{tmp}/gone.png", "--prompt", "p"], "{tmp}/gone.png: no such image file"),
        (['{"image": "a.png", "prompt": "p"}', "{oops"], ["--jsonl", "{tmp}/in.jsonl"], "{tmp}/in.jsonl:2: not JSON"),
        (['{"image": "a.png"}'], ["--jsonl", "{tmp}/in.jsonl"], "{tmp}/in.jsonl:1: 'prompt': missing"),
        (['{"image": "b.png", "prompt": "p"}'], ["--jsonl", "{tmp}/in.jsonl"], "{tmp}/in.jsonl:1: image 'b.png'"),
        (['{"image": "bad.png", "prompt": "p"}'], ["--jsonl", "{tmp}/in.jsonl"], "in.jsonl:1: image 'bad.png': not an"),
        (['["a.png"]'], ["--jsonl", "{tmp}/in.jsonl"], "{tmp}/in.jsonl:1: expected a JSON object, got list"),
        (['{"image": "a.png", "prompt": "p"}'], ["--jsonl", "{tmp}/in.jsonl", "--prompt", "p"], "not taken with"),
        (None, ["--images", "{tmp}", "--prompt", "p", "--batch-size", "0"], "--batch-size must be at least 1"),
        (None, ["--images", "{tmp}"], "give one --prompt for the 1 images"),
    ],
)
def test_bad_input_exits_2_before_any_model_loads(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    lines: list[str] | None,
    args: list[str],
    message: str,
) -> None:
    store = tmp_path / "never.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "bad.png").write_text("not a png")
    if lines is not None:
        (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    argv = [a.format(tmp=tmp_path) for a in args]
    if "--images" in argv and "nowhere" not in argv[argv.index("--images") + 1]:
        (tmp_path / "bad.png").unlink()  # the folder's only image is a.png
    assert main(["predict", "--model", URI, *argv]) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err, err
    assert len(err.strip().splitlines()) == 1, "one line, no traceback"
    assert not store.exists(), "checked before the store was opened"


def test_a_missing_adapter_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    args = ["predict", "--model", str(tmp_path / "no-adapter"), "--image", str(tmp_path / "a.png"), "--prompt", "p"]
    assert main(args) == 2
    assert "no-adapter: no such adapter folder" in capsys.readouterr().err
