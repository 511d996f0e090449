"""Text search over a vidseek store: candidates → frame rescoring → CLIPRerank fusion → one hit per video.

1. First stage: ANN over video vectors (mean, or learned) ∪ ANN over frame vectors grouped per video
   (Milvus ``group_by_field`` = max pooling in one call), ``depth`` candidates each.
2. The candidates' frame vectors are fetched in one round trip and scored with the chosen aggregation
   (``mean`` | ``max`` | ``query-weighted`` | ``learned``): the initial score M.
3. CLIPRerank: the fine score S = max over frames of cos(t, frame) is fused with M,
   α·minmax(M) + (1−α)·minmax(S) over the top-``depth`` candidates by M.
4. Each hit carries its best moment: the best-matching frame's span, grown over neighbouring frames whose
   similarity stays within ``MOMENT_SLACK`` of the best (relative to that video's best−worst range).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from vidseek.operators.aggregate import frame_similarities, pad_frames
from vidseek.operators.encode import LoadedClip, encode_texts, load_clip
from vidseek.operators.frame_scoring import score_candidates
from vidseek.operators.frame_table import FrameTable
from vidseek.operators.model_stamp import RandomWeightsWarning, random_weights_warning
from vidseek.retrieval.backends import SearchBackend, StoreBackend, where_for
from vidseek.retrieval.frame_cache import FrameCache
from vidseek.retrieval.frame_mirror import FrameMirror
from vidseek.retrieval.fusion import rerank
from vidseek.retrieval.params import DEFAULTS, SearchParams  # noqa: F401 — re-exported
from vidseek.retrieval.query_cache import QueryCache, stamp_key
from vidseek.store.video_store import SEARCH_CONSISTENCY, StoreError, VideoStore, check_same_model

MOMENT_SLACK = 0.1


@dataclass
class Hit:
    video_id: str
    path: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)  # initial, fine, fused (when reranked)
    moment: tuple[float, float] = (0.0, 0.0)
    best_t: float = 0.0
    metadata: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready: NaN scores (hits below the reranked head) become null."""
        d = asdict(self)
        d["moment"] = list(self.moment)
        d["score"] = None if np.isnan(self.score) else self.score
        d["scores"] = {k: (None if np.isnan(v) else v) for k, v in self.scores.items()}
        return d


