"""Sample-aware decoding: decode only the frames a sampling plan needs, with the same frames as a full decode.

Two savings, both exact (docs/decoding.md, "Decoding only what the samples need"):

- **Non-reference frames no sample needs are never decoded.** No other frame is predicted from them, so
  skipping them (FFmpeg's ``skip_frame=NONREF``, switched per packet) changes no pixel of any other frame.
  A packet is decoded in full when its frame can be on screen at a sample time: with a lookahead of
  ``lookahead`` packets (more than any decoder's reordering depth) the next presentation time after it is
  known, so the test "a sample time falls in [pts, next pts)" is exact on constant and variable frame rates.
- **Long gaps between samples are seeked over.** When the next sample lies more than ``seek_gap_s`` past
  everything demuxed so far (``uniform:16`` of an hour), the decoder is drained and the demuxer seeks to
  the key frame at or before that sample, instead of decoding the gap.

Operates on an open PyAV container; Ray-free.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Iterator

import av
import numpy as np

# H.264/HEVC reorder at most 16 frames; 32 packets of lookahead always see the next presentation time.
LOOKAHEAD = 32
# A seek pays a key-frame decode and a decoder drain; below a few GOPs of gap, decoding through is cheaper.
SEEK_GAP_S = 20.0


@dataclass
class SampleTimes:
    """Sample times of a plan, as a query: the first sample time at or after ``x``.

    ``step`` for ``fps:R`` (times (i + ½)/R, unbounded: windows follow the decoded frames), ``times`` for a
    fixed list (``uniform:N``), sorted.
    """

    step: float | None = None
    times: np.ndarray | None = None

    def first_at_or_after(self, x: float) -> float:
        if self.step is not None:
            i = max(0, math.ceil(x / self.step - 0.5 - 1e-9))
            return (i + 0.5) * self.step
        k = int(np.searchsorted(self.times, x - 1e-9, side="left"))
        return float(self.times[k]) if k < len(self.times) else math.inf


@dataclass
class SkipStats:
    packets: int = 0
    skipped: int = 0  # packets sent with NONREF (their frame is dropped if it is a non-reference frame)
    decoded: int = 0  # frames the decoder put out (where the CPU went)
    seeks: int = 0


def _drain(stream: "av.video.stream.VideoStream", lost: list[int]) -> Iterator["av.VideoFrame"]:
    """The frames the decoder still holds (frame threads, reordering), with the stream's time base."""
    try:
        for frame in stream.codec_context.decode(None):
            frame.time_base = stream.time_base  # a drained frame has no packet to take it from
            yield frame
    except av.error.EOFError:
        pass  # already drained: nothing lost
    except av.error.FFmpegError:
        lost[0] += 1


def sampled_frames(
    container: "av.container.InputContainer",
    stream: "av.video.stream.VideoStream",
    samples: SampleTimes,
    lost: list[int],
    *,
    stats: SkipStats | None = None,
    seek_gap_s: float | None = SEEK_GAP_S,
    lookahead: int = LOOKAHEAD,
) -> Iterator["av.VideoFrame"]:
    """Decoded frames of ``stream``, in presentation order as the decoder gives them, skipping what no
    sample needs. The frame on screen at every sample time is among them. Failed packets count in ``lost``.
    """
    stats = stats if stats is not None else SkipStats()
    walk = _SampleAwareWalk(container, stream, samples, lost, stats, seek_gap_s, lookahead)
    yield from walk.frames()


