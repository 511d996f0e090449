"""Bounded time per video: ``VideoDecoder`` in a child process that is killed when a video outlives its limit.

A decode can block or run away where no Python code can stop it: a stalled network mount (a read that
never returns), a pathological stream, a native call that spins holding the GIL. In-process timers cannot
end those, so each decode worker keeps one child process (``python -m vidseek.operators.isolated_decode``) and
feeds it one video at a time over a pipe. The limit is ``base_s + per_video_s × duration`` (the duration
from the file's header, known once the child has probed it; ``base_s`` alone until then). A video that
outlives it becomes a ``VideoEnd`` with ``status="failed"`` and ``timeout after N s``; the child is killed
and a fresh one takes the next video. A child that dies (a decoder crash) is likewise that video's error,
not the worker's. Costs: one process per decode worker, and each chunk of frames pickled through a pipe
(a memory copy; decoding costs far more). See docs/decoding.md "Bounded time per video".
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import vidseek
from vidseek.operators.decode import DecodeError, VideoDecoder, check_file, probe
from vidseek.operators.rows import FrameRows, VideoEnd, sources_from_batch, to_batch

_VIDSEEK_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(vidseek.__file__)))  # holds the vidseek package
TIMEOUT_HINT = "raise --decode-timeout if the file is fine but slow"  # the index job's; a caller may reword it
START_TIMEOUT_S = 120.0  # a child's imports, on a machine busy with the other decoders


@dataclass(frozen=True)
class DecodeLimit:
    """Most seconds one video may take to decode: ``base_s + per_video_s × its duration``."""

    base_s: float = 60.0
    per_video_s: float = 2.0  # seconds allowed per second of video (a 1-hour file: 60 s + 2 h)

    def __post_init__(self):
        if not self.base_s > 0 or self.per_video_s < 0:
            raise ValueError(f"decode timeout must be > 0 s plus ≥ 0 s per video second, got {self}")

    def seconds(self, duration: float | None) -> float:
        return self.base_s + self.per_video_s * max(0.0, duration or 0.0)


@dataclass(frozen=True)
class DecoderArgs:
    """A ``VideoDecoder``'s arguments, as a value: sent to the child, which builds the decoder from it."""

    preprocess: dict
    sampling: str
    chunk_frames: int = 32
    options: dict = field(default_factory=dict)  # VideoDecoder keyword arguments: backend, skip_loop_filter

    def build(self) -> VideoDecoder:
        return VideoDecoder(self.preprocess, self.sampling, self.chunk_frames, **self.options)

    def key(self) -> str:
        """Equal for equal arguments (the dicts are not hashable)."""
        return repr((sorted(self.preprocess.items()), self.sampling, self.chunk_frames, sorted(self.options.items())))


