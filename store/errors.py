"""The store's errors: each message says what to do (docs/architecture.md, the store layer)."""

from __future__ import annotations


class StoreError(RuntimeError):
    """The store cannot be used as asked; the message says what to do."""


class StoreUnavailableError(StoreError):
    """A Milvus server that stopped answering for longer than the store's retry budget."""


class StoreBusyError(StoreError):
    """A Milvus Lite store that another process holds (one process per store)."""


class ModelMismatchError(StoreError):
    pass
