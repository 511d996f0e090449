"""The vidseek store: three Milvus collections behind one small API, same code for Lite and a server.

    {prefix}_videos  one row per video: id, path, status/stage/error, duration, frames, metadata (JSON),
                     mean_vec (CLIP4Clip meanP, unit) and learned_vec (temporal head, zeros when absent)
    {prefix}_frames  one row per sampled frame: pk "<video_id>:<idx>", video_id, idx, t, span, vec
                     (unit frame vector, IP index = cosine), norm (raw = vec · norm, for query weighting)
                     and merged (how many sampled frames the row stands for: 1, more once thinned)
    {prefix}_meta    the model stamp (which embedding space this store holds), and the thinning record

``uri``: a local path (Milvus Lite; the path is a directory, one process at a time) or
``http(s)://host:19530`` (a Milvus server).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from vidseek.operators.frame_table import FrameTable
from vidseek.operators.model_stamp import describe_stamp_diff
from vidseek.store.columns import result_columns
from vidseek.store.filters import in_list, quote
from vidseek.store.frame_index import FrameIndex
from vidseek.store.frame_index import frame_index as frame_index_of
from vidseek.store.server_caps import ServerCaps
from vidseek.store.server_retry import RetryingClient

# pymilvus probes an RPC that Milvus Lite does not implement and grpc logs a traceback for it on every
# insert; the call has a client-side fallback, so the log is noise.
logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
# Lite logs a traceback when a store is locked by another process; StoreError reports it with what to do.
logging.getLogger("milvus_lite.server_manager").setLevel(logging.CRITICAL)
# gRPC's C core writes INFO lines to stderr ("skipping fork() handlers", on every fork while a channel is
# busy) until something initialises absl logging; importing torch did, and a job's driver no longer imports
# it (docs/architecture.md "A job's fixed costs"). Errors still print; a user's own setting wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
# Milvus Lite serves gRPC inside this process; pymilvus pings it every 10 s even when idle, which Lite's
# server answers with GOAWAY "too_many_pings", an ERROR line on the terminal (seen during a quiet index job).
# A keepalive to our own process detects nothing, so it is off (INT_MAX: gRPC's value for "never").
LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 2**31 - 1, "grpc.keepalive_permit_without_calls": False}

log = logging.getLogger(__name__)

VIDEO_FIELDS = [
    "video_id",
    "path",
    "status",
    "stage",
    "error",
    "duration",
    "n_frames",
    "lost",
    "decoder",
    "sampling",
    "learned_head",
    "metadata",
]
FRAME_FIELDS = ["pk", "video_id", "idx", "t", "t_start", "t_end", "norm", "merged"]
FRAME_READ = ["video_id", "idx", "t", "t_start", "t_end", "norm", "vec", "merged"]  # what frame readers fetch
ID_LEN, PATH_LEN, ERR_LEN = 64, 4096, 2048
PAGE = 4096
QUERY_LIMIT = 16_384  # Milvus' largest offset + limit of one query
# Reads pass ``strict_float32=True``: pymilvus then decodes a result's float vectors into one numpy array and
# hands out row views of it; otherwise it slices the protobuf field into a list of Python floats per row
# (measured on Lite, 6,000 rows × 512-d: 0.08–0.13 s against 0.57–1.15 s).
# Every read sees every write acknowledged before it (a server's default, "Bounded", may lag by seconds): a
# video counts as done only when its rows are visible to search, and a delete before a re-insert. The
# writer's inserts are durable once acknowledged (Milvus' write-ahead log); no explicit flush is needed.
CONSISTENCY = "Strong"
# A searcher's reads (``search_consistency``, set by ``retrieval.search.Searcher``) use "Session" instead: its
# own process's writes are seen at once (the service's ingest), other processes' within the server's time
# tick (~0.2 s), and no call waits for a Strong timestamp — measured on the 2.3.5 server, that wait was
# ~0.3 s per call, four calls per search.
SEARCH_CONSISTENCY = "Session"
GROUP_FANOUT = 10  # frames fetched per wanted video where the server cannot group (Milvus 2.3)


class StoreError(RuntimeError):
    """The store cannot be used as asked; the message says what to do."""


class StoreUnavailableError(StoreError):
    """A Milvus server that stopped answering for longer than the store's retry budget."""


