"""The frame collection's vector index: which Milvus index types the store builds, and how each is searched.

The frame table is the one that grows with a library (docs/scale.md), so its index is a choice made when a
store is created (``vidseek index --frame-index``): HNSW by default (fast, exact-ish, ~1.1–1.5× the raw
vectors in memory), or a compressed one for a large library on a Milvus cluster — IVF_SQ8 (1 byte per
dimension), IVF_PQ (``dim / 8`` bytes per vector here) or DISKANN (vectors on disk, a PQ copy in memory).
Video vectors always use HNSW: there are thousands of times fewer of them.

Search parameters follow the index: ``ef`` for HNSW, ``nprobe`` for IVF, ``search_list`` for DISKANN, each
widened with k so that a deeper search reads more of the index.
"""

from __future__ import annotations

from dataclasses import dataclass

NLIST = 1024  # IVF cells per segment; Milvus segments hold up to ~1 M rows, so ~1k rows per cell


@dataclass(frozen=True)
class FrameIndex:
    index_type: str

    def build_params(self, dim: int) -> dict:
        if self.index_type == "HNSW":
            return {"M": 16, "efConstruction": 200}
        if self.index_type in ("IVF_FLAT", "IVF_SQ8"):
            return {"nlist": NLIST}
        if self.index_type == "IVF_PQ":
            return {"nlist": NLIST, "m": pq_subvectors(dim), "nbits": 8}
        return {}  # DISKANN: Milvus' defaults

    def search_params(self, limit: int) -> dict:
        if self.index_type == "HNSW":
            return {"ef": max(64, limit)}
        if self.index_type.startswith("IVF"):
            return {"nprobe": min(NLIST, max(32, limit // 8))}
        if self.index_type == "DISKANN":
            return {"search_list": max(100, limit)}
        return {}


FRAME_INDEXES = ("HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "DISKANN")


def frame_index(name: str) -> FrameIndex:
    up = name.upper()
    if up not in FRAME_INDEXES:
        raise ValueError(f"unknown frame index {name!r}: choose from {', '.join(FRAME_INDEXES)}")
    return FrameIndex(up)


def pq_subvectors(dim: int) -> int:
    """IVF_PQ sub-quantizers: dim / 8 (8 dimensions each, 1 byte per sub-vector), a divisor of dim."""
    m = max(1, dim // 8)
    while dim % m:
        m -= 1
    return m
