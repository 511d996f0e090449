"""Riding out a Milvus server that goes away for a while (a restart, a crash, a network blip).

A server store's client is wrapped in ``RetryingClient``: a call that fails because the server cannot be
reached, or is back but has not loaded its collections yet, is retried with exponential backoff (0.5 s
doubling to 8 s) until ``budget_s`` has passed since the first failure; then ``StoreUnavailableError``
names the URI and what to do. Every other error is the caller's at once.

Retrying a write must not duplicate it: an insert whose first try failed mid-flight may have been applied,
so its retries are upserts of the same rows (keyed by primary key). Deletes and upserts are idempotent.
Milvus Lite has no server to lose and is not wrapped.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

log = logging.getLogger(__name__)

# what a restarting server answers before it serves: connection refused or reset, timeouts, "not loaded"
TRANSIENT_MARKERS = (
    "server unavailable",
    "fail connecting",
    "connection refused",
    "socket closed",
    "deadline exceeded",
    "not loaded",
    "service not ready",
    "not ready",
    "unavailable",
)


def is_transient(error: BaseException) -> bool:
    from pymilvus.exceptions import ConnectError, MilvusUnavailableException

    if isinstance(error, (MilvusUnavailableException, ConnectError)):
        return True
    text = f"{type(error).__name__}: {error}".lower()
    return any(m in text for m in TRANSIENT_MARKERS)


WRITES = ("insert", "upsert", "delete")


class RetryingClient:
    """The client's methods, each retried on transient server unavailability (module docstring)."""

    def __init__(
        self,
        client: Any,
        uri: str,
        budget_s: float,
        reload: Callable[[Any], None],
        unavailable,
        write_budget_s: float | None = None,
    ):
        self._client = client
        self._uri = uri
        self._budget_s = budget_s
        self._write_budget_s = budget_s if write_budget_s is None else write_budget_s  # inserts, upserts, deletes
        self._reload = reload  # reload the collections: a restarted server may not have them loaded yet
        self._unavailable = unavailable  # error class to raise when the budget is spent
        self.retries = 0  # transient failures ridden out, for tests and logs

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_") or name == "close":
            return attr
        return lambda *args, **kwargs: self._call(name, args, kwargs)

    def _call(self, name: str, args: tuple, kwargs: dict):
        first_failure: float | None = None
        delay = 0.5
        method = name
        budget = self._write_budget_s if name in WRITES else self._budget_s
        while True:
            try:
                return getattr(self._client, method)(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 — pymilvus raises MilvusException and grpc errors alike
                if not is_transient(e):
                    raise
                now = time.monotonic()
                first_failure = first_failure or now
                if now - first_failure >= budget:
                    raise self._unavailable(
                        f"the Milvus server at {self._uri} has not answered for {budget:.0f} s "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:200]}): is it running? Once it is back, "
                        "re-run the same command; what was written before is kept"
                    ) from e
                self.retries += 1
                if self.retries == 1 or self.retries % 10 == 0:
                    log.warning("Milvus server at %s unavailable (%s); retrying", self._uri, type(e).__name__)
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
                if "not loaded" in str(e).lower():
                    try:
                        self._reload(self._client)
                    except Exception:  # noqa: BLE001 — still coming up: the next try tells
                        pass
                if name == "insert":
                    method = "upsert"  # the failed insert may have been applied: never insert twice
