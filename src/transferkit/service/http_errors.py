"""The one place where exceptions become HTTP answers, and where routes document those answers.

Every error answer is ``{"detail": "<reason>"}`` (validation errors included, as one line),
so clients need one way to read them, and the OpenAPI document says so for every status.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from transferkit.errors import ServiceBusy
from transferkit.service.schemas import ErrorResponse
from transferkit.service.thumbnails import ThumbnailNotFound
from transferkit.service.uploads import UploadError

log = logging.getLogger("transferkit.service")


def error_doc(description: str) -> dict[str, Any]:
    """OpenAPI ``responses=`` entry for an error answer."""
    return {"model": ErrorResponse, "description": description}


INVALID = {422: error_doc("a parameter or the upload field is missing or out of range")}
BUSY = {503: error_doc("too many requests waiting for the model (Retry-After: the seconds "
                        "the queue needs to drain, 1 to 30)")}
UNAUTHORIZED = {401: error_doc("missing or wrong bearer token (when the service has one)")}

# The answers any route that takes an image upload can give besides 200.
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_doc("empty, truncated or corrupt image, or a bad Content-Length"),
    413: error_doc("upload over the size limit, or more decoded pixels than the limit"),
    415: error_doc("not an image (judged by decoding, not by name or content type)"),
    **INVALID, **BUSY}


def format_validation_error(exc: RequestValidationError) -> str:
    """``query k: Input should be less than or equal to 50; ...`` (one line)."""
    parts = []
    for error in exc.errors():
        where = " ".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)[:500] or "invalid request"


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """A request that does not fit the spec: 422 with every problem on one line."""
    return JSONResponse({"detail": format_validation_error(exc)}, status_code=422)


async def upload_error(_request: Request, exc: UploadError) -> JSONResponse:
    """The client's file is at fault: its status (400/413/415) and reason."""
    return JSONResponse({"detail": exc.message}, status_code=exc.status_code)


async def service_busy(_request: Request, exc: ServiceBusy) -> JSONResponse:
    """The model queue is full: 503 with Retry-After, so clients back off instead of failing."""
    return busy_response(str(exc), exc.retry_after)


def busy_response(reason: str, retry_after: int) -> JSONResponse:
    """503 with ``Retry-After`` in the one error shape (also sent before an upload is read)."""
    return JSONResponse({"detail": f"service busy: {reason}; retry shortly"}, status_code=503,
                        headers={"Retry-After": str(retry_after)})


async def thumbnail_not_found(_request: Request, exc: ThumbnailNotFound) -> JSONResponse:
    """Unknown id or unreadable indexed file: 404, the same as any id not in the index."""
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback, answered as JSON without internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": f"internal error ({exc.__class__.__name__})"},
                        status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app``."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(UploadError, upload_error)
    app.add_exception_handler(ServiceBusy, service_busy)
    app.add_exception_handler(ThumbnailNotFound, thumbnail_not_found)
    app.add_exception_handler(Exception, internal_error)
