"""Video decoder operator: sampled frames, already resized to the encoder's input, in bounded chunks.

Two backends with the same pixels: PyAV, sample-aware (operators/sample_aware.py: non-reference frames no
sample needs are skipped, long gaps seeked over), first where there are such frames to skip (``pyav_first``);
decord first elsewhere; each the other's fallback when it cannot open or decode a file. PyAV also for files
with rotation metadata, for ``keyframes`` and without the loop filter (docs/decoding.md). One bad packet
loses only the frames it breaks: a failed ``get_batch`` is retried frame by frame. Bad input never raises out of the operator: it becomes an end record with ``status="failed"``.

Output, one video after another (types in operators/rows.py): ``FrameRows`` chunks of at most
``chunk_frames`` uint8 frames [n, S, S, 3] (S from the model's preprocess config), then exactly one
``VideoEnd`` per video — ``status`` ok or failed, with the reason naming the file.
"""

from __future__ import annotations

import fractions
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from vidseek.operators.ffmpeg_log import quiet_decord, quiet_ffmpeg
from vidseek.operators.preprocess import PreprocessConfig, finish_frames, resize_plan
from vidseek.operators.remote_source import (
    RemoteError,
    StorageOptions,
    describe,
    is_url,
    media_input,
    object_info,
    object_video_id,
)
from vidseek.operators.rows import FrameRows, VideoEnd, to_batch
from vidseek.operators.sample_aware import SampleTimes, SkipStats, sampled_frames
from vidseek.operators.sampling import SamplingPlan

log = logging.getLogger(__name__)


# What `auto` decodes with PyAV first, by measurement (bench/decode_efficiency.py, bench/RESULTS.md): where
# sample-aware decoding has non-reference frames to skip — H.264/HEVC with B-frames, AV1 (its decoders skip
# non-reference frames too) — it beats decord per sampled frame; H.264 without B-frames and VP9 have none,
# and decord is faster there. The other backend is the fallback.
PYAV_FIRST_WITH_B_FRAMES = frozenset({"h264", "hevc"})
PYAV_FIRST = frozenset({"av1", "libdav1d", "libaom-av1"})


def pyav_first(info: "Probe") -> bool:
    """Whether `auto` tries PyAV before decord for this stream (see PYAV_FIRST)."""
    return info.codec in PYAV_FIRST or (info.codec in PYAV_FIRST_WITH_B_FRAMES and info.b_frames)


def check_backend(backend: str, plan: SamplingPlan) -> None:
    """Refuse a backend choice that cannot work, before any video: ValueError saying what to pass."""
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"unknown decoder backend {backend!r}: use auto, decord or pyav")
    if backend == "decord" and plan.kind == "keyframes":
        # decord's key-frame index counts packets in decode order: on B-frame files it names the wrong frames
        raise ValueError("keyframes sampling decodes with PyAV only: use --decoder auto (or pyav) with it")


class DecodeError(Exception):
    """A video that cannot be decoded; ``str(e)`` names the file and the reason."""


@dataclass
class Probe:
    width: int
    height: int
    duration: float | None
    rotation: int = 0
    codec: str = ""  # the decoder's name
    b_frames: bool = False  # the stream reorders frames (B-frames)
    cut_start: bool = False  # packets before time 0: an edit list hides the start (a stream-copy cut)


@dataclass
class FrameChunk:
    idx: np.ndarray  # [n] int
    t: np.ndarray  # [n] float, decoded frame's time
    t_start: np.ndarray  # [n] sample span
    t_end: np.ndarray
    frames: np.ndarray  # [n, S, S, 3] uint8


@dataclass
class DecodeSummary:
    decoder: str = ""
    duration: float = 0.0
    n_frames: int = 0
    lost: int = 0
    notes: list[str] = field(default_factory=list)
    skips: SkipStats = field(default_factory=SkipStats)  # what sample-aware decoding left out


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def videos_of(batch: dict) -> Iterator[tuple[str, str, str]]:
    """(path, video_id, extra) of each input row (``video_id`` defaults to the path, ``extra`` to "")."""
    paths = [str(p) for p in batch["path"]]
    ids = [str(v) for v in batch.get("video_id", paths)]
    extras = [str(x) for x in batch.get("extra", [""] * len(paths))]
    return zip(paths, ids, extras)


