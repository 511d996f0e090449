"""A query clip's frames (retrieval/clip_frames.py): decoding stops past the part searched with, a frame cap
stops it too, and a ``uniform:N`` store's plan gives a part N samples of its own."""

from __future__ import annotations

import numpy as np
import pytest

import vidseek.retrieval.clip_frames as cf
from vidseek.operators.isolated_decode import IsolatedDecoder


class CountingDecoder(IsolatedDecoder):
    """The real decoder, counting the chunks read from it and remembering itself (to check it was closed)."""

    made: list["CountingDecoder"] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read = 0
        CountingDecoder.made.append(self)

    def iter_video(self, *args, **kwargs):
        for item in super().iter_video(*args, **kwargs):
            self.read += 1
            yield item


@pytest.fixture
def counting(monkeypatch):
    CountingDecoder.made = []
    monkeypatch.setattr(cf, "IsolatedDecoder", CountingDecoder)
    monkeypatch.setattr(cf, "CHUNK_FRAMES", 2)  # 10 s at fps:2: ten chunks and the end row
    return CountingDecoder.made


def test_decoding_stops_after_the_part_and_the_decoder_is_closed(long_h264, tiny_clip, counting):
    table, pixels = cf.clip_frames(tiny_clip, long_h264, "fps:2", start=1.0, end=3.0)
    assert len(table) == 4 and np.all(table.t_start >= 1.0) and np.all(table.t_end <= 3.0)
    (dec,) = counting
    assert dec.read == 4  # the chunk with samples at 3.0 and 3.5 s is the last one read, of 11 items
    assert dec._child is None  # killed: it decodes nothing more
    whole, _ = cf.clip_frames(tiny_clip, long_h264, "fps:2")
    assert len(whole) == 20 and counting[1].read == 11  # the whole file: every chunk, then its end row


def test_a_frame_cap_stops_decoding_with_a_clear_error(long_h264, tiny_clip, counting):
    with pytest.raises(ValueError, match=r"more than 5 sampled frames in the whole clip; search with a shorter"):
        cf.clip_frames(tiny_clip, long_h264, "fps:2", max_frames=5)
    assert counting[0].read == 3  # the third chunk passed the cap: nothing after it was read
    table, _ = cf.clip_frames(tiny_clip, long_h264, "fps:2", start=2.0, end=4.0, max_frames=5)
    assert len(table) == 4  # under the cap: the part's frames


@pytest.mark.parametrize(
    "start, end, n",
    [(2.0, 6.0, (8, 8)), (1.3, 4.1, (8, 9)), (6.0, None, (8, 8)), (None, 4.0, (8, 8)), (None, None, (8, 8))],
)
def test_a_uniform_store_plan_samples_the_part_n_times(long_h264, tiny_clip, start, end, n):
    table, _ = cf.clip_frames(tiny_clip, long_h264, "uniform:8", start=start, end=end)
    assert n[0] <= len(table) <= n[1], (start, end, table.t_start)
    lo, hi = start or 0.0, end or 10.0
    assert np.all(table.t_start >= lo) and np.all(table.t_end <= hi + 1e-3)
    assert table.t_end[-1] - table.t_start[0] == pytest.approx(hi - lo, abs=(hi - lo) / 8)


def test_the_plan_of_a_part(long_h264):
    assert cf.clip_sampling("uniform:8", long_h264, 2.0, 6.0) == "fps:2"
    assert cf.clip_sampling("uniform:8", long_h264, 6.0, None) == "fps:2"  # up to the file's 10 s
    assert cf.clip_sampling("uniform:8", long_h264, None, None) == "uniform:8"
    assert cf.clip_sampling("fps:1", long_h264, 2.0, 6.0) == "fps:1"
    assert cf.clip_sampling("uniform:8", long_h264, 20.0, None) == "uniform:8"  # past the end: no sample there


def test_messages_name_the_part_in_words_for_any_caller(long_h264, tiny_clip):
    with pytest.raises(ValueError, match=r"no sampled frame from 100 s to the clip's end") as e:
        cf.clip_frames(tiny_clip, long_h264, "fps:2", start=100.0)
    assert "None" not in str(e.value) and "--" not in str(e.value)
    with pytest.raises(ValueError, match=r"the clip's end \(2 s\) must be after its start \(5 s\)"):
        cf.clip_frames(tiny_clip, long_h264, "fps:2", start=5.0, end=2.0)


def test_a_clip_over_its_time_limit_fails_with_a_hint_for_any_caller(long_h264, tiny_clip):
    from vidseek.operators.decode import DecodeError
    from vidseek.operators.isolated_decode import DecodeLimit

    with pytest.raises(DecodeError, match="timeout after 0 s") as e:  # the fault: no decode ends in 1 ms
        cf.clip_frames(tiny_clip, long_h264, "fps:2", limit=DecodeLimit(0.001, 0.0))
    assert "search with a shorter part of it, or a shorter file" in str(e.value) and "--" not in str(e.value)
