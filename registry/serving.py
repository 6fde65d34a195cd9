"""Serve a registered adapter: decode images, batch prompts, generate text; for a segment
model, also the objects the text describes, with their masks.

This is what the logged MLflow pyfunc model (``registry/pyfunc_model.py``) runs and what
``palitune predict`` runs, so a consumer of ``models:/palitune-<task>@champion`` gets the
same text as the command line. A version carries its base when the base is a local folder
(the tiny preset always is); a hub id is resolved by the consumer.

A segment model's ``<seg>`` codes mean masks only under the mask codec that encoded its
training data, so loading one checks the codec in force against the codec its adapter folder
records (``require_adapter_codec``) and refuses another one before any weight is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from models.generation import greedy_generate
from models.images import decode_image

if TYPE_CHECKING:
    from data.mask_codec.codec import MaskCodec

# Written by training beside the adapter (``training.train.RUN_INFO_FILE``); spelled here as
# serving must not import training (it runs in a consumer's process, from the model's code).
RUN_INFO_FILE = "palitune_run.json"
EXPORT_RECORD_FILE = "palitune_export.json"
SEGMENT_TASK = "segment"
CODEC_KEY = "mask_codec"  # the run info's, and a dataset manifest's, record of the codec


def adapter_run_info(adapter_dir: Path) -> dict[str, Any] | None:
    """The run info training wrote beside the adapter, or ``None`` for a folder without one
    (an adapter trained elsewhere).

    Raises:
        ValueError: the file is there but is not a JSON object (the message names it).
    """
    path = Path(adapter_dir) / RUN_INFO_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path}: not JSON ({err})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(info).__name__}")
    return info


def adapter_task(adapter_dir: Path) -> str | None:
    """The task the adapter was trained on, as its run info names it (``None`` when unknown)."""
    info = adapter_run_info(adapter_dir) or {}
    config = info.get("config")
    task = config.get("task") if isinstance(config, Mapping) else None
    return str(task) if isinstance(task, str) else None


def adapter_codec_record(adapter_dir: Path) -> Mapping[str, Any] | None:
    """The mask codec record of a segment adapter's training data; ``None`` for another task.

    The run info's ``mask_codec`` when training recorded it; else the ``mask_codec`` of the
    manifest of the dataset the run info names, when that folder is here (a relative path is
    taken in the workspace ``PALITUNE_HOME`` names).

    Raises:
        MaskCodecError: a segment adapter whose record is neither (its codes cannot be decoded
            with certainty).
    """
    from data.mask_codec.checkpoint import MaskCodecError

    info = adapter_run_info(adapter_dir) or {}
    if adapter_task(adapter_dir) != SEGMENT_TASK:
        return None
    recorded = info.get(CODEC_KEY)
    if isinstance(recorded, Mapping):
        return recorded
    manifest = _training_manifest(info)
    if manifest is not None:
        from_manifest = json.loads(manifest.read_text()).get(CODEC_KEY)
        if isinstance(from_manifest, Mapping):
            return from_manifest
    raise MaskCodecError(
        f"{Path(adapter_dir) / RUN_INFO_FILE}: a segment model that records no {CODEC_KEY!r} (nor does the "
        f"manifest of its training dataset{f' {manifest}' if manifest else ''}): its <seg> codes cannot be "
        "decoded with certainty; retrain it, or serve it where its training dataset is"
    )


def _training_manifest(info: Mapping[str, Any]) -> Path | None:
    """The manifest of the dataset ``info``'s config trained on, when that file exists here."""
    from data.schema import MANIFEST_FILE
    from data.workspace import Workspace

    config = info.get("config")
    dataset = config.get("dataset") if isinstance(config, Mapping) else None
    if not isinstance(dataset, str) or not dataset:
        return None
    path = Workspace.from_env().resolve_dataset(dataset) / MANIFEST_FILE
    return path if path.is_file() else None


def require_adapter_codec(adapter_dir: Path) -> MaskCodec | None:
    """The codec in force, once it is the one that encoded a segment adapter's training data;
    ``None`` for an adapter of another task.

    Raises:
        MaskCodecError: the adapter records another codec, or none (the message says how to fix it).
    """
    from data.mask_codec.codec import require_codec
    from data.segment_target import current_codec

    recorded = adapter_codec_record(adapter_dir)
    if recorded is None:
        return None
    codec = current_codec()
    require_codec(recorded, codec, what=f"the training data of the segment model {adapter_dir}")
    return codec


