"""The task table: each task's prompt prefix, how its target renders to the suffix, how
generated text parses back, which metric scores it, its generation budget, its default run
config and its synthetic generator. See DESIGN.md "Tasks".

A task's *target* is what the labelled data holds: a string (caption, answer, text), a list
of pixel boxes (detect), a mapping of fields (extract) or objects with masks (segment,
``data.segment_target``). Metrics are named here and
implemented in ``evaluation`` (``data`` imports no other palitune package).

Adding a task touches three places and nothing else:

1. its entry in ``TASKS``: name, prompt, metric, budget, target field, default run config
   (a ``configs/`` file whose ``task:`` is the name) and generator;
2. its codec and metric: a ``render``/``parse`` pair here when the target is not plain text,
   and a scorer under the metric's name in ``evaluation.scorers.SCORERS``;
3. its generator: a ``SyntheticGenerator`` in a ``data.synthetic`` module, named in the entry
   as ``module:attribute`` (resolved lazily there: the generator modules import this table).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from data.loc_tokens import decode_boxes, encode_boxes


class OutputParseError(ValueError):
    """Generated text that does not parse as the task's output (e.g. invalid JSON)."""


@dataclass(frozen=True)
class ImageSize:
    width: int
    height: int


def _text(target: Any, size: ImageSize | None = None) -> str:
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"expected a non-empty string target, got {target!r}")
    return " ".join(target.split())


def _parse_text(text: str, size: ImageSize | None = None, **_: Any) -> str:
    return text.strip()


def _pixels(size: ImageSize | None, what: str) -> ImageSize:
    """The image size location tokens are placed in; ``what`` says what needed it."""
    if size is None:
        raise ValueError(f"{what} needs the image size to place location tokens")
    return size


def _render_boxes(target: Any, size: ImageSize | None = None) -> str:
    size = _pixels(size, "a detection target")
    return encode_boxes(target, size.width, size.height)


def _parse_boxes(text: str, size: ImageSize | None = None, labels: Sequence[str] | None = None, **_: Any) -> Any:
    size = _pixels(size, "decoding location tokens")
    return decode_boxes(text, size.width, size.height, labels)


def _render_segments(target: Any, size: ImageSize | None = None) -> str:
    from data.segment_target import render_segments

    size = _pixels(size, "a segmentation target")
    return render_segments(target, size.width, size.height)


def _parse_segments(text: str, size: ImageSize | None = None, labels: Sequence[str] | None = None, **_: Any) -> Any:
    from data.segment_target import parse_segments

    size = _pixels(size, "decoding location tokens")
    return parse_segments(text, size.width, size.height, labels)[0]


def _render_json(target: Any, size: ImageSize | None = None) -> str:
    if not isinstance(target, dict) or not target:
        raise ValueError(f"expected a non-empty mapping of fields, got {target!r}")
    return json.dumps(target, sort_keys=True, ensure_ascii=False)


