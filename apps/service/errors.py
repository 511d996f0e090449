"""The service's error answers: JSON always, 4xx for bad input, 503 for a store that stopped answering."""

import logging
from typing import NoReturn

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidseek.apps.service.schemas import JSON
from vidseek.store.video_store import StoreUnavailableError

log = logging.getLogger(__name__)


def bad(status: int, detail: str) -> NoReturn:
    raise HTTPException(status, detail)


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
