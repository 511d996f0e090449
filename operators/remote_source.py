"""Videos behind a URL (``s3://``, ``gs://``, ``http(s)://``) through fsspec: listing, identity, range reads.

Ray-free. An object's identity comes from a listing or ``info()`` (its ETag or version id, else size and
last-modified), never from its bytes, so a re-run skips unchanged objects without reading them. A decoder
reads an object as a seekable file whose blocks are fetched by HTTP range requests as PyAV asks for them
(docs/decoding.md, "Videos behind a URL"). Credentials come from the usual places (environment variables,
profile files) or from ``StorageOptions``, which never show in a repr or an error text.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urlsplit

from vidseek.operators.kept_objects import KeptFile, KeptObjects

URL_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "http", "https"})
BLOCK_SIZE = 256 * 1024  # one range request per block: small enough that a seek wastes little
KEPT = KeptObjects()  # this process's recently read objects
# identity fields of an object's info, best first: a version id or ETag changes with the content
VERSION_KEYS = ("VersionId", "generation", "ETag", "etag", "md5Hash", "LastModified", "Last-Modified", "updated")


class RemoteError(Exception):
    """An object that cannot be listed or read; ``str(e)`` names the URL and what to do. ``kind``: "missing",
    "denied" or "failed" (``fault_kind``)."""

    def __init__(self, message: str, kind: str = "failed"):
        super().__init__(message)
        self.kind = kind


def is_url(path: object) -> bool:
    """Whether ``path`` names an object by URL (one of URL_SCHEMES) rather than a local file."""
    text = str(path)
    return "://" in text and text.split("://", 1)[0].lower() in URL_SCHEMES


def is_glob(url: str) -> bool:
    """A URL glob: ``*``, ``?`` or ``[`` in its path; an http(s) URL's ``?`` starts its query instead."""
    rest = url.split("://", 1)[-1]
    wild = "*[" if url.lower().startswith(("http://", "https://")) else "*?["
    return any(ch in rest for ch in wild)


def check_url(url: str) -> None:
    """Refuse a URL with a password in it: it would be stored as the video's path."""
    if urlsplit(url).password:
        raise RemoteError(
            f"{_safe(url)}: a password in the URL would be stored with its rows; pass credentials "
            "by environment variables, a profile file or --storage-options instead"
        )


class StorageOptions(Mapping):
    """fsspec filesystem options (credentials, endpoint): a mapping whose repr shows no value."""

    def __init__(self, values: Mapping | None = None):
        self._values = dict(values or {})

    @classmethod
    def parse(cls, text: "str | Mapping | StorageOptions | None") -> "StorageOptions":
        """From a JSON object's text (the command line), a mapping, or None (no options)."""
        if isinstance(text, StorageOptions):
            return text
        if text is None or isinstance(text, Mapping):
            return cls(text)
        try:
            values = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"--storage-options is not valid JSON ({e.msg} at character {e.pos})") from None
        if not isinstance(values, dict):
            raise ValueError("--storage-options must be a JSON object, e.g. '{\"anon\": true}'")
        return cls(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"StorageOptions({len(self)} options, values hidden, #{self.fingerprint()})"

    __str__ = __repr__

    def fingerprint(self) -> str:
        """Equal for equal options (a short hash: it tells options apart, it does not reveal them)."""
        return hashlib.sha256(json.dumps(self._values, sort_keys=True, default=str).encode()).hexdigest()[:8]

    def secrets(self) -> list[str]:
        """Every string value, nested ones too: what ``redact`` removes from a message."""
        out: list[str] = []

        def walk(v: Any) -> None:
            if isinstance(v, str) and len(v) >= 3:
                out.append(v)
            elif isinstance(v, Mapping):
                for x in v.values():
                    walk(x)
            elif isinstance(v, (list, tuple)):
                for x in v:
                    walk(x)

        walk(self._values)
        return sorted(out, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for s in self.secrets():
            text = text.replace(s, "***")
        return text


@dataclass(frozen=True)
class ObjectInfo:
    url: str
    size: int | None
    version: str  # the first of VERSION_KEYS the listing gave ("" when none)


def object_video_id(obj: ObjectInfo | None, url: str) -> str:
    """A video's id for an object: sha1 of URL + size + version (ETag / version id / last-modified), 20 hex
    chars, as pipeline/sources.py ``video_id_for`` hashes a file; an object not found hashes its URL alone."""
    ident = f"{url}|{obj.size}|{obj.version}" if obj is not None else f"{url}|missing"
    return hashlib.sha1(ident.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def _safe(url: str) -> str:
    """The URL without a password (for messages)."""
    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@") if parts.password else url


def filesystem(url: str, options: Mapping | None = None):
    """(fsspec filesystem, path within it) for ``url``; a missing protocol package is a clear error."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url, **dict(options or {}))
    except ImportError as e:  # gcsfs is optional
        raise RemoteError(f"{url}: cannot read this kind of URL here ({e}); pip install 'vidseek[gcs]'") from None
    except (TypeError, ValueError) as e:
        raise RemoteError(f"{url}: bad storage options ({StorageOptions.parse(options).redact(str(e))})") from None


def _version(info: Mapping) -> str:
    for key in VERSION_KEYS:
        value = info.get(key)
        if value not in (None, "", "null"):
            return f"{key}={str(value).strip(chr(34))}"
    return ""


def _info_of(url: str, info: Mapping) -> ObjectInfo:
    size = info.get("size")
    return ObjectInfo(url, int(size) if size is not None else None, _version(info))


def object_info(url: str, options: Mapping | None = None) -> ObjectInfo:
    """The object's size and version from the store's metadata (a HEAD request; no byte of the object)."""
    check_url(url)
    fs, path = filesystem(url, options)
    try:
        fs.invalidate_cache(path)  # a long-lived filesystem (the service) must see the object as it is now
        info = fs.info(path)
    except Exception as e:  # noqa: BLE001 — every backend raises its own: named here, per URL
        raise RemoteError(f"{url}: {describe(e, options)}", fault_kind(e)) from None
    if info.get("type") == "directory":
        raise RemoteError(f"{url}: is a prefix (directory), not an object; end it with / to index what is in it")
    return _info_of(url, info)


def list_objects(url: str, options: Mapping | None, extensions: set[str]) -> list[ObjectInfo]:
    """Objects under a prefix (``…/``) or matching a glob, with a video extension, sorted by URL."""
    check_url(url)
    fs, path = filesystem(url, options)
    try:
        if is_glob(url):
            found = fs.glob(path, detail=True)
        else:
            found = fs.find(path, detail=True)
    except Exception as e:  # noqa: BLE001
        raise RemoteError(f"{url}: cannot list it ({describe(e, options)})") from None
    out = []
    for name, info in sorted(found.items()):
        if info.get("type") == "directory" or not any(name.lower().endswith(x) for x in extensions):
            continue
        out.append(_info_of(_as_url(fs, name, url), info))
    return out


def _as_url(fs, name: str, source: str) -> str:
    """A listed name back as a full URL (s3fs lists ``bucket/key``; http lists full URLs)."""
    if is_url(name):
        return name
    return f"{source.split('://', 1)[0]}://{name}"


def open_object(url: str, options: Mapping | None = None, block_size: int | None = None):
    """A seekable binary file over the object: blocks (BLOCK_SIZE) fetched on demand by range requests, cached.

    One HEAD request per open gives the size and version; a file of this process that read the same
    object version before is taken up again with the blocks it fetched (operators/kept_objects.py)."""
    fs, path = filesystem(url, options)
    block_size = block_size or BLOCK_SIZE
    try:
        info = fs.info(path)
        size = info.get("size")
        version = _version(info)
        if size is None or not version:
            return fs.open(path, "rb", block_size=block_size, cache_type="blockcache")
        key = (url, StorageOptions.parse(options).fingerprint(), int(size), version, block_size)
        f = KEPT.take(key)
        if f is None:  # size given: the open makes no second HEAD request
            f = fs.open(path, "rb", block_size=block_size, cache_type="blockcache", size=int(size))
        return KeptFile(f, key, KEPT)
    except Exception as e:  # noqa: BLE001
        raise RemoteError(f"{url}: {describe(e, options)}", fault_kind(e)) from None


@contextlib.contextmanager
def media_input(path: str, options: Mapping | None = None) -> Iterator[Any]:
    """What ``av.open`` takes for ``path``: the path itself for a local file, an open object for a URL."""
    if not is_url(path):
        yield path
        return
    f = open_object(path, options)
    try:
        yield f
    finally:
        f.close()


def fault_kind(e: BaseException) -> str:
    """ "denied" (401/403, PermissionError), "missing" (FileNotFoundError), else "failed"."""
    if any(isinstance(x, PermissionError) or getattr(x, "status", None) in (401, 403) for x in _chain(e)):
        return "denied"
    return "missing" if isinstance(e, FileNotFoundError) else "failed"


def describe(e: BaseException, options: Mapping | None = None) -> str:
    """One line for an object store error, with what to do, and no storage option value in it."""
    kind = fault_kind(e)
    if kind == "denied":
        text = "access denied (check the credentials: environment, profile, or --storage-options)"
    elif kind == "missing":
        text = "object not found (deleted, or a wrong bucket/key)"
    elif isinstance(e, (ConnectionError, TimeoutError)) or "connect" in type(e).__name__.lower():
        text = f"connection failed ({type(e).__name__}: {e})"
    else:
        text = f"{type(e).__name__}: {e}"
    return StorageOptions.parse(options).redact(text)


def _chain(e: BaseException) -> list[BaseException]:
    """``e`` and its causes (fsspec's HTTP ``info`` turns a 403 into FileNotFoundError *from* the response error)."""
    out: list[BaseException] = []
    while e is not None and e not in out and len(out) < 8:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out
