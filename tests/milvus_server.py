"""A real Milvus 2.3.5 standalone server for the ``server`` tests, reachable from this machine's loopback only.

Milvus 2.3 listens on every interface and has no setting to change that, so the server runs in a network
namespace of its own (``unshare --net``: it has only a loopback device, nothing outside can reach it), and
this process forwards one port of the host's 127.0.0.1 into it (a thread that enters the namespace with
``setns`` to connect). Fresh data directory per test session; stopped by PID; ~10 s to start.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

CLONE_NEWNET = 0x40000000
INNER_PORT = 19530


class LoopbackForwarder:
    """127.0.0.1:<port> on the host → 127.0.0.1:INNER_PORT inside the network namespace of ``ns_pid``."""

    def __init__(self, ns_pid: int):
        self.ns_path = f"/proc/{ns_pid}/ns/net"
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="milvus forwarder").start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        try:
            ns = open(self.ns_path)
        except FileNotFoundError:  # the server is down (killed by a fault test): refuse, as a dead server would
            client.close()
            return
        with ns:  # this thread only: sockets it makes live in the server's namespace
            if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                client.close()
                return
        try:
            upstream = socket.create_connection(("127.0.0.1", INNER_PORT), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        pair = {client: upstream, upstream: client}
        try:
            while True:
                ready, _, _ = select.select(list(pair), [], [], 1.0)
                if self.closed:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self.closed = True
        self.listener.close()


class MilvusServer:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None
        self.forwarder: LoopbackForwarder | None = None

    @staticmethod
    def unavailable() -> str | None:
        """Why no server can be started here, or None."""
        if shutil.which("milvus-server", path=str(Path(sys.executable).parent)) is None:
            return "the milvus==2.3.5 wheel is not installed (pip install -e .[dev])"
        if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
            return "a private network namespace needs root, unshare and ip (util-linux, iproute2)"
        return None

    def start(self, timeout_s: float = 120.0) -> str:
        exe = shutil.which("milvus-server", path=str(Path(sys.executable).parent))
        log = open(self.data_dir / "server.log", "ab")
        self.proc = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--",
                "sh",
                "-c",
                f'ip link set lo up && exec "{exe}" --data "{self.data_dir}" --proxy-port {INNER_PORT}',
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if self.forwarder is None:
            self.forwarder = LoopbackForwarder(self.proc.pid)
        else:  # a restart: the same host port now leads into the new server's namespace
            self.forwarder.ns_path = f"/proc/{self.proc.pid}/ns/net"
        uri = f"http://127.0.0.1:{self.forwarder.port}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"milvus-server exited ({self.proc.returncode}): "
                    f"{(self.data_dir / 'server.log').read_text()[-2000:]}"
                )
            if self._healthy(uri):
                return uri
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"milvus-server not healthy after {timeout_s:.0f} s")

    @staticmethod
    def _healthy(uri: str) -> bool:
        from pymilvus import MilvusClient

        try:
            c = MilvusClient(uri=uri, timeout=2)
            c.list_collections()
            c.close()
            return True
        except Exception:  # noqa: BLE001 — not up yet
            return False

    def kill(self) -> None:
        """SIGKILL the server's whole process group, as a crash would: no shutdown, no flush. The forwarder
        stays, so a ``start()`` afterwards serves the same URI from the same data directory."""
        group = self.proc.pid
        _signal_group(group, signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + 30
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(group), "the killed server's processes are still there"

    def stop(self) -> None:
        """SIGTERM the server's process group (it was started as its own session), wait until every member
        is gone, SIGKILL what is left after 5 s: the data is a test's temp dir, and Milvus 2.3 was seen to
        use the whole 30 s it was given before (two 30 s teardowns in CI's slowest list)."""
        if self.proc is not None:
            group = self.proc.pid
            _signal_group(group, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while _group_alive(group) and time.monotonic() < deadline:
                self.proc.poll()  # reap the leader
                time.sleep(0.2)
            _signal_group(group, signal.SIGKILL)
            self.proc.poll()
        if self.forwarder is not None:
            self.forwarder.close()


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False
