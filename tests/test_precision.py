"""bf16 and fp16 (the GPU's precisions, run here on the CPU) against fp32 on the testbed model and world.

Tolerances, stated in docs/gpu.md: per-vector cosine to the fp32 vector ≥ 0.99 (bf16) and ≥ 0.999 (fp16),
for frames and texts; on the testbed world's queries, top-10 lists share ≥ 9 of 10 videos on average, and
R@1 moves by at most one query (a point is 1/len(queries) here, so "within 1 point" means unchanged).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from vidseek.apps.testbed.world import generate_world
from vidseek.operators.aggregate import pad_frames, query_weighted_score
from vidseek.operators.decode import decode_frames
from vidseek.operators.encode import encode_images, encode_texts, load_clip
from vidseek.retrieval.metrics import ranks_from_scores, retrieval_metrics

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.slow  # ~90 s: one small world decoded once, encoded three times
MIN_COSINE = {"bf16": 0.99, "fp16": 0.999}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("precision-world")
    return d, generate_world(d, seed=11, n_content=16, n_brief=3, n_order=4)


@pytest.fixture(scope="module")
def decoded(world):
    """Every clip's sampled frames, decoded once (uint8), in gallery order."""
    d, m = world
    clip = load_clip("testbed", device="cpu")
    videos = sorted({q["video"] for q in m["queries"]})
    return videos, [decode_frames(str(d / v), clip.preprocess, "fps:2")[0] for v in videos]


def _encode(precision: str, decoded, queries):
    clip = load_clip("testbed", device="cpu", precision=precision)
    assert clip.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    frames = [encode_images(clip, f) for f in decoded[1]]  # per video [T, D] float32 (cast after the model)
    return frames, encode_texts(clip, [q["query"] for q in queries])


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_vectors_and_rankings_agree_with_fp32(world, decoded, precision):
    _, m = world
    queries = m["queries"]
    ref_frames, ref_text = _encode("fp32", decoded, queries)
    frames, text = _encode(precision, decoded, queries)
    frame_cos = _cosines(np.concatenate(frames), np.concatenate(ref_frames))
    text_cos = _cosines(text, ref_text)
    assert frame_cos.min() >= MIN_COSINE[precision], frame_cos.min()
    assert text_cos.min() >= MIN_COSINE[precision], text_cos.min()

    videos = decoded[0]
    gt = np.array([videos.index(q["video"]) for q in queries])

    def ranking(frame_vecs, text_vecs):
        padded, mask = pad_frames([torch.from_numpy(f) for f in frame_vecs], frame_vecs[0].shape[1])
        scores = query_weighted_score(torch.from_numpy(text_vecs), padded, mask).numpy()  # [Q, V]
        return scores, retrieval_metrics(ranks_from_scores(scores, gt))

    ref_scores, ref_metrics = ranking(ref_frames, ref_text)
    scores, metrics = ranking(frames, text)
    top = lambda s: [set(row) for row in np.argsort(-s, axis=1)[:, :10]]  # noqa: E731
    overlap = np.mean([len(a & b) for a, b in zip(top(scores), top(ref_scores))])
    assert overlap >= 9.0, overlap
    one_query = 100.0 / len(queries)
    assert abs(metrics["R@1"] - ref_metrics["R@1"]) <= max(1.0, one_query) + 1e-9, (metrics, ref_metrics)
    print(
        f"{precision}: min cosine frames {frame_cos.min():.4f} texts {text_cos.min():.4f}, top-10 overlap "
        f"{overlap:.2f}/10, R@1 {metrics['R@1']:.1f} vs fp32 {ref_metrics['R@1']:.1f} ({len(queries)} queries)"
    )
