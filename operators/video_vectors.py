"""The index job's pooling step: a video row's vectors from its raw frame vectors.

meanP (CLIP4Clip, docs/methods.md) always; a learned temporal head's vector too when the job has one. The
job builds it (pipeline/index_job.py) and the writer applies it to each video once all its frames are in.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-8  # as operators/aggregate.py


def mean_pool_np(frames: np.ndarray) -> np.ndarray:
    """CLIP4Clip meanP of one video, [T, D] -> [D] unit norm: ``aggregate.mean_pool`` in numpy, so that the
    writer never imports torch (~3 s of CPU at start-up beside the decoders; tests/test_writer.py checks
    the two agree)."""
    f = np.asarray(frames, dtype=np.float32)
    unit = f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), EPS)
    pooled = unit.mean(0)
    return (pooled / max(float(np.linalg.norm(pooled)), EPS)).astype(np.float32)


class VideoVectors:
    """``vectors(frames [T, D] raw) -> {"mean_vec": [D], ["learned_vec": [D], "learned_head": id]}``.

    ``head_path``: a learned head's checkpoint, loaded on first use (where the writer runs) and checked
    against ``stamp``, the store's embedding model.
    """

    def __init__(self, head_path: str | None = None, stamp: dict | None = None):
        self.head_path = head_path
        self.stamp = stamp
        self._head = None

    @property
    def learned(self) -> bool:
        return self.head_path is not None

    def __call__(self, frames: np.ndarray) -> dict:
        vectors = np.asarray(frames, dtype=np.float32)  # [T, D]
        out = {"mean_vec": mean_pool_np(vectors)}
        if self.head_path is not None:
            out["learned_vec"], out["learned_head"] = self._loaded_head()(vectors)
        return out

    def _loaded_head(self):
        if self._head is None:
            # imported here: vidseek.operators.heads pulls in open_clip (torchvision, torch._dynamo), ~5 s of CPU at
            # start-up that a job without a learned head would spend beside its decoders
            from vidseek.operators.heads import LearnedHead

            self._head = LearnedHead(self.head_path, self.stamp)
        return self._head

    def __getstate__(self) -> dict:  # travels to the writer actor as its path, not as a loaded model
        return {**self.__dict__, "_head": None}
