"""Each task's codec: target -> suffix -> parsed output, what malformed output does, and the
entry's run config and generator."""

import json
from pathlib import Path

import pytest

from data.loc_tokens import BINS, Box, decode_boxes, encode_boxes, to_bin
from data.synthetic import GENERATORS, generator_of
from data.tasks import TASKS, ImageSize, OutputParseError, detect_prefix, extract_prefix, get_task
from training.config import load_config

REPO = Path(__file__).resolve().parents[2]


def test_the_table_holds_every_task_once() -> None:
    assert sorted(TASKS) == ["caption", "chartqa", "detect", "docvqa", "extract", "ocr", "segment", "vqa"]
    assert get_task("docvqa").prefix(question="What is the total?") == "answer en What is the total?"
    assert get_task("caption").prefix() == "caption en"
    with pytest.raises(KeyError, match="known tasks: caption, chartqa"):
        get_task("pose")


@pytest.mark.parametrize("name", ["caption", "vqa", "docvqa", "chartqa", "ocr"])
def test_text_tasks_round_trip_and_refuse_empty_targets(name: str) -> None:
    task = get_task(name)
    suffix = task.render_suffix("  12.50  total\n")
    assert suffix == "12.50 total"
    assert task.parse_output(f" {suffix} ") == suffix
    with pytest.raises(ValueError, match="non-empty string"):
        task.render_suffix("   ")


@pytest.mark.parametrize(("width", "height"), [(640, 480), (64, 64), (1000, 37)])
def test_boxes_round_trip_within_one_bin(width: int, height: int) -> None:
    boxes = [
        [0, 0, width, height, "all"],
        [width * 0.25, height * 0.1, width * 0.6, height * 0.9, "cat"],
        [1.5, 2.5, 3.5, 4.5, "speck"],
    ]
    text = encode_boxes(boxes, width, height)
    decoded = decode_boxes(text, width, height)
    assert [b.label for b in decoded] == ["all", "cat", "speck"]
    for box, back in zip(boxes, decoded, strict=True):
        for original, got, size in zip(box[:4], back[:4], (width, height, width, height), strict=True):
            assert abs(original - got) <= size / BINS + 1e-9


def test_the_token_layout_is_y0_x0_y1_x1_then_label() -> None:
    text = get_task("detect").render_suffix([[10, 20, 30, 40, "dog"], [0, 0, 50, 50, "cat"]], ImageSize(100, 200))
    assert text == "<loc0102><loc0102><loc0204><loc0307> dog ; <loc0000><loc0000><loc0256><loc0512> cat"
    assert to_bin(100, 100) == BINS - 1 and to_bin(-5, 100) == 0
    with pytest.raises(ValueError, match="cannot quantise"):
        to_bin(float("nan"), 100)


def test_decoding_tolerates_what_detectors_emit() -> None:
    box = "<loc0100><loc0200><loc0300><loc0400> cat"
    size = ImageSize(1024, 1024)
    parse = get_task("detect").parse_output
    # repeated until max_new_tokens, then cut mid-object
    assert parse(" ; ".join([box] * 5) + " ; <loc0001><loc0002>", size) == [Box(200, 100, 400, 300, "cat")]
    assert parse("<loc0100><loc0200><loc0300>", size) == []  # fewer than four tokens
    assert parse("", size) == [] and parse("no boxes here", size) == []
    assert parse(f"{box} ; <loc0001><loc0001><loc0002><loc0002> unicorn", size, labels=["cat"]) == [
        Box(200, 100, 400, 300, "cat")
    ]
    assert parse("<loc0300><loc0400><loc0100><loc0200> cat", size) == []  # inverted
    with pytest.raises(ValueError, match="image size"):
        parse(box)


def test_extract_renders_canonical_json_and_reports_invalid_json() -> None:
    task = get_task("extract")
    suffix = task.render_suffix({"total": "12.50", "date": "2024-01-02", "vendor": "Café"})
    assert suffix == '{"date": "2024-01-02", "total": "12.50", "vendor": "Café"}'
    assert task.parse_output(suffix) == json.loads(suffix)
    with pytest.raises(OutputParseError, match="invalid JSON"):
        task.parse_output('{"date": "2024-01-02", "total": ')
    with pytest.raises(OutputParseError, match="JSON object"):
        task.parse_output("[1, 2]")


def test_prefixes_list_classes_and_fields_in_a_stable_order() -> None:
    assert detect_prefix(["dog", "cat", "dog"]) == "detect cat ; dog"
    assert extract_prefix(["total", "date"]) == "extract date ; total"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_has_a_valid_default_config_and_a_generator(name: str) -> None:
    task = get_task(name)
    path = REPO / task.config
    assert path.is_file(), f"{name}: default config {task.config} is not on disk"
    assert load_config(path).task == name, f"{task.config}: task: is not {name!r}"
    generator = generator_of(task)
    assert generator.task == name and GENERATORS[name] is generator
