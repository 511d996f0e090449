"""Columnar reads (store/columns.py) are the public row path's values, bit for bit: on Milvus Lite here, on the
2.3.5 server in tests/test_milvus_server.py (same check, ``assert_columns_match_rows``)."""

from __future__ import annotations

import numpy as np

from vidseek.operators.frame_table import FrameTable
from vidseek.operators.thinning import merge_similar
from vidseek.store.columns import _vector_columns, result_columns
from vidseek.store.filters import in_list
from vidseek.store.video_store import VideoStore, group_frame_rows


def fill(store: VideoStore, n_videos: int = 12, seed: int = 0) -> list[str]:
    """Videos of 1–40 frame rows, written out of order; one thinned, one thinned and stopped midway (its
    members still stored beside the merged rows), so the column path meets what the row path skips."""
    rng = np.random.default_rng(seed)
    ids = []
    for v in rng.permutation(n_videos):
        vid, n = f"v{v:03d}", int(rng.integers(1, 40))
        vecs = rng.standard_normal((n, store.dim)).astype(np.float32) * rng.uniform(0.5, 3.0, size=(n, 1))
        t = np.arange(n, dtype=np.float32) * 0.5
        table = FrameTable.of(np.arange(n), t + 0.25, t, t + 0.5, vecs)
        order = rng.permutation(n)
        store.insert_frames(vid, table.take(order[: n // 2]))
        store.insert_frames(vid, table.take(order[n // 2 :]))
        if v in (1, 2) and n > 3:
            vecs[1:] = vecs[0]  # a still: thinning merges it into one row
            store.upsert_frames(
                vid, merge_similar(FrameTable.of(table.idx, table.t, table.t_start, table.t_end, vecs), 1.0)
            )
            if v == 1:  # finish the thinning: delete the members
                store.delete_frame_rows([f"{vid}:{i:06d}" for i in range(1, n)])
        ids.append(vid)
    return sorted(ids)


def assert_columns_match_rows(store: VideoStore, ids: list[str]) -> None:
    fields = store.frame_read_fields()
    kw = dict(filter=in_list("video_id", ids), output_fields=fields, limit=16_384, strict_float32=True)
    rows = list(store.client.query(store.frames, **kw))  # the public path: one dict per row
    result = store.client.query(store.frames, **kw)
    assert _vector_columns(result) is not None, "the pinned pymilvus's field data is gone: bulk reads fall back"
    cols = result_columns(result, fields)
    assert len(rows) == len(cols["video_id"]) > 0
    for f in fields:
        want = np.stack(list(r[f] for r in rows)) if f == "vec" else np.asarray([r[f] for r in rows])
        assert np.array_equal(cols[f], want), f
    assert cols["vec"].dtype == np.float32 and cols["vec"].shape == (len(rows), store.dim)

    fast, slow = store.frames_of(ids), group_frame_rows(rows)
    assert sorted(fast) == sorted(slow) == ids
    for vid in ids:
        a, b = fast[vid], slow[vid]
        for name in ("idx", "t", "t_start", "t_end", "vectors", "merged"):
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and np.array_equal(x, y), (vid, name)


def test_columns_are_the_row_path_bit_for_bit_on_lite(tmp_path, tiny_clip):
    store = VideoStore(str(tmp_path / "c.db"))
    store.ensure_model(tiny_clip.stamp())
    ids = fill(store)
    assert_columns_match_rows(store, ids)
    thinned = store.frames_of(["v001", "v002"])
    assert [len(thinned[v]) for v in ("v001", "v002")] == [1, 1]  # merged rows only, members left out
    store.close()


def test_a_result_without_field_data_is_read_row_by_row():
    rows = [{"video_id": "a", "idx": 3, "vec": np.ones(2, np.float32)}, {"video_id": "b", "idx": 1, "vec": np.zeros(2)}]
    cols = result_columns(rows, ["video_id", "idx", "vec"])  # a plain list: no pymilvus field data
    assert cols["video_id"].tolist() == ["a", "b"] and cols["idx"].tolist() == [3, 1]
    assert cols["vec"].dtype == np.float32 and cols["vec"].tolist() == [[1, 1], [0, 0]]
