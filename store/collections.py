"""A store's three collections: their schemas and creation, loading them, the model stamp, the thinning record.

The model stamp (which embedding space the store holds) is written last when a store is created: a store
without it is treated as empty and created again. Layout: store/layout.py.
"""

from __future__ import annotations

from typing import Any

from vidseek.operators.model_stamp import describe_stamp_diff
from vidseek.store.context import StoreContext
from vidseek.store.errors import ModelMismatchError, StoreError
from vidseek.store.frame_index import FrameIndex
from vidseek.store.layout import CONSISTENCY, ERR_LEN, ID_LEN, PATH_LEN

HNSW_VIDEO = {"index_type": "HNSW", "metric_type": "IP", "params": {"M": 16, "efConstruction": 200}}
# the videos collection's scalar fields: name, type name (pymilvus DataType), max_length for strings
VIDEO_SCALARS = [
    ("path", "VARCHAR", PATH_LEN),
    ("status", "VARCHAR", 16),
    ("stage", "VARCHAR", 32),
    ("error", "VARCHAR", ERR_LEN),
    ("duration", "FLOAT", None),
    ("n_frames", "INT64", None),
    ("lost", "INT64", None),
    ("decoder", "VARCHAR", 16),
    ("sampling", "VARCHAR", 32),
    ("learned_head", "VARCHAR", 128),
    ("metadata", "JSON", None),
]
FRAME_SCALARS = [
    ("video_id", "VARCHAR", ID_LEN),
    ("idx", "INT64", None),
    ("t", "FLOAT", None),
    ("t_start", "FLOAT", None),
    ("t_end", "FLOAT", None),
    ("norm", "FLOAT", None),
    ("merged", "INT64", None),
]


def check_same_model(existing: dict, stamp: dict, uri: str) -> None:
    detail = describe_stamp_diff(existing, stamp, "store has", "you asked for")
    if detail:
        raise ModelMismatchError(
            f"store {uri} holds vectors of another embedding model ({detail}). Use --model "
            f"{existing.get('model')} (weights {existing.get('weights')}) with this store, or a new --store path."
        )


def _schema(primary: str, primary_len: int, scalars: list[tuple[str, str, int | None]]):
    from pymilvus import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field(primary, DataType.VARCHAR, is_primary=True, max_length=primary_len)
    for name, kind, max_length in scalars:
        s.add_field(name, getattr(DataType, kind), **({"max_length": max_length} if max_length else {}))
    return s


class Collections:
    def __init__(self, ctx: StoreContext):
        self.ctx = ctx

    def reload(self, client: Any) -> None:
        """Load the collections that exist (``client``: the raw one, when a restarted server needs it)."""
        for name in (self.ctx.meta, self.ctx.videos, self.ctx.frames):
            if client.has_collection(name):
                client.load_collection(name)

    def load(self) -> None:
        """Open an existing store: load its collections and read what they hold."""
        ctx, client = self.ctx, self.ctx.client
        self.reload(client)
        stamp = self.model_stamp()
        ctx.dim = int(stamp["embed_dim"]) if stamp else None
        if client.has_collection(ctx.videos):
            fields = {f["name"] for f in client.describe_collection(ctx.videos)["fields"]}
            ctx.has_learned = "learned_vec" in fields
        if client.has_collection(ctx.frames):
            fields = {f["name"] for f in client.describe_collection(ctx.frames)["fields"]}
            ctx.has_merged = "merged" in fields
            ctx.frame_index = FrameIndex(str(client.describe_index(ctx.frames, "vec")["index_type"]).upper())

    def _meta_value(self, key: str) -> dict | None:
        if not self.ctx.client.has_collection(self.ctx.meta):
            return None
        rows = self.ctx.client.query(self.ctx.meta, filter=f'key == "{key}"', output_fields=["value"])
        return dict(rows[0]["value"]) if rows else None

    def model_stamp(self) -> dict | None:
        return self._meta_value("model")

    def ensure_model(self, stamp: dict) -> None:
        """Create the collections for ``stamp``'s embedding space, or check an existing store matches it."""
        ctx = self.ctx
        existing = self.model_stamp() or self._create(stamp)
        if existing is None:
            return
        check_same_model(existing, stamp, ctx.uri)
        ctx.dim = int(existing["embed_dim"])
        if ctx.requested_index and ctx.requested_index != ctx.frame_index:
            raise StoreError(
                f"store {ctx.uri} indexes its frames with {ctx.frame_index.index_type}, not "
                f"{ctx.requested_index.index_type}: a store's index is chosen when it is created; leave "
                "--frame-index out for this store, or index into a new --store"
            )

    def _create(self, stamp: dict) -> dict | None:
        """The three collections, then the stamp; None once created, or the stamp another writer of this
        store wrote while this one waited for the write lock."""
        from pymilvus import DataType

        ctx, c, dim = self.ctx, self.ctx.client, int(stamp["embed_dim"])
        with ctx.hook.writing([]):
            existing = self.model_stamp()
            if existing is not None:
                return existing
            s = _schema("video_id", ID_LEN, VIDEO_SCALARS)
            s.add_field("mean_vec", DataType.FLOAT_VECTOR, dim=dim)
            ip = c.prepare_index_params()
            ip.add_index("mean_vec", **HNSW_VIDEO)
            if ctx.caps.multi_vector:  # Milvus 2.3: one vector field per collection (no learned vectors there)
                s.add_field("learned_vec", DataType.FLOAT_VECTOR, dim=dim)
                ip.add_index("learned_vec", **HNSW_VIDEO)
            c.create_collection(ctx.videos, schema=s, index_params=ip, consistency_level=CONSISTENCY)
            ctx.has_learned = ctx.caps.multi_vector

            s = _schema("pk", ID_LEN + 8, FRAME_SCALARS)
            s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
            ip = c.prepare_index_params()
            fi = ctx.frame_index
            ip.add_index("vec", index_type=fi.index_type, metric_type="IP", params=fi.build_params(dim))
            c.create_collection(ctx.frames, schema=s, index_params=ip, consistency_level=CONSISTENCY)
            ctx.has_merged = True

            s = _schema("key", 64, [("value", "JSON", None)])
            s.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)  # Milvus requires one vector field
            ip = c.prepare_index_params()
            ip.add_index("dummy", index_type="FLAT", metric_type="L2")
            c.create_collection(ctx.meta, schema=s, index_params=ip, consistency_level=CONSISTENCY)
            # The stamp goes in last: a store without it is treated as empty and re-created.
            c.insert(ctx.meta, [{"key": "model", "value": stamp, "dummy": [0.0, 0.0]}])
            ctx.dim = dim
        return None

    def thinning(self) -> dict | None:
        """``{"threshold": T}`` when every video of this store is thinned at T (``vidseek thin``, or index jobs
        with ``--merge-similar T`` from the store's first video on); None for an unthinned store."""
        return self._meta_value("thinning")

    def record_thinning(self, threshold: float) -> None:
        self.ctx.require_merged()
        row = {"key": "thinning", "value": {"threshold": float(threshold)}, "dummy": [0.0, 0.0]}
        with self.ctx.hook.writing([]):
            self.ctx.client.upsert(self.ctx.meta, [row])
