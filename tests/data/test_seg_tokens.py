"""Segmentation text: render, tolerant parse, drops counted."""

from __future__ import annotations

import pytest

from data.seg_tokens import decode_objects, encode_objects

CODES = list(range(16))


def test_round_trip_within_one_bin() -> None:
    text = encode_objects([[10, 20, 50, 60, "circle", CODES]], 100, 200)
    assert text.startswith("<loc0102><loc0102><loc0307><loc0512><seg000><seg001>")
    assert text.endswith("<seg015> circle")
    (obj,), dropped = decode_objects(text, 100, 200)
    assert dropped == 0 and obj.label == "circle" and obj.codes == tuple(CODES)
    assert abs(obj.x0 - 10) <= 100 / 1024 and abs(obj.y1 - 60) <= 200 / 1024


def test_whitespace_between_blocks_is_accepted() -> None:
    text = "<loc0000> <loc0000> <loc0512> <loc0512> " + " ".join(f"<seg{c:03d}>" for c in CODES) + " cat"
    objects, dropped = decode_objects(text, 64, 64)
    assert [o.label for o in objects] == ["cat"] and dropped == 0


def test_bad_objects_are_dropped_and_counted() -> None:
    good = encode_objects([[0, 0, 32, 32, "cat", CODES]], 64, 64)
    short = "<loc0000><loc0000><loc0100><loc0100>" + "<seg001>" * 15 + " cat"
    out_of_range = "<loc0000><loc0000><loc0100><loc0100>" + "<seg200>" * 16 + " cat"
    inverted = "<loc0500><loc0000><loc0100><loc0100>" + "<seg001>" * 16 + " cat"
    unknown = encode_objects([[0, 0, 10, 10, "dog", CODES]], 64, 64)
    text = " ; ".join([good, short, out_of_range, inverted, unknown, good])
    objects, dropped = decode_objects(text, 64, 64, labels=["cat"])
    assert len(objects) == 1 and dropped == 5


def test_encode_refuses_wrong_codes() -> None:
    with pytest.raises(ValueError, match="16 mask codes"):
        encode_objects([[0, 0, 1, 1, "cat", [1] * 15]], 8, 8)
    with pytest.raises(ValueError, match="16 mask codes"):
        encode_objects([[0, 0, 1, 1, "cat", [128] * 16]], 8, 8)
