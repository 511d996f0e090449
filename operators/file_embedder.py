"""Raw frame vectors of a video file: decoded under a time limit, encoded, cached — the one "embed a file".

Used wherever frames are needed for a file that no store holds: plug-in rerank (``retrieval/rerank.py``),
head training on unindexed videos (``pipeline/train_head.py``) and the testbed's in-memory tables
(``apps/testbed/quality.py``). Decoding goes through ``IsolatedDecoder``, so a file that blocks or
crashes FFmpeg is a ``DecodeError``, never a hang. The cache is in memory for the embedder's lifetime and,
with ``cache_dir``, on disk across runs: one ``.npy`` per (absolute path, size, mtime, model stamp, sampling),
written atomically, so a changed file or another model never reads a stale entry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from vidseek.operators.decode import DecodeError
from vidseek.operators.encode import LoadedClip, encode_images
from vidseek.operators.isolated_decode import DecodeLimit, IsolatedDecoder


class FileEmbedder:
    """``embedder(path) -> [T, D]`` raw frame vectors; raises DecodeError naming the file and why."""

    def __init__(
        self,
        clip: LoadedClip,
        sampling: str = "fps:1",
        cache_dir: str | Path | None = None,
        limit: DecodeLimit = DecodeLimit(),
        decoder_options: dict | None = None,
    ):
        self.clip, self.sampling, self.limit = clip, sampling, limit
        self.decoder_options = decoder_options  # VideoDecoder keyword arguments (backend, skip_loop_filter)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.memory: dict[str, np.ndarray] = {}
        self.stats = {"decoded": 0, "cached": 0}
        self._decoder: IsolatedDecoder | None = None  # a child process, started at the first decode

    def __call__(self, path: str | Path) -> np.ndarray:
        path = Path(path)
        key = self._key(path)
        if key in self.memory:
            self.stats["cached"] += 1
            return self.memory[key]
        disk = self.cache_dir / f"{key}.npy" if self.cache_dir else None
        if disk is not None and disk.exists():
            vectors = np.load(disk)
            self.stats["cached"] += 1
        else:
            vectors = encode_images(self.clip, self.frames(path))  # [T, D] raw
            self.stats["decoded"] += 1
            if disk is not None:
                disk.parent.mkdir(parents=True, exist_ok=True)
                tmp = disk.with_suffix(".tmp.npy")
                np.save(tmp, vectors)
                tmp.replace(disk)  # atomic: a killed run never leaves a half-written entry
        self.memory[key] = vectors
        return vectors

    def frames(self, path: str | Path) -> np.ndarray:
        """Sampled frames [T, S, S, 3] uint8 of one file, decoded under the time limit."""
        if self._decoder is None:
            self._decoder = IsolatedDecoder(
                self.clip.preprocess.as_dict(), self.sampling, 256, self.limit, self.decoder_options
            )
        *chunks, end = self._decoder.iter_video(str(path), str(path))  # FrameRows…, VideoEnd
        if not end.ok:
            raise DecodeError(end.error)
        return np.concatenate([c.payload for c in chunks])

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None

    def _key(self, path: Path) -> str:
        try:
            st = path.stat()
        except OSError as e:
            raise DecodeError(f"{path}: cannot read it ({e.strerror})") from e
        ident = json.dumps(
            [str(path.absolute()), st.st_size, st.st_mtime_ns, self.clip.stamp(), self.sampling], sort_keys=True
        )
        return hashlib.sha1(ident.encode()).hexdigest()