def check_file(path: str, storage_options: StorageOptions | None = None) -> None:
    """Refuse what is not a regular, readable, non-empty file, before any decoder opens (and blocks on) it.
    A URL: the object must exist, be readable with these credentials, and not be empty (one HEAD request)."""
    if is_url(path):
        try:
            obj = object_info(path, storage_options)
        except RemoteError as e:
            raise DecodeError(str(e)) from None
        if obj.size == 0:
            raise DecodeError(f"{path}: empty object (0 bytes)")
        return
    p = Path(path)
    if not p.exists():
        raise DecodeError(f"{path}: file not found")
    if p.is_dir():
        raise DecodeError(f"{path}: is a directory, not a video file")
    mode = p.stat().st_mode
    for test, what in _SPECIAL_FILES:
        if test(mode):  # opening a FIFO blocks until a writer appears; a device streams forever
            raise DecodeError(f"{path}: is {what}, not a video file (index regular files only)")
    if not os.access(p, os.R_OK):
        raise DecodeError(f"{path}: permission denied (make the file readable)")
    if p.stat().st_size == 0:
        raise DecodeError(f"{path}: empty file (0 bytes)")


def probe(path: str, storage_options: StorageOptions | None = None) -> Probe:
    """Container metadata via PyAV; raises DecodeError when the file holds no decodable video stream."""
    quiet_ffmpeg()
    try:
        with media_input(path, storage_options) as src, av.open(src) as c:
            if not c.streams.video:
                raise DecodeError(f"{path}: no video stream (audio-only or not a video)")
            if c.format.name == "image2" or c.format.name.endswith("_pipe"):  # FFmpeg's still-image demuxers
                raise DecodeError(f"{path}: is a still image ({c.format.name}), not a video")
            s = c.streams.video[0]
            w, h = s.codec_context.width, s.codec_context.height
            if not w or not h:
                raise DecodeError(f"{path}: video stream has no frame size (corrupt header)")
            duration = None
            if s.duration and s.time_base:
                duration = float(s.duration * s.time_base)
            elif c.duration:
                duration = c.duration / 1_000_000
            rotation, cut = 0, False
            try:
                for packet in c.demux(s):
                    cut = cut or (packet.pts is not None and packet.pts < 0)
                    frames = packet.decode()
                    if frames:
                        break
                else:
                    frames = s.codec_context.decode(None)  # a file of one or two frames: they are still held
                if frames:
                    rotation = int(getattr(frames[0], "rotation", 0) or 0) % 360
            except av.error.FFmpegError:
                pass  # decoding problems are found (and reported) by the real decode below
            b_frames = bool(s.codec_context.has_b_frames)
            return Probe(w, h, duration, rotation, s.codec_context.name, b_frames, cut)
    except DecodeError:
        raise
    except RemoteError as e:
        raise DecodeError(str(e)) from None
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise DecodeError(f"{path}: not a readable video ({type(e).__name__}: {e})") from e
    except Exception as e:
        if is_url(path):  # a range read failed (connection reset, access revoked): the object's error
            raise DecodeError(f"{path}: reading the object failed ({describe(e, storage_options)})") from None
        raise


def _rotate(frames: np.ndarray, rotation: int) -> np.ndarray:
    """Apply display rotation (degrees counter-clockwise, PyAV convention) to [n, h, w, 3]."""
    k = {90: 1, 180: 2, 270: 3}.get(rotation, 0)
    return np.rot90(frames, k=k, axes=(1, 2)) if k else frames


def _pick_frames(frame_starts: np.ndarray, sample_t: np.ndarray) -> np.ndarray:
    """Index of the frame on screen at each sample time: last frame starting at or before t."""
    idx = np.searchsorted(frame_starts, sample_t, side="right") - 1
    return np.clip(idx, 0, len(frame_starts) - 1)


