"""Bounded time per video: the decoder child is killed on a stall, a runaway or a crash; the next video decodes."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from vidseek.operators.decode import VideoDecoder
from vidseek.operators.isolated_decode import DecodeLimit, IsolatedDecoder
from vidseek.operators.rows import FrameRows, VideoEnd


def _rows(out: list) -> tuple[list[FrameRows], VideoEnd]:
    *frames, end = out
    assert isinstance(end, VideoEnd) and all(isinstance(f, FrameRows) for f in frames)
    return frames, end


def test_same_rows_as_the_in_process_decoder(h264_mp4, pre_cfg):
    iso = IsolatedDecoder(pre_cfg.as_dict(), "fps:2")
    try:
        got = list(iso.iter_video(str(h264_mp4), "v"))
    finally:
        iso.close()
    want = list(VideoDecoder(pre_cfg, "fps:2").iter_video(str(h264_mp4), "v"))
    assert len(got) == len(want) and got[-1] == want[-1]  # the VideoEnd records
    for a, b in zip(got[:-1], want[:-1]):
        for k in ("video_id", "path", "idx", "t", "t_start", "t_end", "payload"):
            assert np.array_equal(getattr(a, k), getattr(b, k)), k


def test_a_stalled_decode_times_out_and_a_fresh_child_takes_the_next_video(h264_mp4, pre_cfg):
    """SIGSTOP on the child is a decode that makes no progress (a stalled mount, a blocked read)."""
    iso = IsolatedDecoder(pre_cfg.as_dict(), "fps:25", chunk_frames=1, limit=DecodeLimit(base_s=2.0, per_video_s=0.0))
    try:
        iso._ensure_child()
        stuck = iso._child.pid
        threading.Timer(0.0, os.kill, (stuck, signal.SIGSTOP)).start()
        time.sleep(0.2)
        t = time.monotonic()
        frames, end = _rows(list(iso.iter_video(str(h264_mp4), "stalled")))
        elapsed = time.monotonic() - t
        # not before the 2 s limit (a clock fact, not a speed); the upper bound only says it did not hang
        assert elapsed >= 1.9 and elapsed < 60, elapsed
        assert end.status == "failed" and end.error == (
            f"{h264_mp4}: timeout after 2 s (decoding did not finish; raise --decode-timeout if the file is fine "
            "but slow)"
        )
        frames, end = _rows(list(iso.iter_video(str(h264_mp4), "next")))
        assert end.status == "ok" and sum(len(f) for f in frames) == end.n_frames == 150
        assert iso._child.pid != stuck  # a fresh child
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{stuck}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{stuck}") or "zombie" in open(f"/proc/{stuck}/status").read().lower()
    finally:
        iso.close()


def test_the_limit_scales_with_duration(long_h264, pre_cfg):
    """10 s of video under 1 s + 0.3 s per video second: stalled after its first frame, it fails at 4 s."""
    iso = IsolatedDecoder(pre_cfg.as_dict(), "fps:25", chunk_frames=1, limit=DecodeLimit(base_s=1.0, per_video_s=0.3))
    try:
        rows = iso.iter_video(str(long_h264), "v")
        t = time.monotonic()
        first = next(rows)  # the child has probed the file: the limit now counts its duration
        os.kill(iso._child.pid, signal.SIGSTOP)
        frames, end = _rows([first, *rows])
        assert end.status == "failed" and "timeout after 4 s" in end.error, end.error
        assert 3.9 < time.monotonic() - t < 15
    finally:
        iso.close()
    assert DecodeLimit(60, 2).seconds(3600) == 7260 and DecodeLimit(60, 2).seconds(None) == 60


def test_a_crashing_decoder_is_that_videos_error(h264_mp4, pre_cfg):
    iso = IsolatedDecoder(pre_cfg.as_dict(), "fps:25", chunk_frames=1)
    try:
        rows = iso.iter_video(str(h264_mp4), "crash")
        first = next(rows)
        assert isinstance(first, FrameRows)
        os.kill(iso._child.pid, signal.SIGSEGV)  # as if FFmpeg crashed on this file
        frames, end = _rows([first, *rows])
        assert end.status == "failed" and "decoder process died (signal SIGSEGV)" in end.error
        _, end = _rows(list(iso.iter_video(str(h264_mp4), "next")))
        assert end.status == "ok"
    finally:
        iso.close()


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="decode timeout"):
        DecodeLimit(base_s=0)
    with pytest.raises(ValueError, match="decode timeout"):
        DecodeLimit(per_video_s=-1)
