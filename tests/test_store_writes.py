"""Every write a store makes goes through its write hook (store/write_hook.py): it holds the store's write lock
when there is one, and once it returned, ``generation`` is bumped and the write listeners are told the videos
it changed. The service relies on it (its frame cache, replica and ingest counts; docs/architecture.md, the store layer)."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import numpy as np
import pytest

from vidseek.operators.frame_table import FrameTable
from vidseek.store.video_store import VideoStore

STORE_DIR = Path(__file__).resolve().parents[1] / "store"
# the Milvus client's methods that change what it holds
CLIENT_WRITES = ("insert", "upsert", "delete", "create_", "drop_", "rename_", "alter_", "add_", "truncate")


# -- static: no client write in store/ outside ``with ....writing(...)`` ------------------------------------
def _client_names(fn: ast.AST) -> set[str]:
    """What names the client in ``fn``: any ``<...>.client`` or ``<...>._client`` expression, and the local
    names assigned one (``c = self.ctx.client``, ``ctx, c = self.ctx, self.ctx.client``)."""
    names: set[str] = set()
    for n in ast.walk(fn):
        if not isinstance(n, ast.Assign):
            continue
        for target in n.targets:
            pairs = (
                zip(target.elts, n.value.elts)
                if isinstance(target, ast.Tuple) and isinstance(n.value, ast.Tuple)
                else [(target, n.value)]
            )
            names |= {ast.unparse(t) for t, v in pairs if _is_client(ast.unparse(v), set())}
    return names


def _is_client(expr: str, aliases: set[str]) -> bool:
    return expr in aliases or expr in ("client", "_client") or expr.endswith((".client", "._client"))


def _inside_writing(stack: list[ast.AST]) -> bool:
    return any(
        isinstance(node, ast.With)
        and any(
            isinstance(item.context_expr, ast.Call)
            and isinstance(item.context_expr.func, ast.Attribute)
            and item.context_expr.func.attr == "writing"
            for item in node.items
        )
        for node in stack
    )


def client_writes_outside_the_hook(source: str, name: str) -> list[str]:
    """``name:line  call`` for each client write call in ``source`` that no ``with ....writing(...)`` holds."""
    found: list[str] = []

    def visit(node: ast.AST, stack: list[ast.AST], aliases: set[str]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            aliases = aliases | _client_names(node)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr.startswith(CLIENT_WRITES)
            and _is_client(ast.unparse(node.func.value), aliases)
            and not _inside_writing(stack)
        ):
            found.append(f"{name}:{node.lineno}  {ast.unparse(node.func)}")
        for child in ast.iter_child_nodes(node):
            visit(child, [*stack, node], aliases)

    visit(ast.parse(source), [], set())
    return found


def test_no_client_write_in_the_store_bypasses_the_write_hook():
    files = sorted(STORE_DIR.glob("*.py"))
    assert {"video_io.py", "frame_io.py", "collections.py"} <= {f.name for f in files}
    bypass = [hit for f in files for hit in client_writes_outside_the_hook(f.read_text(), f.name)]
    assert not bypass, "client writes outside `with ....hook.writing(...)`:\n" + "\n".join(bypass)


def test_the_scan_finds_planted_bypasses():
    planted = """
class Part:
    def direct(self):
        self.ctx.client.insert("frames", [])

    def aliased(self):
        ctx, c = self.ctx, self.ctx.client
        c.create_collection("videos")

    def hooked(self):
        with self.ctx.hook.writing(["v"]):
            self.ctx.client.delete("frames", filter="")

    def after_the_hook(self):
        with self.ctx.hook.writing([]):
            pass
        self.ctx.client.upsert("meta", [])

    def not_the_client(self, s):
        s.add_field("vec")
