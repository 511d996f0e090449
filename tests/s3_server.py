"""A real S3 endpoint for the ``s3`` tests: moto's server on 127.0.0.1 at a free port, stopped by its PID.

Its access log (one line per request, werkzeug's format) goes to a file in the test's temp dir, so a test
counts the requests the server really answered (``requests``), e.g. that a resumed job read no object bytes.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours some lines (206 Partial Content) even into a file
ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto_server in a child process; ``options`` are the storage options that reach it.

    ``server``: what follows ``python`` on the server's command line (default moto's own ``-m moto.server``;
    bench/s3_byte_counter.py is moto's app counting the bytes it sends); ``-H 127.0.0.1 -p PORT`` follow it.
    """

    def __init__(self, workdir: Path, server: list[str] | None = None):
        self.port = free_port()
        self.log_path = workdir / "moto-access.log"
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        self.proc = subprocess.Popen(
            [sys.executable, *(server or ["-m", "moto.server"]), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited ({self.proc.returncode}): {self.log_path.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto server did not listen on port {self.port} within {timeout_s:.0f} s")

    def options(self, **extra) -> dict:
        """Storage options for this endpoint (moto accepts any key pair)."""
        return {"endpoint_url": self.endpoint, "key": "testing", "secret": "testing", **extra}

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, target, status) of every request answered so far."""
        self._log.flush()
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            m = ACCESS_LINE.search(ANSI.sub("", line))
            if m:
                out.append((m["method"], m["target"], int(m["status"])))
        return out

    def object_reads(self, key_part: str = "") -> list[tuple[str, str, int]]:
        """GET requests of objects (not listings: those carry a query and no key) whose target has ``key_part``."""
        return [r for r in self.requests() if r[0] == "GET" and "list-type" not in r[1] and key_part in r[1]]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


class FaultProxy:
    """127.0.0.1:<port> → the S3 server, with a fault switched on per test (``mode``), counted in ``fired``:

    None            forward both ways
    "stall"         accept, read the request, never answer (a stalled endpoint)
    ("reset", n)    forward, then reset the connection once n bytes went back to the client (mid-body)
    """

    def __init__(self, upstream_port: int):
        import threading

        self.upstream_port = upstream_port
        self.mode: object = None
        self.fired = 0
        self._stop = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True, name="s3 fault proxy").start()

    def _accept(self) -> None:
        import threading

        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, self.mode), daemon=True).start()

    def _serve(self, client: socket.socket, mode: object) -> None:
        import threading

        if mode == "denied":  # what S3 answers a key without the right to read the object
            self.fired += 1
            request = client.recv(65536)
            body = (
                b""
                if request.startswith(b"HEAD")
                else b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            )
            size = len(body) or 100  # a HEAD answer names the length a GET's body would have
            head = f"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {size}\r\n"
            client.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)
            client.close()
            return
        if mode == "stall":
            self.fired += 1
            client.recv(65536)
            self._stop.wait()  # hold it open, unanswered, until the proxy stops
            client.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
        threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
        self._pump(upstream, client, mode[1] if isinstance(mode, tuple) else None)

    def _pump(self, src: socket.socket, dst: socket.socket, reset_after: int | None) -> None:
        import struct

        sent = 0
        try:
            while data := src.recv(65536):
                if reset_after is not None and sent + len(data) > reset_after:
                    dst.sendall(data[: max(0, reset_after - sent)])
                    self.fired += 1
                    dst.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    # wake the other direction's recv on this socket (SHUT_RD sends nothing), so the
                    # close below is the last one and sends the RST now, not when that recv returns
                    dst.shutdown(socket.SHUT_RD)
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()


def serve_bucket(tmp_path_factory, name: str, bucket: str):
    """A module fixture's body (``yield from``): a moto server of its own holding one empty bucket, stopped
    (by PID) after the module."""
    server = S3Server(tmp_path_factory.mktemp(name))
    server.client().create_bucket(Bucket=bucket)
    yield server
    server.stop()