def _parse_json(text: str, size: ImageSize | None = None, **_: Any) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise OutputParseError(f"invalid JSON: {err.msg} at column {err.colno}") from None
    if not isinstance(value, dict):
        raise OutputParseError(f"expected a JSON object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Task:
    """How one vision task is phrased for PaliGemma, rendered, parsed back, scored and run.

    Attributes:
        prefix_template: the prompt, formatted with the example's fields.
        metric: the primary metric, the name of its scorer in ``evaluation.scorers``.
        max_new_tokens: the generation budget, the same in validation, test and serving:
            enough for a complete answer (a detection is 5 tokens per box, an extraction a
            JSON object; short answers stop at ``<eos>`` long before).
        config: the default run config, relative to the repository root (the tiny one the
            demo and the Dagster partition of the task train with).
        generator: the synthetic generator, ``module:attribute`` of a ``SyntheticGenerator``
            (``data.synthetic.generator_of`` resolves it).
        synthetic_train: training examples of the synthetic set as ``params.yaml`` first has
            them. Tasks that read text or place boxes need ten times the images before the
            tiny model learns them (OCR: 0.07 exact match from 2,000 images, 0.83 from 20,000).
        target: the example field the suffix renders from: ``suffix`` where the suffix is
            the target itself (text), else the structured field (``boxes``, ``fields``),
            which such an example must have and its suffix must be the rendering of.
        verbatim: the suffix is the reference character for character (OCR transcriptions):
            an imported suffix is kept as it is rather than whitespace-normalised into
            ``answers``.
        render: target -> suffix text (image size needed by ``detect``).
        parse: generated text -> target-shaped value; raises ``OutputParseError``.
    """

    name: str
    prefix_template: str
    metric: str
    max_new_tokens: int
    config: str
    generator: str
    synthetic_train: int = 2000
    target: str = "suffix"
    verbatim: bool = False
    render: Callable[[Any, ImageSize | None], str] = _text
    parse: Callable[..., Any] = _parse_text

    def prefix(self, **fields: Any) -> str:
        """The prompt prefix, e.g. ``answer en what colour is the circle?``."""
        return self.prefix_template.format(**fields)

    def render_suffix(self, target: Any, size: ImageSize | None = None) -> str:
        return self.render(target, size)

    def parse_output(self, text: str, size: ImageSize | None = None, **context: Any) -> Any:
        return self.parse(text, size, **context)


def detect_prefix(labels: Sequence[str]) -> str:
    """``detect cat ; dog``: the classes to look for, in a stable order."""
    return "detect " + " ; ".join(sorted(dict.fromkeys(label.strip() for label in labels)))


def segment_prefix(labels: Sequence[str]) -> str:
    """``segment cat ; dog``: the classes whose masks to give, in a stable order."""
    return "segment " + " ; ".join(sorted(dict.fromkeys(label.strip() for label in labels)))


def extract_prefix(fields: Sequence[str]) -> str:
    """``extract date ; total``: the fields to read, in a stable order."""
    return "extract " + " ; ".join(sorted(dict.fromkeys(fields)))


# Default configs: a full fine-tune where reading text needs the vision tower trained, else
# LoRA on the language model (see README's learnability table).
TASKS: dict[str, Task] = {
    task.name: task
    for task in [
        Task(
            "caption",
            "caption en",
            metric="cider",
            max_new_tokens=32,
            config="configs/tiny/64px_caption_lora.yaml",
            generator="data.synthetic.shapes:SHAPES_CAPTION",
        ),
        Task(
            "vqa",
            "answer en {question}",
            metric="vqa_accuracy",
            max_new_tokens=16,
            config="configs/tiny/64px_vqa_lora.yaml",
            generator="data.synthetic.shapes:SHAPES_VQA",
        ),
        Task(
            "docvqa",
            "answer en {question}",
            metric="anls",
            max_new_tokens=32,
            config="configs/tiny/64px_docvqa_full.yaml",
            synthetic_train=20_000,
            generator="data.synthetic.documents:RECEIPT_DOCVQA",
        ),
        Task(
            "chartqa",
            "answer en {question}",
            metric="relaxed_accuracy",
            max_new_tokens=16,
            config="configs/tiny/64px_chartqa_lora.yaml",
            generator="data.synthetic.charts:CHARTS_QA",
        ),
        Task(
            "ocr",
            "ocr",
            metric="ocr_exact_match",
            max_new_tokens=32,
            config="configs/tiny/64px_ocr_full.yaml",
            synthetic_train=20_000,
            generator="data.synthetic.documents:WORD_OCR",
            verbatim=True,
        ),
        Task(
            "detect",
            "detect {labels}",
            metric="coco_map",
            max_new_tokens=128,
            config="configs/tiny/64px_detect_full.yaml",
            synthetic_train=20_000,
            generator="data.synthetic.shapes:SHAPES_DETECT",
            target="boxes",
            render=_render_boxes,
            parse=_parse_boxes,
        ),
        Task(
            "extract",
            "extract {fields}",
            metric="field_f1",
            max_new_tokens=96,
            config="configs/tiny/64px_extract_full.yaml",
            synthetic_train=20_000,
            generator="data.synthetic.documents:RECEIPT_EXTRACT",
            target="fields",
            render=_render_json,
            parse=_parse_json,
        ),
        Task(
            "segment",
            "segment {labels}",
            metric="miou",
            max_new_tokens=96,  # an object is 4 + 16 tokens and its label: four objects
            config="configs/tiny/64px_segment_full.yaml",
            synthetic_train=20_000,
            generator="data.synthetic.segment:SHAPES_SEGMENT",
            target="masks",
            render=_render_segments,
            parse=_parse_segments,
        ),
    ]
}


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name raises with the known ones listed."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None
