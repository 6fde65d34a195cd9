"""A dataset's own targets, scored as predictions, score perfect: for every task, on synthetic data
and on the shapes ingested data takes (one-answer VQA from a Roboflow export, ChartQA list labels,
DocVQA answer lists). Captions score what pycocoevalcap gives for candidates equal to a reference."""

import json
from pathlib import Path

import pytest
from PIL import Image

from data.loc_tokens import encode_boxes
from data.schema import SPLITS, Example, read_split
from data.sources import ingest
from data.synthetic import SplitSizes, write_synthetic
from data.tasks import TASKS, get_task
from evaluation.coco_metrics import simple_tokenize
from evaluation.report import EvaluationReport
from evaluation.score import ScoreResult, example_record, score_records

SIZES = SplitSizes(train=1, val=1, test=8)
PRIMARY = {"caption": "cider", "detect": "coco_map", "extract": "field_f1"}


def _score_targets(root: Path, examples: list[Example]) -> ScoreResult:
    """Each example's own suffix as its prediction, scored as ``palitune evaluate`` scores outputs."""
    records = [example_record(root, example, example.suffix) for example in examples]
    return score_records(examples[0].task, records, source=root / "test.jsonl")


def _expected_caption_scores(examples: list[Example], tokenizer: str) -> tuple[float, list[float], float, float]:
    """CIDEr-D (corpus and per example), BLEU-4 and ROUGE-L straight from pycocoevalcap's scorers."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    keys = [str(i) for i in range(len(examples))]
    refs = {k: e.answers for k, e in zip(keys, examples, strict=True)}
    cands = {k: [e.suffix] for k, e in zip(keys, examples, strict=True)}
    if tokenizer == "ptb":
        tokenize = PTBTokenizer().tokenize
        gts = tokenize({k: [{"caption": r} for r in v] for k, v in refs.items()})
        res = tokenize({k: [{"caption": c} for c in v] for k, v in cands.items()})
    else:
        gts = {k: [simple_tokenize(r) for r in v] for k, v in refs.items()}
        res = {k: [simple_tokenize(c) for c in v] for k, v in cands.items()}
    cider, per_example = Cider().compute_score(gts, res)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    return float(cider), [float(s) for s in per_example], float(bleu[3]), float(rouge)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_synthetic_targets_score_perfect(tmp_path: Path, task: str) -> None:
    root = write_synthetic(task, tmp_path / task, sizes=SIZES)
    examples = read_split(root, "test")
    result = _score_targets(root, examples)
    primary = PRIMARY.get(task, get_task(task).metric)
    assert result.primary_metric == primary
    if task == "caption":
        assert all(len(e.answers) > 1 for e in examples)  # several references, the candidate is one of them
        cider, per_example, bleu4, rouge_l = _expected_caption_scores(examples, result.details["tokenizer"])
        # Not 1.0 (nor CIDEr-D's 10): three-word captions hold no 4-gram, so pycocoevalcap's smoothed
        # BLEU-4 is (1e-15 / 1e-9) ** (1 / 4); IDF is low for n-grams every image shares.
        assert result.metrics["cider"] == cider and result.scores == per_example
        assert result.metrics["bleu4"] == bleu4
        assert result.metrics["rouge_l"] == rouge_l == pytest.approx(1.0)
        return
    if task == "segment":
        # The codes describe each mask through the codec: a box of 4 location bins and a 4x4
        # grid of codes is close to, not exactly, the drawn mask.
        assert result.metrics["miou"] > 0.95 and min(result.scores) > 0.85
        assert result.metrics["invalid"] == 0.0 and result.metrics["segm_ap50"] == 1.0
        return
    assert result.metrics[primary] == 1.0
    assert result.scores == [1.0] * len(examples)
    if task == "ocr":
        assert result.metrics["cer"] == 0.0
    if task == "extract":
        assert result.metrics["json_validity"] == 1.0
    if task == "vqa":  # the synthetic set keeps ten answers per question, as VQAv2
        counts = {"official_10_answer_leave_one_out": len(examples), "few_answer_exact_match": 0}
        assert result.details["vqa_rule_counts"] == counts


def test_coco_style_captions_score_what_pycocoevalcap_gives(tmp_path: Path) -> None:
    references = [
        ["a dog runs across the green grass", "a brown dog running on a lawn", "the dog is playing outside"],
        ["a cat sleeps on a red sofa", "a cat is asleep on the couch", "a sleeping cat on a sofa"],
        ["two birds fly over the sea", "birds flying above the ocean", "a pair of birds over water"],
        ["a man rides a bike down the street", "a cyclist on a city road", "a person riding a bicycle"],
    ]
    spec = get_task("caption")
    examples = [
        Example(f"images/{i}.png", spec.prefix(), spec.render_suffix(refs[i % len(refs)]), "caption", f"t-{i}", refs)
        for i, refs in enumerate(references)
    ]
    result = _score_targets(tmp_path, examples)
    cider, per_example, bleu4, rouge_l = _expected_caption_scores(examples, result.details["tokenizer"])
    assert result.metrics["cider"] == cider and result.scores == per_example
    assert 0.0 < cider < 10.0  # a candidate equal to one of several references is not CIDEr-D's maximum
    assert result.metrics["bleu4"] == bleu4 == pytest.approx(1.0)
    assert result.metrics["rouge_l"] == rouge_l == pytest.approx(1.0)


def _image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _roboflow_export(src: Path, lines: list[dict]) -> Path:
    """A Roboflow ``paligemma`` export: ``_annotations.train.jsonl`` beside its images."""
    for i, line in enumerate(lines):
        _image(src / line["image"], (20 * i, 100, 200 - 10 * i))
    (src / "_annotations.train.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return src


def _ingested(src: Path, out: Path, task: str) -> list[Example]:
    root = ingest("paligemma-jsonl", src, out, task=task)
    return [example for split in SPLITS for example in read_split(root, split)]


def test_roboflow_one_answer_vqa_export_scores_perfect(tmp_path: Path) -> None:
    answers = ["blue", "2", "yes", "a red car", "Blue", "two dogs", "no", "3.5", "left", "none"]
    lines = [
        {"image": f"{i}.png", "prefix": f"answer en question {i}?", "suffix": answer}
        for i, answer in enumerate(answers)
    ]
    examples = _ingested(_roboflow_export(tmp_path / "export", lines), tmp_path / "out", "vqa")
    assert len(examples) == len(answers) and all(len(e.answers) == 1 for e in examples)
    result = _score_targets(tmp_path / "out", examples)
    assert result.metrics == {"vqa_accuracy": 1.0} and result.scores == [1.0] * len(answers)
    counts = {"official_10_answer_leave_one_out": 0, "few_answer_exact_match": len(answers)}
    assert result.details["vqa_rule_counts"] == counts


def test_roboflow_detection_export_scores_perfect(tmp_path: Path) -> None:
    boxes = [[(4, 3, 20, 15, "car"), (22, 10, 38, 28, "dog")], [(0, 0, 40, 30, "car")], [(10, 5, 30, 25, "dog")]]
    lines = [
        {"image": f"{i}.png", "prefix": "detect car ; dog", "suffix": encode_boxes(b, 40, 30)}
        for i, b in enumerate(boxes)
    ]
    examples = _ingested(_roboflow_export(tmp_path / "export", lines), tmp_path / "out", "detect")
    result = _score_targets(tmp_path / "out", examples)
    assert result.metrics["coco_map"] == 1.0 and result.scores == [1.0] * len(boxes)


def _hub_style(task: str, rows: list[tuple[str, list[str]]]) -> list[Example]:
    """Examples as the ``hf`` source builds them: the first label is the suffix, all are answers."""
    spec = get_task(task)
    return [
        Example(f"images/{i}.png", spec.prefix(question=q), spec.render_suffix(a[0]), task, f"test-{i}", answers=a)
        for i, (q, a) in enumerate(rows)
    ]


def test_chartqa_list_labels_score_perfect(tmp_path: Path) -> None:
    rows = [
        ("What is the value of 2019?", ["12.5"]),
        ("Is the line rising?", ["Yes"]),
        ("Which year is lowest?", ["2011"]),
        ("What share is blue?", ["45%"]),
        ("How many bars are zero?", ["0"]),
        ("What is the difference?", ["-3.2"]),
    ]
    result = _score_targets(tmp_path, _hub_style("chartqa", rows))
    assert result.metrics == {"relaxed_accuracy": 1.0} and result.scores == [1.0] * len(rows)


def test_docvqa_answer_lists_score_perfect(tmp_path: Path) -> None:
    rows = [
        ("What is the total?", ["12.50", "12.5", "$12.50"]),
        ("Who signed?", ["Dr. Lobo", "lobo"]),
        ("What is the date?", ["3/4/1989"]),
    ]
    result = _score_targets(tmp_path, _hub_style("docvqa", rows))
    assert result.metrics == {"anls": 1.0} and result.scores == [1.0] * len(rows)


def test_vqa_rule_counts_reach_the_report(tmp_path: Path) -> None:
    records = [{"prediction": "blue", "answers": ["blue"]}, {"prediction": "red", "answers": ["red"] * 10}]
    scored = score_records("vqa", records)
    report = EvaluationReport("vqa", "test", "base", None, {"vqa/test/vqa_accuracy": 1.0}, details=scored.details)
    summary = json.loads((report.write(tmp_path) / "report.json").read_text())
    counts = {"official_10_answer_leave_one_out": 1, "few_answer_exact_match": 1}
    assert summary["details"]["vqa_rule_counts"] == counts
    assert EvaluationReport.read(tmp_path).details == scored.details
