"""The index job's configuration and its defaults: the one place they are written.

Light on purpose (no torch, no Ray, no store): the CLI builds its options from these defaults at start-up,
and the service reads the same. Search defaults live in retrieval/params.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IndexConfig:
    source: str
    store: str = "./vidseek.db"
    model: str = "tiny-random"
    pretrained: str | None = None
    sampling: str = "fps:1"
    address: str | None = None  # None: local Ray; "auto" or "ray://…": join a cluster
    prune: bool = False
    retry_failed: bool = False
    max_failures: int | None = None  # stop when more videos than this have failed
    chunk_frames: int = 32
    decoder: str = "auto"  # auto (the faster per codec, the other as fallback) | decord | pyav
    skip_loop_filter: bool = False  # PyAV skips the loop filter: less CPU, approximate pixels (docs/decoding.md)
    decode_timeout_s: float = 60.0  # most seconds per video: this plus decode_timeout_per_s × its duration
    decode_timeout_per_s: float = 2.0
    encode_batch: int | None = None
    decode_pool: int | None = None
    device: str = "auto"
    precision: str = "auto"
    prefix: str = "vidseek"
    store_retry_s: float = 60.0  # server stores: how long a server that stops answering is waited for
    progress: bool = True
    num_cpus: int | None = None  # local Ray only
    num_gpus: int | None = None  # local Ray only: GPUs to declare (None: Ray detects them)
    head: str | None = None  # a learned head checkpoint: also write learned video vectors
    merge_similar: float | None = None  # thin: merge consecutive frames at this cosine (None: the store's)
    frame_index: str | None = None  # a new store's frame vector index (store/frame_index.py; None: HNSW)
    # fsspec options for URL sources, a JSON object's text (credentials, endpoint): never in a repr or a log
    storage_options: str | None = field(default=None, repr=False)
