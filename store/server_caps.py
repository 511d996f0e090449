"""What the Milvus behind a store can do, read once at connect time from its version.

Milvus 2.3 refuses a collection with two vector fields and has no ``group_by_field`` search (both came in
2.4). It does not refuse ``group_by_field``: it ignores it and returns several frames of one video (seen
on 2.3.5: 37 repeated videos over 20 searches of 8), so the capability is read from the version, never
probed by trying. Milvus Lite (the local engine) has both.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Which frame index types a grouping search (``group_by_field``) works on. The Milvus docs' table of search
# behaviours by index type (the Milvus docs page "Milvus Limits", milvus.io/docs, its "Grouping search" row for 2.5/2.6) lists HNSW, DISKANN,
# FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ and SCANN, and no GPU or binary index; Milvus 2.4's grouping-search page names
# fewer (FLAT, IVF_FLAT, HNSW; IVF_PQ and IVF_SQ8 are refused there). Where a pair is not listed, vidseek
# groups in the client (over-fetching frames), as on 2.3.
GROUPING_2_4 = frozenset({"FLAT", "IVF_FLAT", "HNSW"})
GROUPING_2_5 = frozenset({"HNSW", "DISKANN", "FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "SCANN"})


@dataclass(frozen=True)
class ServerCaps:
    version: str  # as the server reports it, or "lite"
    group_by: bool  # search(group_by_field=...) groups hits (on some index types: ``groups``)
    multi_vector: bool  # a collection may hold more than one vector field
    grouping_indexes: frozenset[str] | None = None  # index types grouping works on; None: every one (Lite)

    def groups(self, index_type: str) -> bool:
        """Whether a grouping search runs in Milvus for a frame index of this type (GROUPING_2_4/2_5)."""
        if not self.group_by:
            return False
        return self.grouping_indexes is None or index_type.upper() in self.grouping_indexes

    @classmethod
    def lite(cls) -> "ServerCaps":
        return cls("lite", group_by=True, multi_vector=True)

    @classmethod
    def from_version(cls, version: str) -> "ServerCaps":
        m = re.match(r"v?(\d+)\.(\d+)", version or "")
        if not m:
            log.warning(
                "unknown Milvus version %r: assuming the features of 2.3 (no grouping, one vector field)", version
            )
            return cls(version or "unknown", group_by=False, multi_vector=False)
        major_minor = (int(m.group(1)), int(m.group(2)))
        at_least_2_4 = major_minor >= (2, 4)
        indexes = GROUPING_2_4 if major_minor == (2, 4) else GROUPING_2_5
        return cls(version, group_by=at_least_2_4, multi_vector=at_least_2_4, grouping_indexes=indexes)