class _RgbScaler:
    """``frame -> [h, w, 3]`` uint8 RGB at ``size`` through FFmpeg's ``scale`` filter, as decord does it: both
    backends give the same pixels (tests/test_decode.py), so the choice between them never moves quality."""

    def __init__(self, size: tuple[int, int]):
        self.size = size
        self._key: tuple | None = None

    def _build(self, frame: "av.VideoFrame") -> None:
        g = av.filter.Graph()
        tb = frame.time_base or fractions.Fraction(1, 1000)
        src = g.add_buffer(width=frame.width, height=frame.height, format=frame.format, time_base=tb)
        scale = g.add("scale", f"{self.size[0]}:{self.size[1]}")
        rgb = g.add("format", "rgb24")
        sink = g.add("buffersink")
        src.link_to(scale)
        scale.link_to(rgb)
        rgb.link_to(sink)
        g.configure()
        self._graph = g

    def __call__(self, frame: "av.VideoFrame") -> np.ndarray:
        key = (frame.width, frame.height, frame.format.name)
        if key != self._key:  # first frame, or the stream changed size or format mid-way
            self._build(frame)
            self._key = key
        self._graph.push(frame)
        return self._graph.pull().to_ndarray()


class _DecordBackend:
    name = "decord"

    def __init__(self, path: str, size: tuple[int, int], threads: int):
        import decord  # imported lazily: PyAV-only use must not need it

        quiet_decord(decord)  # FFmpeg's per-packet chatter; losses are counted from decode errors
        self._decord = decord
        self._path = path
        self._open_kwargs = dict(ctx=decord.cpu(0), width=size[0], height=size[1], num_threads=threads)
        self.vr = decord.VideoReader(path, **self._open_kwargs)
        n = len(self.vr)
        if n == 0:
            raise DecodeError("its frame index is empty")
        ts = self.vr.get_frame_timestamp(np.arange(n))  # [n, 2] start/end seconds
        self.starts = ts[:, 0].astype(np.float64)
        self.duration = float(ts[-1, 1]) if ts[-1, 1] > 0 else float(ts[-1, 0])

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frames for ``indices`` and a keep-mask; a bad packet costs only its own frames.

        After a decode error decord's reader can fail frames it would decode from a fresh start (measured on
        tests/test_decode.py's corrupt clip: ~1 run in 6 also lost 15-17 good frames before the damage, even
        single-threaded). So the per-frame retry runs on a reopened reader, and the first failure of each
        stretch of failures is retried once on another fresh one; a stretch of truly bad frames costs one reopen.
        """
        try:
            return self.vr.get_batch(list(indices)).asnumpy(), np.ones(len(indices), bool)
        except self._decord.DECORDError:
            pass
        self._reopen()
        out, ok = [], np.zeros(len(indices), bool)
        failing = False  # inside a stretch of frames that failed on a fresh reader
        for i, j in enumerate(indices):
            frame = self._frame(int(j))
            if frame is None and not failing:
                self._reopen()
                frame = self._frame(int(j))
            failing = frame is None
            if frame is not None:
                out.append(frame)
                ok[i] = True
        return (np.stack(out) if out else np.zeros((0, 1, 1, 3), np.uint8)), ok

    def _frame(self, j: int) -> np.ndarray | None:
        try:
            return self.vr.get_batch([j]).asnumpy()[0]
        except self._decord.DECORDError:
            return None

    def _reopen(self) -> None:
        self.vr = self._decord.VideoReader(self._path, **self._open_kwargs)


def _pyav_frames(
    path: str,
    lost: list[int],
    *,
    keyframes_only: bool = False,
    samples: SampleTimes | None = None,
    skip_loop_filter: bool = False,
    stats: SkipStats | None = None,
    threads: int = 0,
    storage_options: StorageOptions | None = None,
) -> Iterator["av.VideoFrame"]:
    """Decoded frames in order; packets that fail to decode are counted in ``lost`` and skipped.

    With ``samples``, only what those sample times need (operators/sample_aware.py): the same frames on
    screen at every sample time as a full decode, for less CPU.
    """
    quiet_ffmpeg()
    with media_input(path, storage_options) as src, av.open(src) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        s.thread_count = threads  # 0: FFmpeg picks (one per core); the index job runs one decoder per core
        if skip_loop_filter:  # an approximation (reference frames decode unfiltered): off unless asked for
            s.codec_context.options = {"skip_loop_filter": "all"}
        if samples is not None and not keyframes_only:
            yield from sampled_frames(c, s, samples, lost, stats=stats)
            return
        if keyframes_only:
            s.codec_context.skip_frame = "NONKEY"
        for packet in c.demux(s):
            if keyframes_only and packet.size and not packet.is_keyframe:
                continue  # some decoders (VP9) ignore skip_frame: never hand them non-key packets
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                lost[0] += 1
                continue
            yield from frames
        try:
            yield from s.codec_context.decode(None)  # flush delayed frames
        except av.error.EOFError:
            pass  # demux's final empty packet already flushed the decoder: nothing lost
        except av.error.FFmpegError:
            lost[0] += 1


class VideoDecoder:
    """Operator: ``{"path": [...], "video_id": [...]}`` -> yields row batches (see module docstring).

    Args:
        preprocess: the encoder's preprocess config (input size and resize mode come from the model).
        sampling: ``fps:R`` | ``uniform:N`` | ``keyframes``.
        chunk_frames: most frames held per output batch (bounded memory for long videos).
        backend: ``auto`` (the faster per stream, the other as fallback: ``pyav_first``) | ``decord`` | ``pyav``.
        threads: decoder threads per video (1 fits many parallel actors on few cores).
        sample_aware: PyAV decodes only what the samples need (operators/sample_aware.py; same frames).
        skip_loop_filter: PyAV skips the loop filter: less CPU, slightly different pixels (docs/decoding.md).
        storage_options: fsspec options (credentials, endpoint) for paths that are URLs
            (operators/remote_source.py); a URL decodes with PyAV only, over range reads.
        verify_objects: a URL's ``video_id`` must still be its object's (``object_video_id``): an object
            changed since the job listed it fails, rather than have the new content stored as the old id.
    """

    def __init__(
        self,
        preprocess: PreprocessConfig | dict,
        sampling: str | SamplingPlan = "fps:1",
        chunk_frames: int = 32,
        backend: str = "auto",
        threads: int = 1,
        sample_aware: bool = True,
        skip_loop_filter: bool = False,
        storage_options: StorageOptions | dict | None = None,
        verify_objects: bool = False,
    ):
        self.cfg = preprocess if isinstance(preprocess, PreprocessConfig) else PreprocessConfig(**preprocess)
        self.plan = SamplingPlan.parse(sampling)
        if chunk_frames < 1:
            raise ValueError("chunk_frames must be ≥ 1")
        check_backend(backend, self.plan)
        self.chunk_frames = chunk_frames
        self.backend = backend
        self.threads = threads
        self.sample_aware = sample_aware
        self.skip_loop_filter = skip_loop_filter
        self.storage = StorageOptions.parse(storage_options)
        self.verify_objects = verify_objects

    # -- public API -------------------------------------------------------------------------------
    def __call__(self, batch: dict) -> Iterator[dict]:
        """Stage batches (operators/rows.py) of every input row's video."""
        for path, vid, extra in videos_of(batch):
            for item in self.iter_video(path, vid, extra):
                yield to_batch(*((item, []) if isinstance(item, FrameRows) else (self.no_frames(), [item])))

    def no_frames(self) -> FrameRows:
        return FrameRows.empty((self.cfg.size, self.cfg.size, 3), np.uint8)

    def iter_video(self, path: str, video_id: str, extra: str = "") -> Iterator[FrameRows | VideoEnd]:
        """One video: ``FrameRows`` chunks, then its ``VideoEnd``. Never raises for bad input."""
        summary = DecodeSummary()
        status, error = "ok", ""
        try:
            if self.verify_objects and is_url(path):
                self._check_object_id(path, video_id)
            for c in self.decode(path, summary):
                yield FrameRows.of_video(video_id, path, c.idx, c.t, c.t_start, c.t_end, c.frames)
            if summary.n_frames == 0:
                raise DecodeError(f"{path}: no decodable frames")
        except DecodeError as e:
            status, error = "failed", str(e)
        except Exception as e:  # noqa: BLE001 — any decoder crash on one file is that file's error record
            status, error = "failed", f"{path}: decoder error ({type(e).__name__}: {e})"
            if is_url(path):  # a read that failed mid-object (connection reset, access revoked)
                error = f"{path}: reading the object failed ({describe(e, self.storage)})"
        yield VideoEnd(
            video_id,
            path,
            status,
            error,
            summary.n_frames,
            float(summary.duration),
            summary.lost,
            summary.decoder,
            extra,
        )

    def _check_object_id(self, url: str, video_id: str) -> None:
        try:
            now = object_video_id(object_info(url, self.storage), url)
        except RemoteError as e:
            raise DecodeError(str(e)) from None
        if now != video_id:
            raise DecodeError(f"{url}: the object changed since the job listed it; run the job again to index it")

    def decode(self, path: str, summary: DecodeSummary | None = None) -> Iterator[FrameChunk]:
        """Frame chunks for one video; raises DecodeError (with the file and reason) on bad input.

        A backend that gives no frame for a file that probes as a video hands it to the other backend,
        whatever it lost; the video fails only when every backend gave nothing, and the error says what
        each one did (docs/decoding.md, "Two backends, one fallback").
        """
        summary = summary if summary is not None else DecodeSummary()
        check_file(path, self.storage)
        if is_url(path) and self.backend == "decord":
            raise DecodeError(f"{path}: decord reads local files only; use --decoder auto or pyav for URLs")
        info = probe(path, self.storage)
        order = ["pyav"] if is_url(path) else self._backend_order(info)  # PyAV reads a stream; decord a path
        outcomes: list[str] = []
        for i, name in enumerate(order):
            lost_before = summary.lost
            produced = False
            try:
                for chunk in self._backend_chunks(name, path, info, summary):
                    produced = True
                    yield chunk
            except (DecodeError, av.error.FFmpegError) as e:
                if produced:
                    raise  # frames already went downstream: this video's error, not another backend's turn
                outcomes.append(f"{name}: {_reason(e, path)}")
            else:
                if produced:
                    return
                outcomes.append(f"{name}: decoded no frames ({summary.lost - lost_before} lost)")
            if i + 1 < len(order):
                summary.notes.append(f"{outcomes[-1]}; used {order[i + 1]}")
                summary.lost = lost_before  # the fallback's losses are the video's, not the first try's
        raise DecodeError(f"{path}: no decodable frames ({'; '.join(outcomes)})")

    def _backend_chunks(self, name: str, path: str, info: Probe, summary: DecodeSummary) -> Iterator[FrameChunk]:
        size = resize_plan(info.width, info.height, self.cfg)
        if name == "pyav":
            if info.rotation in (90, 270):
                size = resize_plan(info.height, info.width, self.cfg)[::-1]  # decode size before rotating
            return self._decode_pyav(path, info, size, summary)
        # decord2 applies the display rotation itself: it takes the displayed (rotated) size
        if info.rotation in (90, 270):
            size = resize_plan(info.height, info.width, self.cfg)
        try:
            backend = _DecordBackend(path, size, self.threads)
        except DecodeError:
            raise
        except Exception as e:  # noqa: BLE001 — decord raises assorted errors on files it rejects
            raise DecodeError(f"cannot open it ({type(e).__name__}: {e})") from e
        return self._decode_decord(backend, info, summary)

    def _backend_order(self, info: Probe) -> list[str]:
        """Backends to try, best first: the faster per codec (PYAV_FIRST), the other as the fallback."""
        if self.backend != "auto":
            return [self.backend]
        if self.plan.kind == "keyframes" or info.rotation != 0 or self.skip_loop_filter:
            return ["pyav"]  # what only PyAV does: skip non-key frames, apply rotation, skip the loop filter
        # decord ignores an edit list that hides the start: its frames up to the next key frame come from
        # later in the video (docs/decoding.md, "Where the backends differ")
        return ["pyav", "decord"] if pyav_first(info) or info.cut_start else ["decord", "pyav"]

    def _plan_duration(self, info: Probe, frames_end: float | None) -> float:
        """The duration ``uniform:N`` divides: the container's (known before decoding, so PyAV can seek to
        the samples), else where the frames end. ``fps:R`` windows always follow the frames."""
        if self.plan.kind == "uniform" and info.duration:
            return info.duration
        if frames_end is None:
            raise DecodeError("unknown duration")
        return frames_end

    # -- backends ---------------------------------------------------------------------------------
    def _decode_decord(self, b: _DecordBackend, info: Probe, summary: DecodeSummary) -> Iterator[FrameChunk]:
        summary.decoder, summary.duration = "decord", b.duration
        t, t0, t1 = self.plan.spans(self._plan_duration(info, b.duration))
        picked = _pick_frames(b.starts, t)
        keep = np.r_[True, picked[1:] != picked[:-1]]  # a frame shown for several samples is kept once
        sample_idx = np.flatnonzero(keep)
        t1 = np.r_[t1[sample_idx[1:] - 1], t1[-1]] if len(sample_idx) > 1 else t1[-1:]
        t1[-1] = b.duration  # the last sample's span ends where the video ends
        picked, t0 = picked[sample_idx], t0[sample_idx]
        for lo in range(0, len(picked), self.chunk_frames):
            sl = slice(lo, lo + self.chunk_frames)
            frames, ok = b.read(picked[sl])
            summary.lost += int((~ok).sum())
            if not ok.any():
                continue
            frames = finish_frames(frames, self.cfg)
            summary.n_frames += len(frames)
            yield FrameChunk(sample_idx[sl][ok], b.starts[picked[sl]][ok], t0[sl][ok], t1[sl][ok], frames)

    def _decode_pyav(
        self, path: str, info: Probe, size: tuple[int, int], summary: DecodeSummary
    ) -> Iterator[FrameChunk]:
        summary.decoder = "pyav"
        lost = [0]
        out = _RowBuffer(self.chunk_frames, lambda imgs: finish_frames(_rotate(imgs, info.rotation), self.cfg))
        convert = _RgbScaler(size)
        if self.plan.kind == "keyframes":
            rows = self._pyav_keyframes(path, info, convert, out, lost, summary)
        else:
            rows = self._pyav_samples(path, info, convert, out, lost, summary)
        for chunk in rows:
            summary.n_frames += len(chunk.frames)
            yield chunk
        for chunk in out.close(summary.duration):
            summary.n_frames += len(chunk.frames)
            yield chunk
        summary.lost += lost[0]

    def _pyav_keyframes(self, path, info, convert, out: "_RowBuffer", lost, summary) -> Iterator[FrameChunk]:
        prev = None  # (frame, t); a key frame's span ends where the next one starts
        k = 0
        frames = _pyav_frames(path, lost, keyframes_only=True, threads=self.threads, storage_options=self.storage)
        for frame in frames:
            ft = float(frame.time or 0.0)
            if prev is not None:
                out.add(k, prev[1], prev[1], ft, convert(prev[0]))
                k += 1
                yield from out.full()
            prev = (frame, ft)
        if prev is not None:
            out.add(k, prev[1], prev[1], max(info.duration or prev[1], prev[1]), convert(prev[0]))
        summary.duration = float(max(info.duration or 0.0, prev[1] if prev else 0.0))

    def _pyav_samples(self, path, info, convert, out: "_RowBuffer", lost, summary) -> Iterator[FrameChunk]:
        """Sequential decode: the frame on screen at sample time t is the last one starting at or before t."""
        if self.plan.kind == "uniform":
            end = info.duration or _demuxed_end(path, self.storage)
            times, t0, t1 = self.plan.spans(self._plan_duration(info, end))
            samples = SampleTimes(times=times)

            def target(i: int) -> float | None:
                return times[i] if i < len(times) else None

            def span(i: int) -> tuple[float, float]:
                return t0[i], t1[i]
        else:
            step = 1.0 / self.plan.value
            samples = SampleTimes(step=step)

            def target(i: int) -> float | None:
                return (i + 0.5) * step

            def span(i: int) -> tuple[float, float]:
                return i * step, (i + 1) * step

        emitted = [None]  # the frame the last row shows: a frame on screen for several samples is one row

        def serve(i: int, frame, ft: float) -> None:
            a, b = span(i)
            if frame is emitted[0]:
                out.extend_last(b)
            else:
                out.add(i, ft, a, b, convert(frame))
                emitted[0] = frame

        k, prev, prev_t, last_t, step_t = 0, None, 0.0, 0.0, 0.0
        frames = _pyav_frames(
            path,
            lost,
            samples=samples if self.sample_aware else None,
            skip_loop_filter=self.skip_loop_filter,
            stats=summary.skips,
            threads=self.threads,
            storage_options=self.storage,
        )
        for frame in frames:
            ft = float(frame.time or 0.0)
            while (tt := target(k)) is not None and tt < ft:
                serve(k, *((prev, prev_t) if prev is not None else (frame, ft)))
                k += 1
                yield from out.full()
            if prev is not None:
                step_t = ft - prev_t
            prev, prev_t, last_t = frame, ft, ft
            if frame.duration and frame.time_base:
                step_t = float(frame.duration * frame.time_base)  # this frame's own display time
        if prev is None:
            return
        # The video ends where its last decoded frame's display ends, as decord's frame index has it:
        # a truncated file's header promises more (samples that would all repeat the last frame), a
        # VFR file's header may promise less. The header's duration only when no frame says.
        duration = last_t + step_t if step_t > 0 else info.duration if info.duration is not None else last_t
        while (tt := target(k)) is not None and tt < max(duration, last_t + 1e-6):
            serve(k, prev, prev_t)
            k += 1
            yield from out.full()
        if k == 0:  # shorter than half a window: one sample, clamped to the end (operators/sampling.py)
            out.add(0, prev_t, 0.0, duration, convert(prev))
        summary.duration = float(duration)


