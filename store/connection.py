"""Opening a store's Milvus client: Milvus Lite (a local path) or a server (a URI), and riding out a server.

A Lite store is a directory one process holds at a time; opening one that another process holds is retried
for ``lock_wait_s``, then ``StoreBusyError`` says what to do. A server client is wrapped in
``RetryingClient`` (store/server_retry.py), which retries calls through a restart and reloads the
collections a restarted server has not loaded yet.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from vidseek.store.errors import StoreBusyError, StoreError, StoreUnavailableError
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

LITE_BUSY_HINT = (
    "is another vidseek process (index job or server) using it? Milvus Lite allows one process "
    "per store: wait for it or stop it; if `vidseek serve` holds it, index through the service "
    "(POST /ingest); or use a Milvus server URI"
)


def is_server_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "tcp://", "grpc://"))


def open_client(
    uri: str,
    token: str,
    lock_wait_s: float,
    retry_s: float,
    write_retry_s: float | None,
    reload: Callable[[Any], None],
) -> Any:
    """The store's client: Lite's (its directory's parent created), or a server's wrapped in retries.
    ``reload(client)``: loads the store's collections again (a restarted server may not have them loaded)."""
    from pymilvus import MilvusClient  # imported here: importing pymilvus costs ~0.5 s

    # Lite has no mvccTs RPC; the iterator falls back to client time and warns on every call.
    logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
    if not is_server_uri(uri):
        Path(uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return _connect_lite(MilvusClient, uri, lock_wait_s)
    try:
        client = MilvusClient(uri=str(uri), token=token)
    except Exception as e:  # noqa: BLE001 — pymilvus raises many types; name the server either way
        raise StoreError(
            f"cannot reach the Milvus server at {uri} ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:300]}): is it running and is the URI right? See the "
            'README, "Milvus server"'
        ) from e
    return RetryingClient(client, uri, retry_s, reload, StoreUnavailableError, write_retry_s)


def _connect_lite(client_cls, uri: str, lock_wait_s: float):
    """Open a Lite store; one locked by another process is retried for ``lock_wait_s`` (the workers of a job
    that was just killed can take a few seconds to exit and free it)."""
    deadline = time.monotonic() + lock_wait_s
    while True:
        try:
            return client_cls(str(uri), grpc_options=LITE_GRPC_OPTIONS)
        except Exception as e:  # noqa: BLE001 — pymilvus/Lite raise many types; name the store either way
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            raise StoreBusyError(f"cannot open store {uri}: {type(e).__name__}: {e}. {LITE_BUSY_HINT}") from e


def server_caps(client: Any, uri: str) -> ServerCaps:
    """What the Milvus behind ``client`` can do, from its version (Lite: everything vidseek uses)."""
    return ServerCaps.from_version(client.get_server_version()) if is_server_uri(uri) else ServerCaps.lite()


def close_client(client: Any, uri: str) -> None:
    """Close the client and, for Milvus Lite, release the file lock now (not at process exit)."""
    try:
        client.close()
    finally:
        if not is_server_uri(uri):
            release_lite(uri)


def release_lite(uri: str) -> None:
    """Free Milvus Lite's per-process lock on ``uri`` so another process may open it."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    server_manager_instance.release_server(str(uri))