class Searcher:
    """``Searcher(store).search("a dog on a beach", k=10)``; also ``search([q1, q2, …])`` for a batch."""

    def __init__(
        self,
        store: VideoStore | str,
        clip: LoadedClip | None = None,
        device: str = "auto",
        cache_vectors: int = 500_000,
        in_memory: bool = False,
        frame_cache: Callable[[VideoStore, int], FrameCache] | None = None,
        warn: bool = True,
        query_cache: QueryCache | None = None,
        frame_mirror: FrameMirror | None = None,
    ):
        """``in_memory``: hold the store's ok videos and frames in this process (``StoreReplica``) and search
        them there — for long-lived searchers over Milvus Lite, whose per-query cost grows with its rows.
        ``frame_cache(store, max_vectors)``: another cache of candidates' frames (the service's is safe under
        concurrent writes); the default is a plain ``FrameCache``. ``query_cache``: query embeddings kept
        across searches (retrieval/query_cache.py; the service shares one); the default holds 4,096.
        ``frame_mirror``: a synced local copy of the store's frame tables (retrieval/frame_mirror.py) that
        rescoring reads instead of fetching the candidates' frame vectors from Milvus; videos it lacks still
        come through the frame cache.

        ``model_warning`` is a line saying the store's model has random weights (``tiny-random``, the default
        model): its hits are random. A Searcher issues it once, as a ``RandomWeightsWarning``, unless
        ``warn=False`` (the CLI and the service report ``model_warning`` in their own output)."""
        self.store = VideoStore(store) if isinstance(store, str) else store
        self.store.search_consistency = SEARCH_CONSISTENCY  # no Strong-timestamp wait per call (store/layout.py)
        self.frames = (
            frame_cache(self.store, cache_vectors) if frame_cache else FrameCache(self.store.frames_of, cache_vectors)
        )
        if frame_mirror is not None and in_memory:
            raise ValueError("frame_mirror and in_memory both replace the frame source: choose one")
        if frame_mirror is not None:
            frame_mirror.fallback = self.frames
            self.frames = frame_mirror
        self.store.require_ready()
        self.replica = None
        self.backend: SearchBackend = StoreBackend(self.store)
        stamp = self.store.model_stamp()
        if clip is None:
            clip = load_clip(stamp["model"], stamp.get("pretrained"), device=device)
        check_same_model(stamp, clip.stamp(), self.store.uri)
        self.clip = clip
        self.queries = query_cache if query_cache is not None else QueryCache()
        # independent store calls of one search run side by side (gRPC waits release the GIL); shared by the
        # service's concurrent requests: a task never waits on another task, so the pool cannot deadlock
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="vidseek-search")
        self._model_key = stamp_key(clip.stamp())
        self.model_warning = random_weights_warning(stamp)
        if self.model_warning and warn:
            warnings.warn(self.model_warning, RandomWeightsWarning, stacklevel=2)
        if in_memory:
            from vidseek.retrieval.replica import StoreReplica

            self.replica = StoreReplica(self.store)
            self.frames = self.replica  # same ``get(ids)`` contract as the frame cache
            self.backend = self.replica  # and the same first-stage interface as the store

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        """Unit query vectors [Q, D]; a text seen before comes from the query cache, not the text tower."""
        return self.queries.vectors(self._model_key, list(queries), self._encode)

    def _encode(self, queries: list[str]) -> np.ndarray:
        q = encode_texts(self.clip, queries)  # [Q, D] raw
        return q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)

    def search(self, query: str | list[str], params: SearchParams | None = None, **overrides) -> list:
        """Hits for one query (list[Hit]) or for each of a list of queries (list[list[Hit]])."""
        params = SearchParams(**{**asdict(params or SearchParams()), **overrides}).validate()
        single = isinstance(query, str)
        queries = [query] if single else list(query)
        if not queries:
            return []
        if any(not q.strip() for q in queries):
            raise ValueError("empty query")
        qvec = self.encode_queries(queries)
        results = self.search_vectors(qvec, params)
        return results[0] if single else results

    def search_vectors(
        self, qvec: np.ndarray, params: SearchParams, first_stage_depth: int | None = None
    ) -> list[list[Hit]]:
        """Hits per query for unit query vectors [Q, D]; ``first_stage_depth`` defaults to max(depth, k)."""
        candidates = self._first_stage(qvec, params, first_stage_depth or max(params.depth, params.k))
        union = sorted({v for c in candidates for v in c})
        if not union:
            return [[] for _ in qvec]
        fields = ["video_id", "path", "status", "metadata"] + (
            ["learned_vec", "learned_head"] if params.aggregation == "learned" else []
        )
        videos, frames = self._videos_and_frames(union, fields)
        union = [v for v in union if videos.get(v, {}).get("status") == "ok" and v in frames]
        # [V, T, D] raw frames; [V, T] mask = frames each row stands for (operators/frame_table.py), 0 = padding
        F, mask = pad_frames([frames[v].vectors for v in union], self.store.dim, [frames[v].merged for v in union])
        sims, initial = self._score(torch.from_numpy(qvec), F, mask, union, videos, params)  # [Q, V, T], [Q, V]
        fine = sims.max(-1)  # [Q, V] max pooling
        col = {v: j for j, v in enumerate(union)}
        out = []
        for qi, cands in enumerate(candidates):
            js = np.array([col[v] for v in cands if v in col], dtype=int)
            if not len(js):
                out.append([])
                continue
            js = js[np.argsort(-initial[qi, js], kind="stable")]  # first-stage order by M
            m, s = initial[qi, js], fine[qi, js]
            if params.rerank:
                # beyond the reranked head, hits keep first-stage order and have no fused score (NaN)
                order, final = rerank(m, s, params.alpha, params.depth)
            else:
                order, final = np.arange(len(js)), m
            hits = []
            for o in order[: params.k]:
                j, vid = js[o], union[js[o]]
                scores = {"initial": float(m[o]), "fine": float(s[o])}
                if params.rerank:
                    scores["fused"] = float(final[o])
                start, end, best_t = best_moment(sims[qi, j], mask[j].numpy(), frames[vid])
                hits.append(
                    Hit(
                        vid,
                        videos.get(vid, {}).get("path", ""),
                        float(final[o]),
                        scores,
                        (start, end),
                        best_t,
                        dict(videos.get(vid, {}).get("metadata") or {}),
                    )
                )
            out.append(hits)
        return out

    def _videos_and_frames(self, union: list[str], fields: list[str]) -> tuple[dict, dict[str, FrameTable]]:
        """The candidates' video rows and their frames, read at the same time (two round trips in parallel).

        Only finished videos' frames may enter the frame cache (it trusts frames to be final under an id):
        a frame-level candidate still being written has no "ok" row yet, so the cache admits a fetched video
        once its row, read beside it, says ok."""
        source = self.store if self.replica is None else self.replica
        rows = self._pool.submit(source.get_videos, union, fields)

        def finished(ids: list[str]) -> list[str]:
            videos = rows.result()
            return [v for v in ids if videos.get(v, {}).get("status") == "ok"]

        frames = self.frames.get(union, admit=finished)
        return rows.result(), frames

    def _score(self, q, F, mask, union, videos, params: SearchParams) -> tuple[np.ndarray, np.ndarray]:
        """Frame similarities [Q, V, T] and the initial score M [Q, V]: one pass over the frames
        (operators/frame_scoring.py), or the stored learned vectors."""
        if params.aggregation != "learned":
            sims, initial = score_candidates(q, F, mask, params.aggregation, params.tau)
            return sims.numpy(), initial.numpy()
        missing = [v for v in union if not videos.get(v, {}).get("learned_head")]
        if missing:
            raise StoreError(
                f"{len(missing)} videos have no learned vectors: add a head with `vidseek index … --head HEAD.pt` first"
            )
        vecs = torch.tensor(np.array([videos[v]["learned_vec"] for v in union]), dtype=torch.float32)
        initial = torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(vecs, dim=-1).T
        return frame_similarities(q, F, mask).numpy(), initial.numpy()

    def _first_stage(self, qvec: np.ndarray, params: SearchParams, depth: int) -> list[list[str]]:
        vec_field = "learned_vec" if params.aggregation == "learned" else "mean_vec"
        where = where_for(self.store, params.filter)  # Milvus evaluates the filter: it is a Milvus expression
        by_frame = self._pool.submit(self.backend.search_frames_grouped, qvec, depth, where)  # beside the next
        by_video = self.backend.search_videos(qvec, depth, vec_field, where)
        return union_candidates(by_video, by_frame.result())


def union_candidates(by_video: list[list[dict]], by_frame: list[list[dict]]) -> list[list[str]]:
    """Per query: video-level candidates, then frame-level ones not already in, first occurrence kept."""
    return [
        list(dict.fromkeys([h["video_id"] for h in a] + [h["video_id"] for h in b])) for a, b in zip(by_video, by_frame)
    ]


def best_moment(sims: np.ndarray, mask: np.ndarray, frames: FrameTable) -> tuple[float, float, float]:
    """(start, end, t) of the best-matching frames of one video; sims [T] for one query."""
    n = int((mask > 0).sum())  # rows (the mask holds frames per row: > 1 for merged rows)
    s = sims[:n]
    best = int(np.argmax(s))
    floor = s[best] - MOMENT_SLACK * (s[best] - s.min())
    lo = hi = best
    while lo > 0 and s[lo - 1] >= floor:
        lo -= 1
    while hi < n - 1 and s[hi + 1] >= floor:
        hi += 1
    return float(frames.t_start[lo]), float(frames.t_end[hi]), float(frames.t[best])