class _RowBuffer:
    """Rows of one video on their way out in chunks of ``chunk_frames``. The last row stays until the next
    one comes or the video ends: its span may still grow (the same frame on screen at later samples), and
    the video's last span ends where the video ends."""

    def __init__(self, chunk_frames: int, finish):
        self.chunk_frames = chunk_frames
        self.finish = finish  # [n, h, w, 3] RGB -> [n, S, S, 3] model-input frames
        self.rows: list[list] = []  # [idx, t, start, end, image]

    def add(self, idx: int, t: float, start: float, end: float, image: np.ndarray) -> None:
        self.rows.append([idx, t, start, end, image])

    def extend_last(self, end: float) -> None:
        self.rows[-1][3] = end

    def full(self) -> Iterator[FrameChunk]:
        if len(self.rows) > self.chunk_frames:
            yield self._chunk(self.rows[: self.chunk_frames])
            del self.rows[: self.chunk_frames]

    def close(self, video_end: float) -> Iterator[FrameChunk]:
        if self.rows:
            self.rows[-1][3] = video_end
            yield self._chunk(self.rows)
            self.rows = []

    def _chunk(self, rows: list[list]) -> FrameChunk:
        idx, t, a, b, images = zip(*rows)
        return FrameChunk(np.array(idx), np.array(t), np.array(a), np.array(b), self.finish(np.stack(images)))


