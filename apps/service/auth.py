"""The service's front door (one ASGI middleware): Host check, bearer token, same-origin POSTs, body size
limit and security headers — applied before any route runs. Plus the access-log filter that redacts tokens.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
from urllib.parse import parse_qsl, urlsplit

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
PUBLIC_PATHS = {"/", "/healthz", "/favicon.ico"}
PUBLIC_PREFIXES = ("/static/",)
MEDIA_PATH = re.compile(r"^/videos/[^/]+/(thumbnail|file)$")  # may carry ?token= (for <img>/<video>)
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"]*")


def is_loopback(host: str) -> bool:
    h = host.strip("[]").lower()
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def host_of(value: str) -> str:
    """The host of a Host header (without port; IPv6 without brackets), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def same_token(given: str | None, token: str) -> bool:
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8"))


async def _send_json(send, status: int, detail: str, extra_headers: list | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
    ] + (extra_headers or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyTooLargeError(Exception):
    """Raised into the app by ``BodyLimit`` when a body passes its limit (the Guard answers 413)."""


class BodyLimit:
    """An ASGI ``receive`` that passes each body chunk on as it arrives (nothing is held here) and counts
    the bytes; past ``limit`` it raises ``BodyTooLargeError`` into the app instead of returning more."""

    def __init__(self, receive, limit: int):
        self.receive, self.limit, self.size = receive, limit, 0
        self.over = self.answered = False

    async def __call__(self):
        msg = await self.receive()
        if msg["type"] == "http.request":
            self.size += len(msg.get("body", b""))
            if self.size > self.limit:
                self.over = True
                raise BodyTooLargeError(self.limit)
        return msg

    async def refuse(self, send) -> None:
        if not self.answered:
            self.answered = True
            await _send_json(send, 413, f"request body over {self.limit} bytes")


class Guard:
    """``token``: required on every non-public request when set. ``allowed_hosts``: Host header names
    answered (None: any). ``max_body``: request bodies above this many bytes get 413; ``upload_paths``: the
    paths that take a file, each with its own limit."""

    def __init__(
        self,
        app,
        token: str | None,
        max_body: int,
        allowed_hosts: set[str] | None = None,
        upload_paths: dict[str, int] | None = None,
    ):
        self.app, self.token, self.max_body = app, token or None, max_body
        self.upload_paths = dict(upload_paths or {})  # path -> its own body limit (file uploads)
        self.allowed_hosts = {h.strip("[]").lower() for h in allowed_hosts} if allowed_hosts else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {}
        for k, v in scope["headers"]:
            headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
        path, method = scope["path"], scope["method"]
        body: BodyLimit | None = None

        if self.allowed_hosts is not None and host_of(headers.get("host", "")) not in self.allowed_hosts:
            return await _send_json(
                send,
                400,
                "unexpected Host header (this service answers its loopback "
                "address only; bind another address with a token to serve others)",
            )
        if self.token and not self._public(path) and not self._authorised(scope, headers, path, method):
            return await _send_json(
                send,
                401,
                "missing or wrong token: send 'Authorization: Bearer TOKEN'",
                [(b"www-authenticate", b'Bearer realm="vidseek"')],
            )
        if method in BODY_METHODS:
            origin = headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
                return await _send_json(send, 403, "cross-origin requests are not accepted")
            if origin == "null":
                return await _send_json(send, 403, "cross-origin requests are not accepted")
            limit = self.upload_paths.get(path, self.max_body)
            length = headers.get("content-length")
            if length is not None:
                if not length.isdigit():
                    return await _send_json(send, 400, "bad Content-Length header")
                if int(length) > limit:
                    return await _send_json(send, 413, f"request body over {limit} bytes")
            body = BodyLimit(receive, limit)  # a chunked body (no Content-Length) is counted as it is read
            receive = body

        page = path == "/" or path.startswith("/static/")

        async def send_with_headers(msg):
            if body is not None and body.over:  # the app's own answer to a body cut short is replaced by the 413
                if msg["type"] == "http.response.start":
                    await body.refuse(send)
                return
            if msg["type"] == "http.response.start":
                h = list(msg.get("headers", []))
                h += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                if page:
                    h.append((b"content-security-policy", PAGE_CSP.encode()))
                msg = {**msg, "headers": h}
            await send(msg)

        try:
            return await self.app(scope, receive, send_with_headers)
        except BodyTooLargeError:
            await body.refuse(send)  # the app let the error through: no answer was sent yet

    @staticmethod
    def _public(path: str) -> bool:
        return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)

    def _authorised(self, scope, headers: dict, path: str, method: str) -> bool:
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and same_token(value.strip(), self.token):
            return True
        if method in ("GET", "HEAD") and MEDIA_PATH.match(path):
            query = scope.get("query_string", b"").decode("latin-1")
            given = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "token"]
            return len(given) == 1 and same_token(given[0], self.token)
        return False


class RedactTokens(logging.Filter):
    """Access-log filter: ``?token=…`` in logged URLs becomes ``?token=***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(TOKEN_IN_URL.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = TOKEN_IN_URL.sub(r"\1***", record.msg)
        return True
