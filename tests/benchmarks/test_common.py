"""Benchmark plumbing: interleaved timing and the scoring benchmark's equal-stats check."""

from benchmarks.common import Section, interleaved
from benchmarks.detection_scoring import measure as detection_scoring


def test_interleaved_alternates_and_keeps_the_median() -> None:
    calls: list[str] = []
    times = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=4)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"], "neither always runs first"
    assert set(times) == {"a", "b"} and all(t >= 0 for t in times.values())


def test_section_renders_a_table_with_its_ratios() -> None:
    text = Section("T", "python -m x", [["h1", "h2"], ["1", "2"]], {"ratio": "2.0x"}, ["note"]).markdown()
    assert "| h1 | h2 |\n|---|---|\n| 1 | 2 |" in text and "**ratio: 2.0x**" in text and "note" in text


def test_both_coco_backends_give_the_same_stats() -> None:
    section = detection_scoring(images=40, per_image=5, repeats=1)
    assert section.table[1][2:] == section.table[2][2:]
    assert section.ratios["largest difference in a stat / a per-class AP"] == "0.0e+00 / 0.0e+00"
