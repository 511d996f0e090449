"""A planted copy library: random-walk frame sequences (each frame a small step from the last, as a shot
changes), their copies with noise, an excerpt inside other footage, unrelated videos, and "black" frames shared by
many videos; what ``find_copies`` must find in it (``check_library_copies``). Used by the library, CLI and Ray
tests of copies."""

from __future__ import annotations

import numpy as np
import pytest

from vidseek.operators.frame_table import FrameTable
from vidseek.retrieval.alignment import unit_rows
from vidseek.retrieval.copies import CopyParams
from vidseek.store.video_store import VideoStore

DIM = 32


def walk(rng, n: int, step: float = 0.35) -> np.ndarray:
    """A shot: n unit frames, each a small random step from the last."""
    x = [rng.standard_normal(DIM)]
    for _ in range(n - 1):
        x.append(x[-1] + step * rng.standard_normal(DIM))
    return unit_rows(np.array(x))


def noisy(rng, frames: np.ndarray, sigma: float = 0.03) -> np.ndarray:
    return unit_rows(frames + sigma * rng.standard_normal(frames.shape))


def table(frames: np.ndarray, span: float = 0.5, rng=None) -> FrameTable:
    n = len(frames)
    t0 = np.arange(n) * span
    scale = rng.uniform(5, 12, size=(n, 1)) if rng is not None else 1.0  # raw CLIP features are not unit
    return FrameTable.of(np.arange(n), t0 + span / 2, t0, t0 + span, frames * scale)


def plant_library(store: VideoStore, seed: int = 5) -> dict[str, FrameTable]:
    """src (30 s), its noisy copy, a copy with a 1 s black fade in and out, the src's 10–20 s alone (clip) and
    inside 30 s of other footage (excerpt), four unrelated videos, and six that share only black frames."""
    rng = np.random.default_rng(seed)
    black = unit_rows(rng.standard_normal((1, DIM)))
    src = walk(rng, 60)
    fade = noisy(rng, src).copy()
    fade[:2] = fade[-2:] = black
    videos = {
        "src": src,
        "copy": noisy(rng, src),
        "fade": fade,
        "excerpt": np.concatenate([walk(rng, 16), noisy(rng, src[20:40]), walk(rng, 24)]),  # at 8–18 s
        "clip": noisy(rng, src[20:40]),
    }
    videos |= {f"other{i}": walk(rng, 40) for i in range(4)}
    videos |= {f"blackish{i}": np.concatenate([np.repeat(black, 12, 0), walk(rng, 30)]) for i in range(6)}
    tables = {v: table(f, rng=rng) for v, f in videos.items()}
    store.ensure_model({"model": "planted", "weights": "w", "embed_dim": DIM})
    for v, t in tables.items():
        store.insert_frames(v, t)
    store.upsert_videos(
        [
            {"video_id": v, "path": f"/lib/{v}.mp4", "duration": float(t.t_end[-1]), "n_frames": len(t)}
            for v, t in tables.items()
        ]
        + [{"video_id": "failed", "path": "/lib/failed.mp4", "status": "failed"}]
    )
    return tables


# a library of 15 videos: a small probe, fewer videos make a frame generic; plain cosines (isotropic planted
# noise is what whitening amplifies most: tests below check the whitening itself)
PARAMS = CopyParams(min_seconds=5, k=12, generic_videos=6, whiten=0.0, threshold=0.93)


def check_library_copies(records: list) -> None:
    got = {(r.a, r.b): r for r in records}
    full = {("copy", "src"), ("fade", "src"), ("copy", "fade")}
    parts = {(min(x, y), max(x, y)) for x in ("excerpt", "clip") for y in ("src", "copy", "fade")}
    assert set(got) == full | parts | {("clip", "excerpt")}  # none for the black-sharing or unrelated videos
    assert {got[p].kind for p in full} == {"duplicate"}  # the fade's black frames are no content src lacks
    assert got[("copy", "src")].a_cover == 1.0
    assert {got[p].kind for p in parts if "clip" in p} == {"excerpt"}  # all of the shorter, a third of the other
    assert {got[p].kind for p in parts if "excerpt" in p} == {"segment"}  # 10 s of two 30 s videos
    assert got[("clip", "excerpt")].kind == "excerpt"
    ex = got[("excerpt", "src")]
    assert (ex.a_start, ex.a_end) == pytest.approx((8.0, 18.0), abs=0.5)
    assert (ex.b_start, ex.b_end) == pytest.approx((10.0, 20.0), abs=0.5)
    assert ex.score > 0.95 and ex.frames >= 19
    assert [r.score for r in records] == sorted([r.score for r in records], reverse=True)
