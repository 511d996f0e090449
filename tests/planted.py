"""A store with planted frame vectors, so that search semantics are testable with a random model.

Vectors are built around the tiny model's own text vector q of QUERY:
- ``brief``:   20 frames, 19 unrelated directions and one frame equal to q at index 7 (t = 7…8 s);
- ``diffuse``: 20 frames, each 0.6·q + 0.8·(unrelated unit direction): moderately relevant throughout;
- ``noise*``:  unrelated frames only.
Mean pooling prefers ``diffuse``; max pooling and query-weighted pooling prefer ``brief``.
"""

from __future__ import annotations

import numpy as np
import torch

from vidseek.operators.aggregate import mean_pool
from vidseek.operators.encode import LoadedClip, encode_texts
from vidseek.operators.frame_table import FrameTable
from vidseek.store.video_store import VideoStore

QUERY = "a small red ball bouncing"
BRIEF_IDX = 7


def unrelated(rng: np.random.Generator, q: np.ndarray, n: int) -> np.ndarray:
    """n unit vectors orthogonal to q."""
    x = rng.standard_normal((n, len(q)))
    x -= np.outer(x @ q, q)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def planted_vectors(clip: LoadedClip, n_noise: int = 4, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    q = encode_texts(clip, [QUERY])[0]
    q = q / np.linalg.norm(q)
    brief = unrelated(rng, q, 20)
    brief[BRIEF_IDX] = q
    videos = {"brief": brief * 3.0, "diffuse": (0.6 * q + 0.8 * unrelated(rng, q, 20)) * 2.0}
    for i in range(n_noise):
        videos[f"noise{i}"] = unrelated(rng, q, 20) * 2.5  # raw CLIP features are not unit length
    return q, videos


def build_planted_store(
    uri: str, clip: LoadedClip, metadata: dict[str, dict] | None = None, prefix: str = "vidseek", **kw
) -> dict:
    q, videos = planted_vectors(clip, **kw)
    store = VideoStore(uri, prefix)
    store.ensure_model(clip.stamp())
    rows = []
    for vid, vecs in videos.items():
        n = len(vecs)
        t0 = np.arange(n, dtype=np.float32)
        store.insert_frames(vid, FrameTable.of(np.arange(n), t0 + 0.5, t0, t0 + 1, vecs))
        mean = mean_pool(torch.from_numpy(vecs.astype(np.float32)).unsqueeze(0))[0].numpy()
        rows.append(
            {
                "video_id": vid,
                "path": f"/videos/{vid}.mp4",
                "duration": float(n),
                "n_frames": n,
                "metadata": (metadata or {}).get(vid, {}),
                "mean_vec": mean,
            }
        )
    store.upsert_videos(rows)
    store.close()
    return videos
