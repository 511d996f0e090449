"""What the parts of a store share: its client, collection names, what its collections hold, its write hook.

``VideoStore`` (store/video_store.py) builds one ``StoreContext`` and hands it to each part (collections,
frame I/O, video I/O, search); a part reads the context on every call, so a change made through the facade
(a searcher's ``search_consistency``, the collections a load found) is seen by all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vidseek.store.errors import StoreError
from vidseek.store.frame_index import FrameIndex
from vidseek.store.layout import CONSISTENCY
from vidseek.store.server_caps import ServerCaps
from vidseek.store.write_hook import WriteHook


@dataclass
class StoreContext:
    uri: str
    prefix: str
    client: Any  # a pymilvus MilvusClient, wrapped in a RetryingClient for a server (store/connection.py)
    caps: ServerCaps
    frame_index: FrameIndex  # the frame vectors' index type: requested for a new store, read from an old one
    requested_index: FrameIndex | None = None
    hook: WriteHook = field(default_factory=WriteHook)
    dim: int | None = None  # the stamp's embed_dim; None while the store is empty
    has_learned: bool = True  # whether the videos collection holds learned_vec
    has_merged: bool = True  # whether the frames collection holds ``merged`` (stores before thinning do not)
    search_consistency: str = CONSISTENCY  # the search path's reads (see layout.SEARCH_CONSISTENCY)

    @property
    def videos(self) -> str:
        return f"{self.prefix}_videos"

    @property
    def frames(self) -> str:
        return f"{self.prefix}_frames"

    @property
    def meta(self) -> str:
        return f"{self.prefix}_meta"

    def no_learned_error(self) -> StoreError:
        return StoreError(
            f"store {self.uri} holds no learned vectors: Milvus {self.caps.version} allows one vector "
            "field per collection (learned heads need Milvus 2.4 or newer, or Milvus Lite)"
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
