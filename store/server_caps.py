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


@dataclass(frozen=True)
class ServerCaps:
    version: str  # as the server reports it, or "lite"
    group_by: bool  # search(group_by_field=...) groups hits
    multi_vector: bool  # a collection may hold more than one vector field

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
        at_least_2_4 = (int(m.group(1)), int(m.group(2))) >= (2, 4)
        return cls(version, group_by=at_least_2_4, multi_vector=at_least_2_4)
