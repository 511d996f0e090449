"""Moment accuracy (retrieval/moments.py), the timed-caption datasets that feed it, and the testbed's truth."""

from __future__ import annotations

import json
import math

import pytest

from vidseek.apps.testbed.world import query_spans
from vidseek.retrieval.datasets import CaptionPair, load_captions
from vidseek.retrieval.moments import distance, iou, moment_metrics
from vidseek.retrieval.search import Hit


def hit(video: str, moment: tuple[float, float], best_t: float) -> Hit:
    return Hit(video_id=video, path=f"/{video}.mp4", score=1.0, moment=moment, best_t=best_t)


def test_iou_and_distance():
    assert iou((0, 2), (1, 3)) == pytest.approx(1 / 3)
    assert iou((0, 1), (2, 3)) == 0.0 and iou((1, 2), (1, 2)) == 1.0
    assert distance(5.0, [(1, 2), (6, 7)]) == 1.0 and distance(1.5, [(1, 2)]) == 0.0


def test_moment_metrics_by_hand():
    truth = [(10.0, 14.0)]
    results = [
        [hit("a", (11, 13), 12.0)],  # top 1, inside: overlap, error 0, IoU 0.5 -> counts
        [hit("x", (0, 1), 0.5), hit("b", (15, 16), 15.5)],  # in top 10, misses the span by 1.5 s
        [hit("c", (9, 20), 16.0)],  # top 1, overlaps, IoU 4/11 < 0.5, error 2 s
        [hit("x", (0, 1), 0.5)],  # its video is not in the top 10
        [hit("e", (0, 1), 0.5)],  # no truth span: not counted at all
    ]
    m = moment_metrics(results, ["a", "b", "c", "d", "e"], [truth, truth, truth, truth, ()])
    assert m["n_moments"] == 4 and m["in_top10"] == 75.0 and m["overlap|top10"] == pytest.approx(200 / 3)
    assert m["overlap@10"] == 50.0  # a and c
    assert m["median_err_s"] == 1.5  # of 0, 1.5, 2
    assert m["R@1 IoU≥0.5"] == 25.0  # a only
    assert math.isnan(moment_metrics([[]], ["a"], [truth])["median_err_s"])


def test_timed_captions_csv_and_jsonl(tmp_path):
    c = tmp_path / "sta.csv"
    c.write_text("video,caption,start,end\nv1.mp4,a person opens a door,1.5,4.0\n")
    assert load_captions(c) == [CaptionPair("v1.mp4", "a person opens a door", ((1.5, 4.0),))]
    j = tmp_path / "sta.jsonl"
    j.write_text(json.dumps({"video": "v2", "caption": "x", "start": 0, "end": 2.5}) + "\n")
    assert load_captions(j)[0].spans == ((0.0, 2.5),)
    plain = tmp_path / "plain.csv"
    plain.write_text("video,caption\nv1,y\n")
    assert load_captions(plain)[0].spans == ()
    bad = tmp_path / "bad.csv"
    bad.write_text("video,caption,start,end\nv1,y,4,2\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: need 0 <= start < end"):
        load_captions(bad)
    bad.write_text("video,caption,start,end\nv1,y,soon,2\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: start/end must be seconds"):
        load_captions(bad)


def test_testbed_truth_spans_come_from_measured_presence():
    track = lambda size, colour, shape, present: {"size": size, "colour": colour, "shape": shape, "present": present}  # noqa: E731
    manifest = {
        "fps": 4,
        "clips": [
            {"video": "b.mp4", "target": 1, "tracks": [track("big", "red", "ring", [[0, 39]]), track("small", "blue", "cross", [[8, 11]])]},
            {"video": "c.mp4", "tracks": [track("big", "red", "ring", [[0, 19]]), track("small", "blue", "cross", [[12, 39]])]},
        ],
    }  # fmt: skip
    brief = {"family": "brief", "video": "b.mp4", "query": "a small blue cross"}
    assert query_spans(manifest, brief) == ((2.0, 3.0),)  # frames 8..11 at 4 fps
    content = {"family": "content", "video": "c.mp4", "objects": ["a big red ring", "a small blue cross"]}
    assert query_spans(manifest, content) == ((3.0, 5.0),)  # both on screen: frames 12..19
    assert query_spans(manifest, {"family": "order", "video": "c.mp4"}) == ()
