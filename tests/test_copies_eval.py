"""The copy table's plumbing at a tiny size (apps/testbed/copies_eval.py): the copy set is built as described,
indexed by the real job, and every measurement comes back with its counts and fields. The quality goals are
measured by the full run (apps/testbed/README.md), not here."""

from __future__ import annotations

import json

import pytest
from conftest import FFMPEG

from vidseek.apps.testbed.copies_eval import (
    FULL_COPIES,
    build_copy_set,
    evaluate_copy_set,
    format_table,
    holders_of,
    iou,
    true_pairs,
)
from vidseek.operators.decode import probe


@pytest.fixture(scope="module")
def copy_set(tmp_path_factory):
    if FFMPEG is None:
        pytest.skip("ffmpeg binary not installed")
    root = tmp_path_factory.mktemp("copyset")
    truth = build_copy_set(root, seed=3, n_sources=2, world_a=(2, 1, 0), world_b=(1, 0, 0), brief_s=20.0)
    return root, truth


def test_the_copy_set_holds_what_the_truth_says(copy_set):
    root, truth = copy_set
    assert truth == json.loads((root / "truth.json").read_text())
    assert len(truth["groups"]) == 2
    for src, members in truth["groups"].items():
        assert members[0] == src and len(members) == 2 + len(FULL_COPIES)  # source, five copies, the excerpt
        for m in members:
            assert (root / "gallery" / m).exists()
        info = {m.rsplit("_", 1)[-1]: probe(str(root / "gallery" / m)) for m in members[1:]}
        assert (info["scale.mp4"].width, info["crop.mp4"].width) == (144, 86)  # 1.5 × 96; 90 % of 96, even
    for e in truth["excerpts"]:
        d = probe(str(root / "gallery" / e["video"])).duration
        assert d == pytest.approx(e["video_duration"], abs=0.3)
        assert e["in_video"][1] - e["in_video"][0] == e["in_source"][1] - e["in_source"][0] == 10.0
    assert len(true_pairs(truth)) == 2 * 21  # 7 videos per group: 21 pairs each
    assert len(truth["images"]) == 4 + 1  # one per clip of worlds A (2 content + 1 order pair) and B
    assert all((root / "images" / q["image"]).exists() for q in truth["images"])


def test_holders_and_iou():
    truth = {
        "groups": {"a/x.mp4": ["a/x.mp4", "copies/x_crf.mp4", "copies/x_excerpt.mp4"]},
        "excerpts": [{"video": "copies/x_excerpt.mp4", "source": "a/x.mp4", "in_source": [2.0, 12.0]}],
    }
    assert holders_of({"video": "a/x.mp4", "t": 1.0}, truth) == {"a/x.mp4", "copies/x_crf.mp4"}
    assert holders_of({"video": "a/x.mp4", "t": 5.0}, truth) == {"a/x.mp4", "copies/x_crf.mp4", "copies/x_excerpt.mp4"}
    assert holders_of({"video": "b/y.mp4", "t": 5.0}, truth) == {"b/y.mp4"}
    assert iou((0, 10), (5, 15)) == pytest.approx(1 / 3) and iou((0, 1), (2, 3)) == 0.0


@pytest.mark.ray
def test_the_evaluation_reports_every_measurement(copy_set):
    root, truth = copy_set
    result = evaluate_copy_set(root, str(root / "store.db"), min_seconds=(5.0, 8.0))
    n_videos = sum(1 for _ in (root / "gallery").rglob("*.mp4"))
    assert result["videos"] == n_videos
    assert [r["min_seconds"] for r in result["copies"]] == [5.0, 8.0]
    for row in result["copies"]:
        assert row["true"] == 42 and row["found"] >= row["false_positives"] >= row["false_order_partners"] >= 0
        assert 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1
        assert set(row["recall_by_kind"]) == {*FULL_COPIES, "excerpt"}
        assert set(row["excerpt_iou"]) == {"mean", "min", "in_video", "in_source"}
    assert set(result["images"]) == {"default", "max"}
    assert all(r["queries"] == len(truth["images"]) for r in result["images"].values())
    assert result["clips"]["queries"] == len(truth["excerpts"])
    table = format_table(result)
    assert table.count("\n| 5 |") == 1 and "| default |" in table and "| search_clip |" in table