def segment_objects(text: str, width: int, height: int, codec: MaskCodec | None = None) -> list[dict[str, Any]]:
    """The objects of a generated segmentation ``text`` about a ``width x height`` image, as
    JSON: ``[{"label", "box": [x0, y0, x1, y1] in pixels, "mask": COCO RLE of the image}]``.

    Objects the parser drops (fewer than 16 codes, inverted boxes, repeats) are left out, and
    so is one whose box has no pixel area (it holds no mask), as scoring does.
    """
    from data.masks import encode_rle
    from data.segment_target import current_codec, parse_segments

    codec = codec or current_codec()
    objects, _ = parse_segments(text, width, height)
    found = []
    for obj in objects:
        box = (obj.x0, obj.y0, obj.x1, obj.y1)
        if not (obj.x0 < obj.x1 and obj.y0 < obj.y1):
            continue
        mask = codec.codes_to_mask(obj.codes, box, (width, height))
        found.append({"label": obj.label, "box": [round(float(v), 2) for v in box], "mask": encode_rle(mask)})
    return found


class AdapterPredictor:
    """A base model with an adapter applied, answering prompts about images greedily.

    Raises (on construction):
        MaskCodecError: a segment adapter whose training codec is not the codec in force.
    """

    def __init__(self, base_ref: str, adapter_dir: Path, *, max_new_tokens: int = 32, batch_size: int = 16):
        from models.loading import load_for_inference

        self.task = adapter_task(Path(adapter_dir))
        self.codec = require_adapter_codec(Path(adapter_dir))  # before the weights: a refusal is cheap
        self.model, self.processor = load_for_inference(base_ref, Path(adapter_dir))
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    def predict(self, images: Sequence[Any], prompts: Sequence[str]) -> list[str]:
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        outputs: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            pictures = [decode_image(i) for i in images[chunk]]
            outputs += greedy_generate(
                self.model, self.processor, pictures, prompts[chunk], max_new_tokens=self.max_new_tokens
            )
        return outputs

    def answers(self, images: Sequence[Any], prompts: Sequence[str]) -> list[dict[str, Any]]:
        """``{"text": ...}`` per image, with ``"objects"`` (``segment_objects``) for a segment model."""
        return structured_answers(self.task, images, self.predict(images, prompts), self.codec)


def structured_answers(
    task: str | None, images: Sequence[Any], texts: Sequence[str], codec: MaskCodec | None = None
) -> list[dict[str, Any]]:
    """Each generated text as ``{"text": ...}``; for a ``segment`` model also its ``objects``
    with their masks and boxes, in the pixels of each image."""
    answers: list[dict[str, Any]] = [{"text": text} for text in texts]
    if task == SEGMENT_TASK:
        for answer, image in zip(answers, images, strict=True):
            width, height = decode_image(image).size
            answer["objects"] = segment_objects(answer["text"], width, height, codec)
    return answers


