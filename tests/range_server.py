"""A small HTTP file server with Range support, byte counting and injected faults, on 127.0.0.1.

Python's ``http.server`` answers a Range request with the whole file; an object store answers ``206`` with
the bytes asked for. This one does, with ``ETag`` and ``Last-Modified`` (from size and mtime, as a static
file server gives them), and counts the body bytes it sent and the GETs it answered per path (``sent``, ``gets``), so a test or benchmark
measures what a reader really fetched. Faults per path (``faults[name] = …``), each counted when it fires
(``fired``), so a fault test can assert its fault happened:

    "404" / "403"          the status, no body
    ("reset", n)           send n body bytes of a GET, then reset the connection (RST)
    ("stall", seconds)     hold a GET that long before the first byte (a slow endpoint)
"""

from __future__ import annotations

import collections
import email.utils
import http.server
import os
import re
import socket
import struct
import threading
import time
from pathlib import Path

RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 — the base class's name
        pass  # quiet: the counters are the record

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _fault(self, name: str, body: bool):
        fault = self.server.owner.faults.get(name)
        if fault in ("404", "403"):
            self.server.owner.fired[name] += 1
            self.send_response(int(fault))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return "answered"
        return fault if body else None

    def _serve(self, body: bool) -> None:
        name = self.path.split("?", 1)[0].lstrip("/")
        fault = self._fault(name, body)
        if fault == "answered":
            return
        path = self.server.owner.root / name
        if not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        st = path.stat()
        start, end = 0, st.st_size - 1
        m = RANGE.match(self.headers.get("Range", ""))
        if m and (m[1] or m[2]):
            if m[1]:
                start, end = int(m[1]), min(int(m[2]) if m[2] else end, end)
            else:
                start = max(0, st.st_size - int(m[2]))
        self.send_response(206 if m else 200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(end - start + 1))
        if m:
            self.send_header("Content-Range", f"bytes {start}-{end}/{st.st_size}")
        self.send_header("ETag", f'"{st.st_size:x}-{st.st_mtime_ns:x}"')
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        self.end_headers()
        if body:
            self._body(name, path, start, end, fault)

    def _body(self, name: str, path: Path, start: int, end: int, fault) -> None:
        owner = self.server.owner
        if isinstance(fault, tuple) and fault[0] == "stall":
            owner.fired[name] += 1
            time.sleep(fault[1])
        owner.count_get(name)
        limit = fault[1] if isinstance(fault, tuple) and fault[0] == "reset" else None
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(65536, left, limit if limit is not None else left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                owner.add_sent(name, len(chunk))
                left -= len(chunk)
                if limit is not None:
                    limit -= len(chunk)
                    if limit <= 0 and left > 0:
                        owner.fired[name] += 1
                        self._reset()
                        return

    def _reset(self) -> None:
        """Close with RST (linger 0): the reader sees 'connection reset' mid-body."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: "RangeServer"


class RangeServer:
    """Serves ``root`` at ``url`` from a thread of this process; ``stop()`` shuts it down."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.faults: dict[str, object] = {}
        self.fired: collections.Counter = collections.Counter()
        self._sent: collections.Counter = collections.Counter()
        self.gets: collections.Counter = collections.Counter()  # GET requests per path (each one range)
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name="range server")
        self._thread.start()

    def add_sent(self, name: str, n: int) -> None:
        with self._lock:
            self._sent[name] += n

    def count_get(self, name: str) -> None:
        with self._lock:
            self.gets[name] += 1

    def sent(self, name: str | None = None) -> int:
        """Body bytes sent for ``name`` (all paths when None)."""
        with self._lock:
            return self._sent[name] if name is not None else sum(self._sent.values())

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def touch_changed(path: Path) -> None:
    """Rewrite ``path``'s mtime one second later: a new ETag and Last-Modified (a changed object)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
