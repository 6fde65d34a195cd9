"""Scoring predictions of any model: `palitune evaluate score` on files written here."""

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from data.loc_tokens import encode_boxes
from data.schema import DataError
from data.tasks import TASKS, get_task
from evaluation.score import read_predictions, score_records
from evaluation.scorers import SCORERS, scorer_of
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
    target: list[list[Any]] = [[10, 20, 50, 60, "circle"], [60, 10, 90, 40, "square"]]
    exact = encode_boxes([tuple(b) for b in target], 100, 100)
    records: list[dict[str, Any]] = [
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
    assert main(["evaluate", "score", "--task", "docvqa", "--predictions", str(path)]) == 2
    assert f"{path}:2: answers: missing" in capsys.readouterr().err
    detect = _write(tmp_path / "d.jsonl", [{"prediction": "", "boxes": [], "width": 0, "height": 10}])
    with pytest.raises(DataError, match="width"):
        score_records("detect", read_predictions(detect), source=detect)


def test_issue_one_answer_vqa_export_scores_perfect_predictions_one(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path / "p.jsonl", [{"prediction": "blue", "answers": ["blue"]}])
    assert (
        main(["evaluate", "score", "--task", "vqa", "--predictions", str(path), "--output", str(tmp_path / "s.json")])
        == 0
    )
    written = json.loads((tmp_path / "s.json").read_text())
    assert written["metrics"] == {"vqa_accuracy": 1.0}
    counts = {"official_10_answer_leave_one_out": 0, "few_answer_exact_match": 1}
    assert written["details"]["vqa_rule_counts"] == counts
    assert json.loads(capsys.readouterr().out)["details"]["vqa_rule_counts"] == counts


def test_vqa_rule_counts_split_by_answer_count() -> None:
    records: list[dict[str, Any]] = [
        {"prediction": "red", "answers": ["red"] * 10},
        {"prediction": "red", "answer": "red"},
        {"prediction": "navy", "answers": ["blue", "navy"]},
        {"prediction": "Red", "answers": ["red"]},
    ]
    result = score_records("vqa", records)
    assert result.scores == [1.0, 1.0, 1.0, 0.0]
    assert result.details == {"vqa_rule_counts": {"official_10_answer_leave_one_out": 1, "few_answer_exact_match": 3}}


def test_chartqa_does_not_strip_the_prediction() -> None:
    records = [
        {"prediction": " 12", "answer": "12"},
        {"prediction": " 0", "answer": "0"},
        {"prediction": " Yes", "answer": "yes"},
    ]
    assert score_records("chartqa", records).scores == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("task", "records", "line", "field", "message"),
    [
        ("vqa", [{"prediction": "a", "answers": ["a"]}, {"prediction": "a", "answers": []}], 2, "answers", "non-empty"),
        ("vqa", [{"prediction": "a", "answers": [True]}], 1, "answers", "non-empty text"),
        (
            "ocr",
            [{"prediction": "a", "answer": "a"}, {"prediction": "", "answer": ""}],
            2,
            "answer",
            "CER is undefined",
        ),
        (
            "extract",
            [{"prediction": "{}", "fields": {"a": "1"}}, {"prediction": "{}", "fields": {}}],
            2,
            "fields",
            "no fields",
        ),
        ("caption", [{"prediction": "a dog", "references": ["a dog"]}], None, "references", "at least two images"),
        (
            "caption",
            [{"prediction": "a", "references": ["a"]}, {"prediction": "b", "references": [" "]}],
            2,
            "references",
            "non-empty captions",
        ),
        ("detect", [{"prediction": "", "boxes": [], "image_size": [10, 10]}], None, "boxes", "no ground-truth box"),
        (
            "detect",
            [{"prediction": "", "boxes": [[5, 5, 1, 1, "a"]], "image_size": [10, 10]}],
            1,
            "boxes",
            "inverted box",
        ),
        (
            "detect",
            [{"prediction": "", "boxes": [["5", 5, 9, 9, "a"]], "image_size": [10, 10]}],
            1,
            "boxes",
            "in pixels",
        ),
    ],
)
def test_a_metric_that_cannot_be_computed_raises_with_its_location(
    tmp_path: Path, task: str, records: list[dict], line: int | None, field: str, message: str
) -> None:
    path = _write(tmp_path / "p.jsonl", records)
    with pytest.raises(DataError, match=message) as err:
        score_records(task, read_predictions(path), source=path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), line, field)


def test_wrong_answers_still_score_zero_where_that_is_the_defined_value() -> None:
    assert score_records("docvqa", [{"prediction": "", "answers": ["abc"]}]).scores == [0.0]
    extract = score_records("extract", [{"prediction": "not json", "fields": {"a": "1"}}])
    assert extract.metrics == {"field_f1": 0.0, "precision": 0.0, "recall": 0.0, "json_validity": 0.0}
    target = [[10, 20, 50, 60, "circle"]]
    detect = score_records("detect", [{"prediction": "", "boxes": target, "width": 100, "height": 100}])
    assert detect.metrics["coco_map"] == 0.0 and detect.scores == [0.0]


def test_no_records_is_an_error() -> None:
    with pytest.raises(DataError, match="no predictions to score"):
        score_records("vqa", [])


def test_every_task_of_the_table_has_a_scorer_of_its_primary_metric() -> None:
    for task in TASKS.values():
        assert task.metric in SCORERS, f"{task.name}: no scorer for {task.metric!r}"
    with pytest.raises(KeyError, match="no scorer for metric 'bleu'.*there are: vqa_accuracy"):
        scorer_of(dataclasses.replace(get_task("vqa"), metric="bleu"))