class _SampleAwareWalk:
    """One pass of :func:`sampled_frames` over a stream: the packets held back for the lookahead, the
    presentation times seen lately, the key frame spacing learnt so far (docs/decoding.md, "Decoding only what
    the samples need")."""

    def __init__(
        self,
        container: "av.container.InputContainer",
        stream: "av.video.stream.VideoStream",
        samples: SampleTimes,
        lost: list[int],
        stats: SkipStats,
        seek_gap_s: float | None,
        lookahead: int,
    ) -> None:
        self.container, self.stream, self.samples, self.lost, self.stats = container, stream, samples, lost, stats
        self.seek_gap_s, self.lookahead = seek_gap_s, lookahead
        self.cc = stream.codec_context
        self.tb = float(stream.time_base)
        self.pending: collections.deque = collections.deque()  # (packet, pts s) in decode order, not yet decoded
        self.recent: collections.deque = collections.deque(maxlen=4 * lookahead)  # presentation times seen lately
        self.frontier = -math.inf  # the latest presentation time demuxed since the last seek
        self.last_out = -math.inf  # presentation time of the last frame given out: a seek never repeats one
        self.last_key, self.longest_gop = None, math.inf  # key frame spacing, learnt while decoding
        # After the last sample, jump near the end still: the last frame's time is where the video ends.
        self.end_hint = (
            float(stream.duration * self.tb) if stream.duration else (container.duration or 0) / 1e6 or math.inf
        )
        self.packets: Iterator = iter(())

    def frames(self) -> Iterator["av.VideoFrame"]:
        self.packets = self.container.demux(self.stream)
        while True:
            packet, pts = self._next_packet()
            if packet is None:
                break
            # the next sample still to serve: none lies between what is demuxed and this packet (open GOPs)
            start = self.frontier if self.frontier > -math.inf else (pts or 0.0)
            nxt_sample = min(self.samples.first_at_or_after(start), self.end_hint)
            self._learn_key_spacing(packet, pts)
            if self._seek_worth_it(packet, pts, nxt_sample):
                # The next sample is far ahead: finish what is pending, then jump to it.
                yield from self._fresh(self._release(final=True))
                yield from self._fresh(_drain(self.stream, self.lost))
                packet, pts = self._seek(nxt_sample, pts)
                if packet is None:
                    break
            if pts is not None:
                self.recent.append(pts)
                self.frontier = max(self.frontier, pts)
            self.pending.append((packet, pts))
            yield from self._fresh(self._release(final=False))
        yield from self._fresh(self._release(final=True, at_end=True))
        yield from self._fresh(_drain(self.stream, self.lost))

    def _next_packet(self) -> tuple[object | None, float | None]:
        packet = next(self.packets, None)
        if packet is None or packet.size == 0:  # end of stream (PyAV's final empty packet flushes)
            return None, None
        return packet, (float(packet.pts * self.tb) if packet.pts is not None else None)

    def _learn_key_spacing(self, packet, pts: float | None) -> None:
        if pts is not None and packet.is_keyframe:
            if self.last_key is not None and pts > self.last_key:
                self.longest_gop = max(self.longest_gop if self.longest_gop < math.inf else 0.0, pts - self.last_key)
            self.last_key = pts

    def _seek_worth_it(self, packet, pts: float | None, nxt_sample: float) -> bool:
        # A seek lands on the key frame at or before the sample: ahead of this packet when this packet is a key
        # frame, or when the sample is more than the longest GOP seen ahead of it.
        lands_ahead = packet.is_keyframe or nxt_sample - (pts or 0.0) > 1.5 * self.longest_gop
        return self.seek_gap_s is not None and pts is not None and lands_ahead and nxt_sample - pts > self.seek_gap_s

    def _seek(self, nxt_sample: float, pts: float) -> tuple[object | None, float | None]:
        """Jump to the key frame at or before ``nxt_sample`` (back to ``pts``'s when the index overshoots);
        the first packet there, or (None, None) at the end of the stream."""
        self.container.seek(int(nxt_sample / self.tb), stream=self.stream, backward=True)
        self.stats.seeks += 1
        self.packets = self.container.demux(self.stream)
        landed, landed_pts = self._next_packet()
        if landed_pts is not None and landed_pts > nxt_sample + 1e-6:
            # The index put us past the sample: go back to this key frame, decode through from there on.
            self.container.seek(int(pts / self.tb), stream=self.stream, backward=True)
            self.packets, self.seek_gap_s = self.container.demux(self.stream), None
            landed, landed_pts = self._next_packet()
        if landed is not None:
            self.recent.clear()
            self.frontier, self.last_key = -math.inf, (landed_pts if landed.is_keyframe else None)
        return landed, landed_pts

    def _needs(self, pts: float | None) -> bool:
        if pts is None:
            return True  # no timestamp: cannot tell, decode it
        later = [p for p in self.recent if p > pts]
        nxt = min(later) if later else math.inf
        return self.samples.first_at_or_after(pts) < nxt

    def _decode(self, packet, needed: bool) -> Iterator["av.VideoFrame"]:
        self.stats.packets += 1
        if not needed:
            self.stats.skipped += 1
        self.cc.skip_frame = "DEFAULT" if needed else "NONREF"
        try:
            yield from packet.decode()
        except av.error.FFmpegError:
            self.lost[0] += 1

    def _release(self, final: bool, at_end: bool = False) -> Iterator["av.VideoFrame"]:
        # at the end of the stream, the last frames are decoded whatever the samples: the last one's
        # display end is where the video ends (docs/decoding.md, "What a sample is")
        while self.pending and (final or len(self.pending) > self.lookahead):
            packet, pts = self.pending.popleft()
            yield from self._decode(packet, at_end or self._needs(pts))

    def _fresh(self, frames: Iterator["av.VideoFrame"]) -> Iterator["av.VideoFrame"]:
        for f in frames:
            self.stats.decoded += 1
            t = f.time
            if t is not None and t <= self.last_out:
                continue
            if t is not None:
                self.last_out = t
            yield f
