"""Sample-aware decoding (operators/sample_aware.py) gives exactly the rows of a full decode, for less work.

Each file × plan is decoded twice with PyAV, sample-aware and in full; rows (times, spans, pixels, the
video's end) must be identical, and the sample-aware run must really have skipped or seeked.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import _make

from vidseek.operators.decode import DecodeSummary, VideoDecoder
from vidseek.operators.sample_aware import SampleTimes, SkipStats, sampled_frames


def _rows(path, cfg, plan, **kw):
    s = DecodeSummary()
    chunks = list(VideoDecoder(cfg, plan, backend="pyav", **kw).decode(str(path), s))
    cat = lambda f: np.concatenate([getattr(c, f) for c in chunks])  # noqa: E731
    return {f: cat(f) for f in ("idx", "t", "t_start", "t_end", "frames")}, s


def _x264(media, name: str, src: str, *args: str):
    return _make(media, name, "-f", "lavfi", "-i", src, "-c:v", "libx264", *args, "-pix_fmt", "yuv420p")


@pytest.fixture(scope="session")
def bframes_mp4(media):
    """12 s x264 with B-frames (3, pyramid) and GOP 50: many non-reference frames to skip."""
    return _x264(media, "bframes.mp4", "testsrc2=size=160x120:rate=25:duration=12", "-bf", "3", "-g", "50")


@pytest.fixture(scope="session")
def long_gop_mp4(media):
    """120 s at 10 fps, a key frame every 2 s: room for uniform:N to seek over the gaps."""
    src = "testsrc2=size=96x64:rate=10:duration=120"
    return _x264(media, "seekable.mp4", src, "-preset", "ultrafast", "-g", "20", "-bf", "2")


CASES = [
    ("bframes_mp4", "fps:1"),
    ("bframes_mp4", "fps:4"),
    ("bframes_mp4", "uniform:5"),
    ("vfr_mp4", "fps:4"),
    ("vfr_mp4", "uniform:7"),
    ("hevc_mp4", "fps:2"),
    ("vp9_webm", "fps:2"),
    ("long_gop_mp4", "uniform:3"),  # samples 40 s apart: seeks (SEEK_GAP_S 20 s)
    ("long_gop_mp4", "fps:0.25"),
]


@pytest.mark.parametrize("fixture, plan", CASES)
def test_sample_aware_rows_equal_a_full_decode(request, pre_cfg, fixture, plan):
    path = request.getfixturevalue(fixture)
    full, s_full = _rows(path, pre_cfg, plan, sample_aware=False)
    aware, s_aware = _rows(path, pre_cfg, plan)
    assert s_aware.lost == s_full.lost == 0
    assert s_aware.duration == pytest.approx(s_full.duration, abs=1e-6)  # the video ends at the same place
    for field in ("idx", "t", "t_start", "t_end"):
        np.testing.assert_allclose(aware[field], full[field], atol=1e-9, err_msg=field)
    assert np.array_equal(aware["frames"], full["frames"])  # pixel for pixel
    print(f"{fixture} {plan}: {s_aware.skips}")
    if plan == "uniform:3":
        assert s_aware.skips.seeks >= 2  # the case is about seeking: it must have happened
    assert s_aware.skips.skipped > s_aware.skips.packets / 3  # and it really left work out


def _stats(path, samples: SampleTimes, **kw) -> tuple[SkipStats, int]:
    stats, lost = SkipStats(), [0]
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in sampled_frames(c, s, samples, lost, stats=stats, **kw))
    return stats, n


def test_non_reference_frames_no_sample_needs_are_skipped(bframes_mp4):
    stats, decoded = _stats(bframes_mp4, SampleTimes(step=1.0))
    assert stats.packets == 300 and stats.seeks == 0
    assert stats.skipped > 200 and decoded < 250  # most B-frames never decoded (they are the skipped ones)


def test_long_gaps_are_seeked_over(long_gop_mp4):
    times = (np.arange(6) + 0.5) * 20.0  # uniform:6 of 120 s: a sample every 20 s
    stats, decoded = _stats(long_gop_mp4, SampleTimes(times=times), seek_gap_s=5.0)
    assert stats.seeks >= 5 and stats.packets < 400  # of 1200: the gaps were jumped, not decoded
    full, _ = _stats(long_gop_mp4, SampleTimes(times=times), seek_gap_s=None)
    assert full.seeks == 0 and full.packets == 1200


def test_sample_times_query():
    fps = SampleTimes(step=0.5)  # fps:2: 0.25, 0.75, ...
    assert [fps.first_at_or_after(x) for x in (0.0, 0.25, 0.26, 10.0)] == [0.25, 0.25, 0.75, 10.25]
    fixed = SampleTimes(times=np.array([1.0, 3.0]))
    assert [fixed.first_at_or_after(x) for x in (0.0, 1.0, 2.0, 3.5)] == [1.0, 1.0, 3.0, float("inf")]