def export_merged(base_ref: str, adapter_dir: Path, out_dir: Path, *, source: Mapping[str, Any] | None = None) -> Path:
    """Merge a LoRA adapter into its base and save one model (safetensors) with its processor,
    and beside them ``palitune_export.json``: where the weights came from (``export_record``).

    For serving stacks that want a single checkpoint: the result loads with
    ``PaliGemmaForConditionalGeneration.from_pretrained(out_dir)``. Written beside ``out_dir``
    and moved into place when complete. A fully fine-tuned folder is saved as it is.

    Args:
        source: the registry's facts to record (version, run, metrics), when the adapter
            comes from a registered version.
    """
    from data.atomic import staged_dir
    from models.loading import load_for_inference

    record = export_record(base_ref, Path(adapter_dir), source)
    model, processor = load_for_inference(base_ref, Path(adapter_dir))
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    with staged_dir(Path(out_dir)) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        (tmp / EXPORT_RECORD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return Path(out_dir)


def export_record(base_ref: str, adapter_dir: Path, source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What ``palitune_export.json`` says of merged weights: the base, the task, the dataset
    hash and training facts from the adapter's run info, the mask codec of a segment model,
    and the registry's ``source`` (model, version, run id, metrics) when given. A fact not
    known is ``null``, so a reader can tell "not recorded" from a missing key (a segment model
    whose codec is not recorded is still exported, its ``mask_codec`` null)."""
    from data.mask_codec.checkpoint import MaskCodecError

    info = adapter_run_info(adapter_dir) or {}
    try:
        codec = adapter_codec_record(adapter_dir)
    except MaskCodecError:
        codec = None
    record: dict[str, Any] = {
        "base_model": base_ref,
        "task": adapter_task(adapter_dir),
        "dataset_hash": info.get("dataset_hash"),
        "training": {key: info.get(key) for key in ("steps", "final_loss", "mlflow_run_id")},
        "mask_codec": dict(codec) if codec is not None else None,
        "model": None,
        "version": None,
        "run_id": None,
        "metrics": {},
    }
    if source:
        record.update({key: value for key, value in source.items() if value is not None})
    return json.loads(json.dumps(record, default=str))


class Answerer(Protocol):
    """What batch prediction needs of a loaded model: answers for a chunk of images."""

    def answers(self, images: Sequence[Any], prompts: Sequence[str]) -> list[dict[str, Any]]: ...


class RegisteredPredictor:
    """A registered version loaded once as MLflow pyfunc, as any consumer loads it, answering
    chunk after chunk (``answer_registered`` loads the model on every call).

    ``batch_size`` is how many images one ``generate`` call takes; the pyfunc model's own
    predictor chunks its input by it.
    """

    def __init__(self, model: Any, *, batch_size: int | None = None):
        self.model = model
        self.predictor = getattr(model.unwrap_python_model(), "predictor", None)
        if batch_size is not None and self.predictor is not None:
            self.predictor.batch_size = batch_size

    @property
    def task(self) -> str | None:
        return getattr(self.predictor, "task", None)

    def answers(self, images: Sequence[Any], prompts: Sequence[str]) -> list[dict[str, Any]]:
        """``structured_answers`` of the pyfunc model's texts for ``images`` and ``prompts``."""
        import pandas as pd

        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        texts = list(self.model.predict(pd.DataFrame({"image": list(images), "prompt": list(prompts)})))
        return structured_answers(self.task, images, texts, getattr(self.predictor, "codec", None))


def load_registered(tracking_uri: str, model_uri: str, *, batch_size: int | None = None) -> RegisteredPredictor:
    """Load ``model_uri`` (``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``runs:/...``)
    from the store at ``tracking_uri`` as MLflow pyfunc.

    Raises:
        UnknownModelError: a ``models:/`` URI whose model, alias or version the store lacks.
        MaskCodecError: a segment model whose training codec is not the codec in force.
    """
    import mlflow

    from registry.models import global_tracking_uri, resolve_version
    from registry.tracking import client_for

    client = client_for(tracking_uri)
    if model_uri.startswith("models:/"):
        resolve_version(client, model_uri)  # an unknown name or alias, said plainly
    with global_tracking_uri(client):
        model = mlflow.pyfunc.load_model(model_uri)
    return RegisteredPredictor(model, batch_size=batch_size)


def answer_in_batches(
    predictor: Answerer, images: Sequence[Any], prompts: Sequence[str], batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    """``predictor``'s answers, ``batch_size`` images at a time, in input order: a caller can
    write each chunk as it comes (a crash keeps what was done) and show progress.

    Raises:
        ValueError: not one prompt per image, or ``batch_size`` below 1.
    """
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(images), batch_size):
        chunk = slice(start, start + batch_size)
        answers = predictor.answers(images[chunk], prompts[chunk])
        if len(answers) != len(images[chunk]):
            raise RuntimeError(f"{len(images[chunk])} images in, {len(answers)} answers out")
        yield answers


def predict_registered(tracking_uri: str, model_uri: str, images: Sequence[str], prompts: Sequence[str]) -> list[str]:
    """Load ``model_uri`` (``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``runs:/...``)
    from the store at ``tracking_uri`` as MLflow pyfunc, as any consumer does, and answer
    ``prompts`` about ``images`` (one prompt per image).

    Raises:
        UnknownModelError: a ``models:/`` URI whose model, alias or version the store lacks.
        MaskCodecError: a segment model whose training codec is not the codec in force.
    """
    return [answer["text"] for answer in answer_registered(tracking_uri, model_uri, images, prompts)]


def answer_registered(
    tracking_uri: str, model_uri: str, images: Sequence[str], prompts: Sequence[str]
) -> list[dict[str, Any]]:
    """``predict_registered``, each answer as ``structured_answers`` gives it: ``{"text"}``,
    and for a segment model its ``objects`` with masks (COCO RLE) and boxes.

    Raises:
        UnknownModelError: a ``models:/`` URI whose model, alias or version the store lacks.
        MaskCodecError: a segment model whose training codec is not the codec in force.
    """
    return load_registered(tracking_uri, model_uri).answers(images, prompts)


def export_version(tracking_uri: str, ref: str, models_dir: Path, out_dir: Path) -> Path:
    """The adapter of version ``ref`` (``NAME@ALIAS`` or ``NAME@VERSION``) merged into the base
    its tags name (``export_merged``), written to ``out_dir`` with a record of the version,
    its run, dataset hash and metrics.

    Raises:
        UnknownModelError: no such model, alias or version.
    """
    import tempfile

    from data.lineage_tags import DATASET_TAG
    from models.loading import resolve_base
    from registry.lineage import base_model_of
    from registry.models import download_adapter, resolve_version
    from registry.tracking import client_for

    client = client_for(tracking_uri)
    version = resolve_version(client, ref)
    run = client.get_run(str(version.run_id))
    source = {
        "model": version.name,
        "version": str(version.version),
        "run_id": str(version.run_id),
        "aliases": sorted(version.aliases or []),
        "metrics": dict(sorted(run.data.metrics.items())),
    }
    if version.tags.get(DATASET_TAG):
        source["dataset_hash"] = version.tags[DATASET_TAG]
    with tempfile.TemporaryDirectory(prefix="palitune-export-") as scratch:
        adapter = download_adapter(client, version, Path(scratch))
        base_ref = resolve_base(base_model_of(version.tags), models_dir)
        return export_merged(base_ref, adapter, out_dir, source=source)