"""
    hits = client_writes_outside_the_hook(planted, "planted.py")
    assert [h.split()[1] for h in hits] == ["self.ctx.client.insert", "c.create_collection", "self.ctx.client.upsert"]


# -- dynamic: each write method holds the lock, writes, and is announced once -------------------------------
class RecordingClient:
    """The store's client, recording each write call and whether the store's write lock was held for it."""

    def __init__(self, client, lock: threading.RLock):
        self._client, self._lock = client, lock
        self.writes: list[tuple[str, bool]] = []
        self.fail: str | None = None  # a write method that raises instead

    def _held_elsewhere(self) -> bool:
        got: list[bool] = []
        t = threading.Thread(target=lambda: got.append(self._lock.acquire(blocking=False)))
        t.start()
        t.join()
        if got[0]:
            self._lock.release()
        return not got[0]

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not name.startswith(CLIENT_WRITES):
            return attr

        def write(*args, **kwargs):
            self.writes.append((name, self._held_elsewhere()))
            if name == self.fail:
                raise RuntimeError(f"planted {name} failure")
            return attr(*args, **kwargs)

        return write


def _table(n: int, dim: int = 4) -> FrameTable:
    t = np.arange(n, dtype=np.float32)
    vectors = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    return FrameTable.of(np.arange(n), t, t, t + 1, vectors)


STAMP = {"model": "tiny-random", "weights": "test", "embed_dim": 4, "preprocess": {}}
# each write method of the store, its arguments, the video ids its listeners are told of, the client writes
WRITE_CALLS = [
    ("ensure_model", (STAMP,), [], {"create_collection", "insert"}),
    ("record_thinning", (0.95,), [], {"upsert"}),
    ("insert_frames", ("v1", _table(3)), ["v1"], {"insert"}),
    ("upsert_frames", ("v1", _table(2)), ["v1"], {"upsert"}),
    ("delete_frame_rows", (["v1:000001", "v2:000000", "v1:000002"],), ["v1", "v2"], {"delete"}),
    (
        "upsert_videos",
        ([{"video_id": "v1", "path": "/a.mp4"}, {"video_id": "v2", "path": "/b.mp4"}],),
        None,
        {"upsert"},
    ),
    ("delete_videos", (iter(["v1", "v2"]),), ["v1", "v2"], {"delete"}),
    ("delete_frames", (iter(["v2"]),), ["v2"], {"delete"}),
]


@pytest.fixture
def recorded(tmp_path):
    lock = threading.RLock()
    store = VideoStore(str(tmp_path / "w.db"), write_lock=lock)
    store.client = RecordingClient(store.client, lock)
    told: list = []
    store.write_listeners.append(lambda ids, rows: told.append((list(ids), list(rows))))
    yield store, told
    store.client = store.client._client
    store.close()


def test_every_write_method_holds_the_lock_and_is_announced_once(recorded):
    store, told = recorded
    for name, args, ids, client_calls in WRITE_CALLS:
        before, told[:], store.client.writes[:] = store.generation, [], []
        getattr(store, name)(*args)
        assert {w for w, _ in store.client.writes} == client_calls, (name, store.client.writes)
        assert all(held for _, held in store.client.writes), f"{name} wrote without the write lock"
        assert store.generation == before + 1, name
        rows = args[0] if name == "upsert_videos" else []
        assert told == [(ids if ids is not None else [r["video_id"] for r in rows], rows)], (name, told)
    assert store.count() == 0 and store.count_frames() == 0  # the writes reached Milvus: all deleted again


def test_a_write_that_raised_is_not_announced(recorded):
    store, told = recorded
    store.ensure_model(STAMP)
    before, told[:] = store.generation, []
    store.client.fail = "insert"
    with pytest.raises(RuntimeError, match="planted insert failure"):
        store.insert_frames("v1", _table(2))
    assert store.client.writes[-1] == ("insert", True)  # the failure really happened, inside the hook
    assert store.generation == before and told == []
    store.client.fail = None
    assert store.insert_frames("v1", _table(2)) == 2 and store.generation == before + 1
