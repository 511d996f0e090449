"""The service's error answers: JSON always, 4xx for bad input, 503 for a store that stopped answering."""

import logging
from contextlib import contextmanager
from typing import Callable, Iterator, NoReturn

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidseek.apps.service.schemas import JSON
from vidseek.store.video_store import StoreError, StoreUnavailableError

log = logging.getLogger(__name__)


def bad(status: int, detail: str) -> NoReturn:
    raise HTTPException(status, detail)


@contextmanager
def search_errors(rewrite: Callable[[str], str] = str) -> Iterator[None]:
    """A search's errors as answers: a store that stopped answering goes on to its 503 handler, another store
    error is 400, a bad value (ValueError) 422; ``rewrite`` edits the message (e.g. a temp path to a name)."""
    try:
        yield
    except StoreUnavailableError:
        raise  # 503 (store_unavailable)
    except StoreError as e:
        bad(400, rewrite(str(e)))
    except ValueError as e:
        bad(422, rewrite(str(e)))


async def http_error(request: Request, exc: StarletteHTTPException):
    return JSON({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def validation_error(request: Request, exc: RequestValidationError):
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return JSON({"detail": errors}, status_code=422)


async def store_unavailable(request: Request, exc: StoreUnavailableError):
    return JSON({"detail": str(exc)}, status_code=503, headers={"Retry-After": "10"})


async def server_error(request: Request, exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSON({"detail": "internal error"}, status_code=500)


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StoreUnavailableError, store_unavailable)
    app.add_exception_handler(Exception, server_error)