class IsolatedDecoder:
    """Same rows as ``VideoDecoder.iter_video``, each video decoded in a child process under a time limit.

    Args: as ``VideoDecoder`` (``preprocess`` as a dict; ``options``: its keyword arguments, e.g.
    ``backend``, ``skip_loop_filter``), plus ``limit``; or ``IsolatedDecoder.of(DecoderArgs, limit)``.
    Not thread-safe: one per worker.
    """

    def __init__(
        self,
        preprocess: dict,
        sampling: str,
        chunk_frames: int = 32,
        limit: DecodeLimit = DecodeLimit(),
        options: dict | None = None,
    ):
        self.args = DecoderArgs(preprocess, sampling, chunk_frames, dict(options or {}))
        self.shape = self.args.build()  # validates the arguments here, in the worker, and knows the frame shape
        self.limit = limit
        self._child: subprocess.Popen | None = None
        self._messages: queue.Queue | None = None

    @classmethod
    def of(cls, args: DecoderArgs, limit: DecodeLimit = DecodeLimit()) -> "IsolatedDecoder":
        return cls(args.preprocess, args.sampling, args.chunk_frames, limit, args.options)

    # -- public API -------------------------------------------------------------------------------
    def __call__(self, batch: dict) -> Iterator[dict]:
        """Stage batches (operators/rows.py) of every input row's video."""
        for source in sources_from_batch(batch):
            for item in self.iter_video(source.path, source.video_id, source.extra):
                yield to_batch(*((item, []) if isinstance(item, FrameRows) else (self.shape.no_frames(), [item])))

    def iter_video(self, path: str, video_id: str, extra: str = "") -> Iterator[FrameRows | VideoEnd]:
        """``FrameRows`` chunks, then the ``VideoEnd``; never raises for a bad, slow or crashing file."""
        self._ensure_child()
        self._send((path, video_id, extra, self.args))
        finished = False
        try:
            for item in self._video_rows(path, video_id, extra):
                finished = isinstance(item, VideoEnd)
                yield item
        finally:
            if not finished:  # abandoned mid-video (job stopped, task cancelled): its messages must not
                self.close()  # reach the next video, so this child goes

    def _video_rows(self, path: str, video_id: str, extra: str) -> Iterator[FrameRows | VideoEnd]:
        # the limit counts time spent waiting for the child, not time this generator is suspended
        # downstream (backpressure): the child then blocks on its pipe and is not slow
        waited = 0.0
        limit = self.limit.seconds(None)
        while True:
            t = time.monotonic()
            msg = self._next(limit - waited)
            waited += time.monotonic() - t
            if msg is None:  # timed out: the child is stuck in this video
                self.close()
                yield self._failed(
                    path,
                    video_id,
                    extra,
                    f"{path}: timeout after {limit:.0f} s (decoding did not finish; {TIMEOUT_HINT})",
                )
                return
            kind, value = msg
            if kind == "duration":
                limit = self.limit.seconds(value)
            elif kind == "rows":
                yield value
                if isinstance(value, VideoEnd):
                    return
            else:  # "dead": the child exited mid-video
                self.close()
                yield self._failed(
                    path, video_id, extra, f"{path}: decoder process died ({value}); the file likely crashes FFmpeg"
                )
                return

    def close(self) -> None:
        """Kill the child (never waits on it: a child stuck in the kernel may not exit at once)."""
        child, self._child = self._child, None
        if child is not None and child.poll() is None:
            child.kill()
            threading.Thread(target=child.wait, daemon=True).start()  # reap it whenever it exits

    # -- child process ----------------------------------------------------------------------------
    def _ensure_child(self) -> None:
        if self._child is not None and self._child.poll() is None:
            return
        # same interpreter, environment and cwd (relative paths work), and the vidseek this process runs (a
        # checkout found through sys.path rather than installed is found by the child too)
        path = os.pathsep.join(p for p in (_VIDSEEK_PARENT, os.environ.get("PYTHONPATH")) if p)
        self._child = subprocess.Popen(
            [sys.executable, "-m", "vidseek.operators.isolated_decode"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=path),
        )
        self._messages = queue.Queue(maxsize=4)  # a few chunks ahead: the child waits on its pipe, memory stays bounded
        threading.Thread(target=_read_messages, args=(self._child, self._messages), daemon=True).start()
        msg = self._next(START_TIMEOUT_S)  # the limit counts decoding only, not the child's imports
        if msg is None or msg[0] != "ready":
            self.close()
            raise RuntimeError(f"the decoder process did not start ({msg[1] if msg else 'no answer'})")

    def _send(self, request: tuple) -> None:
        try:
            pickle.dump(request, self._child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._child.stdin.flush()
        except (BrokenPipeError, OSError):
            self.close()  # died between videos: the next message read reports it
            self._ensure_child()
            pickle.dump(request, self._child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._child.stdin.flush()

    def _next(self, timeout: float) -> tuple | None:
        try:
            return self._messages.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    @staticmethod
    def _failed(path: str, video_id: str, extra: str, error: str) -> VideoEnd:
        return VideoEnd(video_id, path, "failed", error, extra=extra)


def _read_messages(child: subprocess.Popen, out: queue.Queue) -> None:
    """Reader thread: the child's messages into ``out``, then ("dead", reason) when its pipe closes."""
    try:
        while True:
            msg = pickle.load(child.stdout)
            while child.poll() is None or not out.full():  # put, unless the child is gone and nobody reads
                try:
                    out.put(msg, timeout=1.0)
                    break
                except queue.Full:
                    continue
    except Exception:  # noqa: BLE001 — EOF, a closed pipe or a corrupt stream: the child is done either way
        pass
    code = child.wait()
    try:
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    except ValueError:
        how = f"signal {-code}"
    try:
        out.put(("dead", how), timeout=5.0)
    except queue.Full:
        pass


def _child_main() -> None:
    """Decode requests from stdin, one video at a time; exits when the parent goes away."""
    _die_with_parent()
    stdin = sys.stdin.buffer
    stdout = os.fdopen(os.dup(1), "wb")  # the message stream, on a descriptor of its own
    os.dup2(2, 1)  # anything else written to fd 1 (Python or native code) goes to stderr, not into messages
    sys.stdout = sys.stderr
    try:
        import decord  # noqa: F401 — imported before "ready": the time limit counts decoding, not imports
    except ImportError:
        pass
    pickle.dump(("ready", os.getpid()), stdout)
    stdout.flush()
    decoders: dict[str, VideoDecoder] = {}
    while True:
        try:
            path, video_id, extra, args = pickle.load(stdin)  # args: DecoderArgs
        except EOFError:
            return
        dec = decoders.get(args.key()) or decoders.setdefault(args.key(), args.build())
        try:
            # a FIFO or device is refused before anything opens (and blocks on) it; an object's HEAD request
            # and header reads happen here, inside the time limit, as every read of the decode below does
            check_file(path, dec.storage)
            duration = probe(path, dec.storage).duration
        except DecodeError as e:  # the decode below would find the same, after as many reads and retries again
            _send(stdout, ("rows", VideoEnd(video_id, path, "failed", str(e), extra=extra)))
            continue
        except Exception:  # noqa: BLE001 — the decode below reports what is wrong with the file
            duration = None
        _send(stdout, ("duration", duration))
        for item in dec.iter_video(path, video_id, extra):
            _send(stdout, ("rows", item))


def _send(stdout, message: tuple) -> None:
    pickle.dump(message, stdout, protocol=pickle.HIGHEST_PROTOCOL)
    stdout.flush()


def _die_with_parent() -> None:
    """Exit as soon as the parent process is gone, even while a decode blocks (else it would decode on,
    orphaned). A thread watching the parent's pid, not PR_SET_PDEATHSIG: that signal fires when the parent
    *thread* that started the child exits, which in a thread pool is not the parent's end."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent watch").start()


if __name__ == "__main__":
    _child_main()
