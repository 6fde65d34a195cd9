"""Scoring predictions of any model: `palitune evaluate score` on files written here."""

import json
from pathlib import Path

import pytest

from data.loc_tokens import encode_boxes
from data.schema import DataError
from evaluation.score import read_predictions, score_records
from palitune.cli import main


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_each_text_task_scores_per_example_in_input_order() -> None:
    vqa = score_records("vqa", [{"prediction": "2", "answers": ["2"] * 10}, {"prediction": "3", "answers": ["2"] * 10}])
    assert vqa.metrics == {"vqa_accuracy": 0.5} and vqa.scores == [1.0, 0.0]
    doc = score_records(
        "docvqa", [{"prediction": "12.5", "answers": ["12.50"]}, {"prediction": "x", "answers": ["ab"]}]
    )
    assert doc.scores == [pytest.approx(0.8), 0.0]
    chart = score_records("chartqa", [{"prediction": "45%", "answer": "0.45"}, {"prediction": "3", "answer": "4"}])
    assert chart.scores == [1.0, 0.0] and chart.primary_metric == "relaxed_accuracy"
    ocr = score_records("ocr", [{"prediction": "ABCD", "answer": "ABCD"}, {"prediction": "ABXD", "answer": "ABCD"}])
    assert ocr.metrics == {"ocr_exact_match": 0.5, "cer": pytest.approx(1 / 8)}
    extract = score_records(
        "extract",
        [
            {"prediction": '{"date": "3/4", "total": "12"}', "fields": {"date": "3/4", "total": "12"}},
            {"prediction": '{"date": "3/4", "total": "13"}', "fields": {"date": "3/4", "total": "12"}},
            {"prediction": "not json", "answers": ['{"date": "1/1", "total": "5"}']},
        ],
    )
    assert extract.scores == [1.0, pytest.approx(0.5), 0.0]
    assert extract.metrics["json_validity"] == pytest.approx(2 / 3)
    assert extract.metrics["precision"] == pytest.approx(3 / 4) and extract.metrics["recall"] == pytest.approx(3 / 6)


def test_detection_scores_boxes_decoded_from_loc_text() -> None:
    target = [[10, 20, 50, 60, "circle"], [60, 10, 90, 40, "square"]]
    exact = encode_boxes([tuple(b) for b in target], 100, 100)
    records = [
        {"prediction": exact, "boxes": target, "width": 100, "height": 100},
        {"prediction": "<loc0100><loc", "boxes": target, "image_size": [100, 100]},  # truncated output
    ]
    result = score_records("detect", records)
    assert result.scores[0] == 1.0 and result.scores[1] == 0.0
    assert 0.3 < result.metrics["coco_map"] < 1.0
    assert set(result.details["per_class_ap"]) == {"circle", "square"}


def test_caption_scores_record_their_tokenizer() -> None:
    refs = ["two red circles", "a blue square", "three green stars", "one yellow triangle"]
    records = [{"prediction": r, "references": [r, r + " here"]} for r in refs]
    records[-1]["prediction"] = "a purple ellipse"
    result = score_records("caption", records)
    assert result.primary_metric == "cider" and result.details["tokenizer"] in {"ptb", "simple"}
    assert result.scores[-1] < min(result.scores[:-1])


def test_cli_scores_a_file_and_writes_per_example_scores(tmp_path: Path, capsys) -> None:
    predictions = _write(
        tmp_path / "p.jsonl",
        [{"prediction": "red", "answers": ["red"] * 10}, {"prediction": "blue", "answers": ["red"] * 10}],
    )
    assert (
        main(
            [
                "evaluate",
                "score",
                "--task",
                "vqa",
                "--predictions",
                str(predictions),
                "--output",
                str(tmp_path / "s.json"),
            ]
        )
        == 0
    )
    written = json.loads((tmp_path / "s.json").read_text())
    assert written["metrics"] == {"vqa_accuracy": 0.5} and written["scores"] == [1.0, 0.0]
    assert json.loads(capsys.readouterr().out)["examples"] == 2


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ("{not json", None, "invalid JSON"),
        ('["a list"]', None, "expected a JSON object"),
        ('{"answers": ["x"]}', "prediction", "missing or not a string"),
    ],
)
def test_bad_lines_are_named_by_file_and_line(tmp_path: Path, line: str, field: str | None, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prediction": "a", "answers": ["a"]}\n' + line + "\n")
    with pytest.raises(DataError, match=message) as err:
        read_predictions(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), 2, field)


def test_missing_targets_are_named_by_line_and_field(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path / "p.jsonl", [{"prediction": "a", "answers": ["a"]}, {"prediction": "b"}])
    assert main(["evaluate", "score", "--task", "docvqa", "--predictions", str(path)]) == 1
    assert f"{path}:2: answers: missing" in capsys.readouterr().err
    detect = _write(tmp_path / "d.jsonl", [{"prediction": "", "boxes": [], "width": 0, "height": 10}])
    with pytest.raises(DataError, match="width"):
        score_records("detect", read_predictions(detect), source=detect)
