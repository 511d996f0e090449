"""moto's S3 server, recording the body bytes it sends for every GET (for bench/remote_throughput.py).

moto's access log names each request but not its size (werkzeug logs "-"), and the index job reads objects
in its decode children, in Ray workers, where no wrapper of this process can count them. So the server
counts: moto's own WSGI app behind a middleware that appends one JSON line per GET to ``--bytes-log``
(path, query, status, body bytes). Started by tests/s3_server.py ``S3Server(workdir, server=[this file,
"--bytes-log", PATH])``, which adds ``-H`` and ``-p``; the access log goes where moto's does.

    python bench/s3_byte_counter.py --bytes-log FILE -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable


class CountGetBytes:
    """WSGI middleware: each GET's body bytes as they leave, one line once its body is done."""

    def __init__(self, app: Callable, log_path: Path):
        self.app = app
        self._log = open(log_path, "a", buffering=1)  # line-buffered: a reader sees every finished request
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Iterator[bytes]:
        status: list[str] = []

        def start(code: str, headers: list, exc_info: Any = None) -> Callable:
            status.append(code)
            return start_response(code, headers, exc_info)

        body: Iterable[bytes] = self.app(environ, start)
        sent = 0
        try:
            for chunk in body:
                sent += len(chunk)
                yield chunk
        finally:
            if hasattr(body, "close"):
                body.close()
            if environ.get("REQUEST_METHOD") == "GET":
                self._record(environ, status[0] if status else "", sent)

    def _record(self, environ: dict, status: str, sent: int) -> None:
        line = {
            "path": environ.get("PATH_INFO", ""),
            "query": environ.get("QUERY_STRING", ""),
            "status": int(status.split()[0]) if status else 0,
            "bytes": sent,
        }
        with self._lock:
            self._log.write(json.dumps(line) + "\n")


def read_gets(log_path: Path) -> list[dict]:
    """The GETs recorded so far (a line being written is left for the next read)."""
    if not log_path.exists():
        return []
    out = []
    for line in log_path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def object_gets(log_path: Path, bucket: str) -> list[dict]:
    """GETs of an object in ``bucket`` (path-style ``/bucket/key``; a listing's path is ``/bucket``)."""
    return [g for g in read_gets(log_path) if g["path"].startswith(f"/{bucket}/") and len(g["path"]) > len(bucket) + 2]


def main() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes-log", type=Path, required=True)
    ap.add_argument("-H", "--host", default="127.0.0.1")
    ap.add_argument("-p", "--port", type=int, required=True)
    args = ap.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto.server's main sets it: moto builds URLs with it
    app = CountGetBytes(DomainDispatcherApplication(create_backend_app), args.bytes_log)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