class StoreBusyError(StoreError):
    """A Milvus Lite store that another process holds (one process per store)."""


class ModelMismatchError(StoreError):
    pass


def is_server_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "tcp://", "grpc://"))


def frame_pk(video_id: str, idx: int) -> str:
    return f"{video_id}:{int(idx):06d}"


def frame_rows(video_id: str, table: FrameTable) -> list[dict]:
    """Frame collection rows: unit vector + its norm (raw = vec · norm, for query weighting), and how many
    sampled frames each row stands for (``merged``, 1 unless thinned)."""
    norms = np.linalg.norm(table.vectors, axis=1).astype(np.float32)
    unit = table.vectors / np.maximum(norms, 1e-12)[:, None]  # [n, D]
    return [
        {
            "pk": frame_pk(video_id, i),
            "video_id": video_id,
            "idx": int(i),
            "t": float(a),
            "t_start": float(b),
            "t_end": float(c),
            "norm": float(n),
            "merged": int(m),
            "vec": u,
        }
        for i, a, b, c, n, m, u in zip(
            table.idx, table.t, table.t_start, table.t_end, norms, table.merged, unit.astype(np.float32)
        )
    ]


class VideoStore:
    def __init__(
        self,
        uri: str = "./vidseek.db",
        prefix: str = "vidseek",
        token: str = "",
        lock_wait_s: float = 15.0,
        caps: ServerCaps | None = None,
        retry_s: float = 15.0,
        write_retry_s: float | None = None,
        frame_index: str | None = None,
    ):
        """``caps``: what the server can do; read from its version when not given (tests pass 2.3's to run
        the fallbacks on Lite). ``frame_index``: the frame vectors' index type for a new store
        (store/frame_index.py; None: HNSW), checked against an existing store's. ``retry_s``: how long a
        server that stops answering is waited for, retrying with backoff, before a call fails with
        ``StoreUnavailableError`` (store/server_retry.py);
        ``write_retry_s``: the same for writes, when it differs (a service answers searches fast but lets its
        ingest job wait as long as an index job would)."""
        from pymilvus import MilvusClient  # imported here: importing pymilvus costs ~0.5 s

        # Lite has no mvccTs RPC; the iterator falls back to client time and warns on every call.
        logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)

        self.uri = uri
        self.prefix = prefix
        self.videos, self.frames, self.meta = f"{prefix}_videos", f"{prefix}_frames", f"{prefix}_meta"
        self.dim: int | None = None
        if not is_server_uri(uri):
            Path(uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.client = self._connect(MilvusClient, token, lock_wait_s)
        if is_server_uri(uri):
            self.client = RetryingClient(
                self.client, uri, retry_s, self._reload_collections, StoreUnavailableError, write_retry_s
            )
        if caps is None:
            caps = (
                ServerCaps.from_version(self.client.get_server_version()) if is_server_uri(uri) else ServerCaps.lite()
            )
        self.caps = caps
        self.has_learned = caps.multi_vector  # whether the videos collection holds learned_vec
        self.has_merged = True  # whether the frames collection holds ``merged`` (stores before thinning do not)
        self.search_consistency = CONSISTENCY  # the search path's reads (see SEARCH_CONSISTENCY)
        self.requested_index = frame_index_of(frame_index) if frame_index else None
        self.frame_index = self.requested_index or FrameIndex("HNSW")
        if self.client.has_collection(self.meta):
            self._load()

    # -- lifecycle --------------------------------------------------------------------------------
    def _connect(self, client_cls, token: str, lock_wait_s: float):
        """Open the client; a Lite store locked by another process is retried for ``lock_wait_s`` (the
        workers of a job that was just killed can take a few seconds to exit and free it)."""
        deadline = time.monotonic() + lock_wait_s
        while True:
            try:
                if is_server_uri(self.uri):
                    return client_cls(uri=str(self.uri), token=token)
                return client_cls(str(self.uri), grpc_options=LITE_GRPC_OPTIONS)
            except Exception as e:  # noqa: BLE001 — pymilvus/Lite raise many types; name the store either way
                if not is_server_uri(self.uri) and time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                if is_server_uri(self.uri):
                    raise StoreError(
                        f"cannot reach the Milvus server at {self.uri} ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:300]}): is it running and is the URI right? See the "
                        'README, "Milvus server"'
                    ) from e
                hint = (
                    "is another vidseek process (index job or server) using it? Milvus Lite allows one process "
                    "per store: wait for it or stop it; if `vidseek serve` holds it, index through the service "
                    "(POST /ingest); or use a Milvus server URI"
                )
                raise StoreBusyError(f"cannot open store {self.uri}: {type(e).__name__}: {e}. {hint}") from e

    def _reload_collections(self, client) -> None:
        for name in (self.meta, self.videos, self.frames):
            if client.has_collection(name):
                client.load_collection(name)

    def _load(self) -> None:
        for name in (self.meta, self.videos, self.frames):
            if self.client.has_collection(name):
                self.client.load_collection(name)
        stamp = self.model_stamp()
        self.dim = int(stamp["embed_dim"]) if stamp else None
        if self.client.has_collection(self.videos):
            fields = {f["name"] for f in self.client.describe_collection(self.videos)["fields"]}
            self.has_learned = "learned_vec" in fields
        if self.client.has_collection(self.frames):
            fields = {f["name"] for f in self.client.describe_collection(self.frames)["fields"]}
            self.has_merged = "merged" in fields
            self.frame_index = FrameIndex(str(self.client.describe_index(self.frames, "vec")["index_type"]).upper())

    def close(self) -> None:
        """Close the client and, for Milvus Lite, release the file lock now (not at process exit)."""
        try:
            self.client.close()
        finally:
            if not is_server_uri(self.uri):
                release_lite(self.uri)

    def __enter__(self) -> "VideoStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- model stamp ------------------------------------------------------------------------------
    def model_stamp(self) -> dict | None:
        if not self.client.has_collection(self.meta):
            return None
        rows = self.client.query(self.meta, filter='key == "model"', output_fields=["value"])
        return dict(rows[0]["value"]) if rows else None

    def ensure_model(self, stamp: dict) -> None:
        """Create the collections for ``stamp``'s embedding space, or check an existing store matches it."""
        existing = self.model_stamp()
        if existing is not None:
            check_same_model(existing, stamp, self.uri)
            self.dim = int(existing["embed_dim"])
            if self.requested_index and self.requested_index != self.frame_index:
                raise StoreError(
                    f"store {self.uri} indexes its frames with {self.frame_index.index_type}, not "
                    f"{self.requested_index.index_type}: a store's index is chosen when it is created; leave "
                    "--frame-index out for this store, or index into a new --store"
                )
            return
        self._create(stamp)

    def _create(self, stamp: dict) -> None:
        from pymilvus import DataType, MilvusClient

        dim = int(stamp["embed_dim"])
        c = self.client
        s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("video_id", DataType.VARCHAR, is_primary=True, max_length=ID_LEN)
        s.add_field("path", DataType.VARCHAR, max_length=PATH_LEN)
        s.add_field("status", DataType.VARCHAR, max_length=16)
        s.add_field("stage", DataType.VARCHAR, max_length=32)
        s.add_field("error", DataType.VARCHAR, max_length=ERR_LEN)
        s.add_field("duration", DataType.FLOAT)
        s.add_field("n_frames", DataType.INT64)
        s.add_field("lost", DataType.INT64)
        s.add_field("decoder", DataType.VARCHAR, max_length=16)
        s.add_field("sampling", DataType.VARCHAR, max_length=32)
        s.add_field("learned_head", DataType.VARCHAR, max_length=128)
        s.add_field("metadata", DataType.JSON)
        s.add_field("mean_vec", DataType.FLOAT_VECTOR, dim=dim)
        ip = c.prepare_index_params()
        ip.add_index("mean_vec", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 200})
        if self.caps.multi_vector:  # Milvus 2.3: one vector field per collection (no learned vectors there)
            s.add_field("learned_vec", DataType.FLOAT_VECTOR, dim=dim)
            ip.add_index("learned_vec", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 200})
        c.create_collection(self.videos, schema=s, index_params=ip, consistency_level=CONSISTENCY)
        self.has_learned = self.caps.multi_vector

        s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=ID_LEN + 8)
        s.add_field("video_id", DataType.VARCHAR, max_length=ID_LEN)
        s.add_field("idx", DataType.INT64)
        s.add_field("t", DataType.FLOAT)
        s.add_field("t_start", DataType.FLOAT)
        s.add_field("t_end", DataType.FLOAT)
        s.add_field("norm", DataType.FLOAT)
        s.add_field("merged", DataType.INT64)
        s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        ip = c.prepare_index_params()
        fi = self.frame_index
        ip.add_index("vec", index_type=fi.index_type, metric_type="IP", params=fi.build_params(dim))
        c.create_collection(self.frames, schema=s, index_params=ip, consistency_level=CONSISTENCY)
        self.has_merged = True

        s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
        s.add_field("value", DataType.JSON)
        s.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)  # Milvus requires one vector field
        ip = c.prepare_index_params()
        ip.add_index("dummy", index_type="FLAT", metric_type="L2")
        c.create_collection(self.meta, schema=s, index_params=ip, consistency_level=CONSISTENCY)
        # The stamp goes in last: a store without it is treated as empty and re-created.
        c.insert(self.meta, [{"key": "model", "value": stamp, "dummy": [0.0, 0.0]}])
        self.dim = dim

    # -- thinning record ---------------------------------------------------------------------------
    def thinning(self) -> dict | None:
        """``{"threshold": T}`` when every video of this store is thinned at T (``vidseek thin``, or index jobs
        with ``--merge-similar T`` from the store's first video on); None for an unthinned store."""
        if not self.client.has_collection(self.meta):
            return None
        rows = self.client.query(self.meta, filter='key == "thinning"', output_fields=["value"])
        return dict(rows[0]["value"]) if rows else None

    def record_thinning(self, threshold: float) -> None:
        self.require_merged()
        self.client.upsert(
            self.meta, [{"key": "thinning", "value": {"threshold": float(threshold)}, "dummy": [0.0, 0.0]}]
        )

    def require_merged(self) -> None:
        if not self.has_merged:
            raise StoreError(
                f"store {self.uri} was made by a vidseek before thinning (its frame rows have no `merged` "
                "field), so it cannot hold merged rows: index into a new --store to use --merge-similar or "
                "`vidseek thin`"
            )

    def require_ready(self) -> None:
        if self.dim is None:
            raise StoreError(f"store {self.uri} is empty: run `vidseek index SOURCE --store {self.uri}` first")

    # -- writes -----------------------------------------------------------------------------------
    def insert_frames(self, video_id: str, table: FrameTable) -> int:
        """Frame rows of one video (raw vectors; ``merged`` > 1 only in a store that records it)."""
        if not len(table):
            return 0
        rows = self._frame_rows(video_id, table)
        self.client.insert(self.frames, rows)
        return len(rows)

    def upsert_frames(self, video_id: str, table: FrameTable) -> int:
        """Replace frame rows by key (thinning rewrites a run's first row as the merged row)."""
        if not len(table):
            return 0
        self.require_merged()
        self.client.upsert(self.frames, self._frame_rows(video_id, table))
        return len(table)

    def _frame_rows(self, video_id: str, table: FrameTable) -> list[dict]:
        rows = frame_rows(video_id, table)
        if not self.has_merged:
            if np.any(table.merged != 1):
                self.require_merged()
            for r in rows:
                del r["merged"]
        return rows

    def delete_frame_rows(self, pks: list[str]) -> None:
        for i in range(0, len(pks), 512):
            self.client.delete(self.frames, filter=in_list("pk", pks[i : i + 512]))

    def frame_keys(self, video_ids: list[str]) -> dict[str, list[str]]:
        """Every frame row's key per video, merged members not yet deleted included (``vidseek thin``)."""
        out: dict[str, list[str]] = {}
        for i in range(0, len(video_ids), 256):
            for r in self.iter_query(self.frames, in_list("video_id", video_ids[i : i + 256]), ["pk", "video_id"]):
                out.setdefault(r["video_id"], []).append(r["pk"])
        return out

    def upsert_videos(self, rows: list[dict]) -> None:
        """Video rows; missing vectors become zeros (error records, or no learned head)."""
        if not rows:
            return
        zeros = np.zeros(self.dim, np.float32)
        out = []
        for r in rows:
            r = dict(r)
            r["error"] = str(r.get("error", ""))[:ERR_LEN]
            r["path"] = str(r["path"])[:PATH_LEN]
            r.setdefault("metadata", {})
            if not self.has_learned:
                if r.get("learned_vec") is not None and np.any(r["learned_vec"]):
                    raise self.no_learned_error()
                r.pop("learned_vec", None)
            for f in ("mean_vec", "learned_vec") if self.has_learned else ("mean_vec",):
                v = r.get(f)
                r[f] = zeros if v is None else np.asarray(v, np.float32)
            for f, default in (
                ("status", "ok"),
                ("stage", ""),
                ("decoder", ""),
                ("sampling", ""),
                ("learned_head", ""),
                ("duration", 0.0),
                ("n_frames", 0),
                ("lost", 0),
            ):
                r.setdefault(f, default)
            out.append(r)
        self.client.upsert(self.videos, out)

    def delete_videos(self, video_ids: Iterable[str]) -> None:
        """All rows (video and frames) of these videos."""
        ids = list(video_ids)
        for i in range(0, len(ids), 512):
            part = ids[i : i + 512]
            self.client.delete(self.frames, filter=in_list("video_id", part))
            self.client.delete(self.videos, filter=in_list("video_id", part))

    def delete_frames(self, video_ids: Iterable[str]) -> None:
        ids = list(video_ids)
        for i in range(0, len(ids), 512):
            self.client.delete(self.frames, filter=in_list("video_id", ids[i : i + 512]))

    # -- reads ------------------------------------------------------------------------------------
    def iter_query(self, collection: str, filter: str, fields: list[str]) -> Iterator[dict]:
        it = self.client.query_iterator(
            collection, batch_size=PAGE, filter=filter, output_fields=fields, strict_float32=True
        )
        try:
            while batch := it.next():
                yield from batch
        finally:
            it.close()

    def video_records(self, filter: str = 'video_id != ""', fields: list[str] | None = None) -> list[dict]:
        if self.dim is None:
            return []
        fields, fill = self._readable(fields or VIDEO_FIELDS)
        return [{**r, **fill} for r in self.iter_query(self.videos, filter, fields)]

    def get_videos(self, video_ids: list[str], fields: list[str] | None = None) -> dict[str, dict]:
        fields, fill = self._readable(fields or VIDEO_FIELDS)
        out: dict[str, dict] = {}
        for i in range(0, len(video_ids), 512):
            rows = self.client.query(
                self.videos,
                filter=in_list("video_id", video_ids[i : i + 512]),
                output_fields=fields,
                strict_float32=True,
                consistency_level=self.search_consistency,
            )
            out.update({r["video_id"]: {**r, **fill} for r in rows})
        return out

    def _readable(self, fields: list[str]) -> tuple[list[str], dict]:
        """Fields this store holds, and zeros for ``learned_vec`` where it has none (Milvus 2.3)."""
        if self.has_learned or "learned_vec" not in fields:
            return fields, {}
        return [f for f in fields if f != "learned_vec"], {"learned_vec": np.zeros(self.dim, np.float32)}

    def no_learned_error(self) -> StoreError:
        return StoreError(
            f"store {self.uri} holds no learned vectors: Milvus {self.caps.version} allows one vector "
            "field per collection (learned heads need Milvus 2.4 or newer, or Milvus Lite)"
        )

    def frame_read_fields(self) -> list[str]:
        return FRAME_READ if self.has_merged else [f for f in FRAME_READ if f != "merged"]

    def frames_of(self, video_ids: list[str]) -> dict[str, FrameTable]:
        """Every frame row of these videos, one table each (raw vectors), read as columns (store/columns.py)."""
        out: dict[str, FrameTable] = {}
        fields = self.frame_read_fields()
        for i in range(0, len(video_ids), 256):
            expr = in_list("video_id", video_ids[i : i + 256])
            # One plain query per 256 videos (an iterator costs extra round trips); page only when it fills.
            part = self.client.query(
                self.frames,
                filter=expr,
                output_fields=fields,
                limit=QUERY_LIMIT,
                strict_float32=True,
                consistency_level=self.search_consistency,
            )
            if len(part) < QUERY_LIMIT:
                out.update(group_frame_columns(result_columns(part, fields)))
            else:
                out.update(group_frame_rows(self.iter_query(self.frames, expr, fields)))
        return out

    def count(self, collection: str | None = None, filter: str = "") -> int:
        if self.dim is None:
            return 0
        rows = self.client.query(collection or self.videos, filter=filter, output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def count_frames(self, video_id: str | None = None) -> int:
        return self.count(self.frames, f"video_id == {quote(video_id)}" if video_id else "")

    # -- search -----------------------------------------------------------------------------------
    def search_videos(
        self, queries: np.ndarray, k: int, field: str = "mean_vec", filter: str = "", fields: list[str] | None = None
    ) -> list[list[dict]]:
        """ANN over video vectors; queries [Q, D] unit. Per query: [{video_id, score, ...fields}]."""
        if field == "learned_vec" and not self.has_learned:
            raise self.no_learned_error()
        # the id asked for as an output field: a hit's own key for it differs (Lite: "video_id", 2.3: "id")
        out_fields = list(dict.fromkeys([*(fields or ["path"]), "video_id"]))
        res = self.client.search(
            self.videos,
            data=[q.astype(np.float32) for q in queries],
            limit=k,
            anns_field=field,
            filter=filter,
            output_fields=out_fields,
            search_params={"metric_type": "IP", "params": {"ef": max(64, k)}},
            consistency_level=self.search_consistency,
        )
        return [[{**h["entity"], "score": float(h["distance"])} for h in hits] for hits in res]

    @property
    def frame_grouping(self) -> str:
        """Where a grouped frame search groups: "server" (``group_by_field``) or "client" (over-fetch and group
        here), by the server's version and this store's frame index type (store/server_caps.py)."""
        return "server" if self.caps.groups(self.frame_index.index_type) else "client"

    def search_frames_grouped(self, queries: np.ndarray, k: int, filter: str = "") -> list[list[dict]]:
        """Best frame per video (max pooling): [{video_id, score, t, t_start, t_end}], best first.

        One grouped search where Milvus groups for this frame index (``frame_grouping``); elsewhere the top
        ``k × GROUP_FANOUT`` frames, grouped here, fetching more while a query has fewer than k videos
        (tests/test_server_caps.py measures its recall against exact grouping)."""
        data = [q.astype(np.float32) for q in queries]
        fields = ["video_id", "t", "t_start", "t_end"]
        if self.frame_grouping == "server":
            res = self.client.search(
                self.frames,
                data=data,
                limit=k,
                anns_field="vec",
                filter=filter,
                group_by_field="video_id",
                output_fields=fields,
                search_params={"metric_type": "IP", "params": self.frame_index.search_params(k * 4)},
                consistency_level=self.search_consistency,
            )
            return [[{"score": float(h["distance"]), **h["entity"]} for h in hits] for hits in res]
        limit, found = min(k * GROUP_FANOUT, QUERY_LIMIT), None
        while True:  # over-fetch frames while a query lacks k videos and more frames bring more videos
            res = self.client.search(
                self.frames,
                data=data,
                limit=limit,
                anns_field="vec",
                filter=filter,
                output_fields=fields,
                search_params={"metric_type": "IP", "params": self.frame_index.search_params(limit)},
                consistency_level=self.search_consistency,
            )
            hits = [[{"score": float(h["distance"]), **h["entity"]} for h in q_hits] for q_hits in res]
            grouped = [best_per_video(h, k) for h in hits]
            counts = [len(g) for g in grouped]
            short = any(c < k and len(h) == limit for c, h in zip(counts, hits))
            if not short or limit >= QUERY_LIMIT or counts == found:  # a small store: no more videos exist
                return grouped
            limit, found = min(limit * 4, QUERY_LIMIT), counts


def best_per_video(hits: list[dict], k: int) -> list[dict]:
    """The first (best) hit of each video among score-ordered frame hits, top ``k`` videos."""
    seen: dict[str, dict] = {}
    for h in hits:
        if h["video_id"] not in seen:
            seen[h["video_id"]] = h
            if len(seen) == k:
                break
    return list(seen.values())


def group_stored_rows(rows) -> dict[str, dict[str, np.ndarray]]:
    """Frame rows (dicts) -> per video in the store's layout (``group_stored_columns``)."""
    rows = list(rows)
    return group_stored_columns(result_columns(rows, list(rows[0]))) if rows else {}


def group_stored_columns(cols: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Frame rows as columns (``result_columns``) -> per video, in the store's own layout (what a replica
    keeps in memory), sorted by idx: idx, t, t_start, t_end, norm, merged [T] and unit vectors [T, D].

    Rows inside a merged row's span are left out: they are the members a thinning that was stopped midway
    had not deleted yet (it writes the merged row first), and the merged row already stands for them."""
    n = len(cols["video_id"])
    if not n:
        return {}
    vid = cols["video_id"].astype(str)  # [N] fixed-width: sorts in C, not by Python comparisons
    idx = cols["idx"].astype(np.int64)
    order = np.argsort(idx, kind="stable")
    order = order[np.argsort(vid[order], kind="stable")]  # by video, then idx
    cuts = np.flatnonzero(vid[order][1:] != vid[order][:-1]) + 1
    merged = cols["merged"].astype(np.int64) if "merged" in cols else np.ones(n, np.int64)
    t, t0, t1, norm = (cols[k].astype(np.float32) for k in ("t", "t_start", "t_end", "norm"))
    unit = np.asarray(cols["vec"], np.float32)  # [N, D]
    out = {}
    for sel in np.split(order, cuts):
        if np.any(merged[sel] > 1):
            sel = sel[_outside_merged_spans(merged[sel], cols["t_end"][sel].astype(np.float64))]
        out[str(vid[sel[0]])] = {
            "idx": idx[sel],
            "t": t[sel],
            "t_start": t0[sel],
            "t_end": t1[sel],
            "norm": norm[sel],
            "merged": merged[sel],
            "unit": unit[sel],
        }
    return out


def _outside_merged_spans(merged: np.ndarray, t_end: np.ndarray) -> np.ndarray:
    """Which rows (sorted by idx) to keep: not the members inside a merged row's span (group_stored_columns)."""
    keep = np.ones(len(merged), bool)
    last = None
    for i in range(len(merged)):
        if last is not None and merged[last] > 1 and t_end[i] <= t_end[last] + 1e-4:
            keep[i] = False
            continue
        last = i
    return keep


def table_of(stored: dict[str, np.ndarray]) -> FrameTable:
    """A video's rows in the store's layout (``group_stored_columns``) as a FrameTable: raw = unit × norm."""
    raw = stored["unit"] * stored["norm"][:, None]  # [T, D]
    return FrameTable(stored["idx"], stored["t"], stored["t_start"], stored["t_end"], raw, stored["merged"])


def group_frame_columns(cols: dict[str, np.ndarray]) -> dict[str, FrameTable]:
    """Frame rows as columns -> one FrameTable per video (see ``group_stored_columns``)."""
    return {vid: table_of(stored) for vid, stored in group_stored_columns(cols).items()}


def group_frame_rows(rows) -> dict[str, FrameTable]:
    """Frame rows of any videos -> one FrameTable per video (see ``group_stored_rows``)."""
    return {vid: table_of(stored) for vid, stored in group_stored_rows(rows).items()}


def check_same_model(existing: dict, stamp: dict, uri: str) -> None:
    detail = describe_stamp_diff(existing, stamp, "store has", "you asked for")
    if detail:
        raise ModelMismatchError(
            f"store {uri} holds vectors of another embedding model ({detail}). Use --model "
            f"{existing.get('model')} (weights {existing.get('weights')}) with this store, or a new --store path."
        )


def release_lite(uri: str) -> None:
    """Free Milvus Lite's per-process lock on ``uri`` so another process may open it."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    server_manager_instance.release_server(str(uri))


class VideoLookup:
    """Match a video reference from a dataset or another system's run to a store video id.

    A reference matches by video id, by absolute path, or by file stem (``video123`` for
    ``/lib/video123.mp4``), in that order; only ``ok`` videos are considered. Built once per store read.
    """

    def __init__(self, store: "VideoStore"):
        self.keys: dict[str, str] = {}
        for r in store.video_records('status == "ok"', ["video_id", "path"]):
            self.keys.setdefault(Path(r["path"]).stem, r["video_id"])
            self.keys[r["path"]] = r["video_id"]
            self.keys[r["video_id"]] = r["video_id"]

    def find(self, ref: str | None) -> str | None:
        if not ref:
            return None
        for key in (ref, str(Path(ref).absolute()), Path(ref).stem):
            if key in self.keys:
                return self.keys[key]
        return None
