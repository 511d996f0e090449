"""Caption dataset layouts (MSR-VTT JSON and 1k-A CSV, plain CSV, JSONL) and video resolution."""

import json

import pytest

from vidseek.retrieval.datasets import CaptionPair, index_pairs, load_captions, load_msrvtt_json, resolve_videos

MSRVTT = {
    "info": {"year": 2016},
    "videos": [
        {"video_id": "video0", "category": 9, "split": "train", "id": 0},
        {"video_id": "video7010", "category": 3, "split": "test", "id": 7010},
        {"video_id": "video7020", "category": 3, "split": "test", "id": 7020},
    ],
    "sentences": [
        {"caption": "a car is shown", "video_id": "video0", "sen_id": 0},
        {"caption": "a family is having conversation ", "video_id": "video7020", "sen_id": 1},
        {"caption": "people talk at a table", "video_id": "video7020", "sen_id": 2},
        {"caption": "a cartoon plays", "video_id": "video7010", "sen_id": 3},
    ],
}


@pytest.fixture
def msrvtt_json(tmp_path):
    p = tmp_path / "MSRVTT_data.json"
    p.write_text(json.dumps(MSRVTT))
    return p


def test_msrvtt_json_all_split_and_ids(msrvtt_json):
    pairs = load_captions(msrvtt_json)
    assert len(pairs) == 4 and pairs[1] == CaptionPair("video7020", "a family is having conversation")
    test = load_captions(msrvtt_json, split="test")
    assert [p.video for p in test] == ["video7020", "video7020", "video7010"]
    assert [p.caption for p in load_msrvtt_json(msrvtt_json, video_ids=["video0"])] == ["a car is shown"]
    with pytest.raises(ValueError, match="no video has split 'val'"):
        load_msrvtt_json(msrvtt_json, split="val")


def test_msrvtt_1ka_csv_and_plain_formats(tmp_path):
    p = tmp_path / "MSRVTT_JSFUSION_test.csv"
    p.write_text(
        "key,vid_key,video_id,sentence\nret0,msr7020,video7020,a family is having conversation\n"
        'ret1,msr7021,video7021,"a man, a plan"\n'
    )
    assert load_captions(p) == [
        CaptionPair("video7020", "a family is having conversation"),
        CaptionPair("video7021", "a man, a plan"),
    ]
    c = tmp_path / "caps.csv"
    c.write_text("video,caption\nclips/a.mp4,a dog\n")
    assert load_captions(c) == [CaptionPair("clips/a.mp4", "a dog")]
    j = tmp_path / "caps.jsonl"
    j.write_text('{"video": "v1", "caption": "x"}\n\n{"video": "v2", "caption": "y"}\n')
    assert [p.video for p in load_captions(j)] == ["v1", "v2"]


def test_bad_layouts(tmp_path):
    c = tmp_path / "caps.csv"
    c.write_text("file,text\na,b\n")
    with pytest.raises(ValueError, match="neither"):
        load_captions(c)
    j = tmp_path / "caps.jsonl"
    j.write_text('{"video": "v1", "caption": "x"}\n{"video": "v2"}\n')
    with pytest.raises(ValueError, match=r"caps\.jsonl:2"):
        load_captions(j)
    with pytest.raises(ValueError, match="unknown caption file type"):
        load_captions(tmp_path / "caps.txt")


def test_resolve_videos_and_missing_report(tmp_path):
    root = tmp_path / "videos"
    (root / "sub").mkdir(parents=True)
    for name in ("video0.mp4", "video1.webm", "sub/clip.avi"):
        (root / name).write_bytes(b"x")
    pairs = [
        CaptionPair("video0", "a"),
        CaptionPair("video1", "b"),
        CaptionPair("sub/clip.avi", "c"),
        CaptionPair("video0", "d"),
    ]
    out = resolve_videos(pairs, root)
    assert [p.video for p in out] == [
        str(root / "video0.mp4"),
        str(root / "video1.webm"),
        str(root / "sub/clip.avi"),
        str(root / "video0.mp4"),
    ]
    expected = r"2 of 3 videos \(dataset caps\.json\).*\['video8', 'video9'\]"
    with pytest.raises(FileNotFoundError, match=expected):
        resolve_videos(pairs[:1] + [CaptionPair("video8", "x"), CaptionPair("video9", "y")], root, source="caps.json")


def test_index_pairs_ground_truth():
    videos, gt = index_pairs([CaptionPair("b", "1"), CaptionPair("a", "2"), CaptionPair("b", "3")])
    assert videos == ["b", "a"] and gt.tolist() == [0, 1, 0]