def _demuxed_end(path: str, storage_options: StorageOptions | None = None) -> float | None:
    """Where a stream's frames end, from its packets alone (no decoding): for a file whose header gives no
    duration (a live WebM), which ``uniform:N`` must know before its first sample."""
    with media_input(path, storage_options) as src, av.open(src) as c:
        s = c.streams.video[0]
        ends = [(p.pts + (p.duration or 0)) * s.time_base for p in c.demux(s) if p.pts is not None]
    return float(max(ends)) if ends else None


def _reason(e: Exception, path: str) -> str:
    """An error's text without the file name the caller adds once."""
    text = str(e) if isinstance(e, DecodeError) else f"{type(e).__name__}: {e}"
    return text.removeprefix(f"{path}: ")


def decode_frames(
    path: str, preprocess: PreprocessConfig, sampling: str = "fps:1", backend: str = "auto"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, DecodeSummary]:
    """Convenience: all sampled frames of one video at once -> (frames, t_start, t_end, summary).

    Raises DecodeError. For long videos prefer ``VideoDecoder.decode`` (chunked).
    """
    dec = VideoDecoder(preprocess, sampling, backend=backend, chunk_frames=256)
    summary = DecodeSummary()
    chunks = list(dec.decode(path, summary))
    if not chunks:
        raise DecodeError(f"{path}: no decodable frames")
    frames = np.concatenate([c.frames for c in chunks])
    return frames, np.concatenate([c.t_start for c in chunks]), np.concatenate([c.t_end for c in chunks]), summary
