"""Bytes per frame row on a Milvus server, per frame index type: what docs/scale.md multiplies out.

For each index (HNSW, IVF_FLAT, IVF_SQ8, IVF_PQ) builds the store's real frame collection (``VideoStore`` with
``frame_index``) on a standalone server started with ``--data DIR``, inserts ``--rows`` rows of ``--dim``-d
vectors, flushes, waits for the index, and measures the index files the server wrote for it (new files under
``DIR/data/index_files``): what a query node loads into memory for the vectors. Beside it, the scalar fields a
query node also holds (key, video id, idx, times, norm, merged), counted from the rows inserted.

(Milvus 2.3.5 reports ``mem_size`` 0 for loaded segments, and the server's resident memory moves by more
than a collection's size between release and load, so neither measures this.) Prints bytes per row and the
ratio to the raw float32 vector, from this one run.

    python bench/frame_bytes.py --server http://127.0.0.1:19530 --data DIR  # 100k rows × 512-d
    python bench/frame_bytes.py --server URI --data DIR --rows 20000 --dim 64    # smoke size
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vidseek.operators.frame_table import FrameTable  # noqa: E402
from vidseek.store.frame_index import FRAME_INDEXES  # noqa: E402
from vidseek.store.video_store import VideoStore, frame_rows  # noqa: E402

PER_VIDEO = 100  # frame rows per synthetic video (keys and ids as real ones)


def index_files(data: Path) -> dict[str, int]:
    root = data / "data" / "index_files"
    return {str(p): p.stat().st_size for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def scalar_row_bytes(row: dict) -> int:
    """A frame row's scalar fields: strings as their UTF-8 bytes, INT64 8, FLOAT 4."""
    return sum(
        len(v.encode()) if isinstance(v, str) else (8 if isinstance(v, int) else 4)
        for k, v in row.items()
        if k != "vec"
    )


def measure(uri: str, data: Path, index_type: str, rows: int, dim: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    prefix = f"bytes_{index_type.lower()}_{int(time.time())}"
    with VideoStore(uri, prefix=prefix, frame_index=index_type) as store:
        store.ensure_model({"model": "bench", "embed_dim": dim, "weights": "random"})
        files_before = index_files(data)
        t0 = time.perf_counter()
        for lo in range(0, rows, 5000):
            batch = []
            for v in range(lo // PER_VIDEO, min(lo + 5000, rows) // PER_VIDEO):
                centre = rng.standard_normal(dim)
                vecs = (centre + 0.5 * rng.standard_normal((PER_VIDEO, dim))).astype(np.float32)
                t = np.arange(PER_VIDEO, dtype=np.float32)
                batch += frame_rows(f"{v:020x}", FrameTable.of(np.arange(PER_VIDEO), t + 0.5, t, t + 1, vecs))
            store.client.insert(store.frames, batch)
            scalar_bytes = scalar_row_bytes(batch[0])
        store.client.flush(store.frames)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            info = store.client.describe_index(store.frames, "vec")
            if info.get("indexed_rows") == rows:
                break
            time.sleep(1)
        build_s = time.perf_counter() - t0
        new_files = {p: b for p, b in index_files(data).items() if p not in files_before}
        n = int(info.get("indexed_rows") or 0)
        store.client.drop_collection(store.frames)
        for c in (store.videos, store.meta):
            store.client.drop_collection(c)
    return {
        "index": index_type,
        "rows": n,
        "indexed": info.get("indexed_rows"),
        "index_bytes_per_row": round(sum(new_files.values()) / max(n, 1), 1),
        "index_vs_raw_vector": round(sum(new_files.values()) / max(n, 1) / (4 * dim), 3),
        "scalar_bytes_per_row": scalar_bytes,
        "insert_index_s": round(build_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True, help="Milvus server URI")
    ap.add_argument("--data", type=Path, required=True, help="the server's --data directory (on this machine)")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--indexes", nargs="+", default=[i for i in FRAME_INDEXES if i != "DISKANN"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = [measure(args.server, args.data, ix, args.rows, args.dim) for ix in args.indexes]
    if args.json:
        print(json.dumps(out))
        return
    print(f"{args.rows} frame rows × {args.dim}-d (raw float32 vector: {4 * args.dim} bytes), one run")
    print(
        "| frame index | rows indexed | index file bytes/row | × raw vector | scalar fields bytes/row | insert + index s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in out:
        print(
            f"| {r['index']} | {r['rows']} | {r['index_bytes_per_row']:.0f} | {r['index_vs_raw_vector']:.2f} | "
            f"{r['scalar_bytes_per_row']} | {r['insert_index_s']} |"
        )


if __name__ == "__main__":
    main()
