"""The store's collections as Milvus holds them: field names, string lengths, query limits, consistency.

{prefix}_videos  one row per video: id, path, status/stage/error, duration, frames, metadata (JSON),
                 mean_vec (CLIP4Clip meanP, unit) and learned_vec (temporal head, zeros when absent)
{prefix}_frames  one row per sampled frame: pk "<video_id>:<idx>", video_id, idx, t, span, vec
                 (unit frame vector, IP index = cosine), norm (raw = vec · norm, for query weighting)
                 and merged (how many sampled frames the row stands for: 1, more once thinned)
{prefix}_meta    the model stamp (which embedding space this store holds), and the thinning record
"""

from __future__ import annotations

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
