"""The one place where exceptions become HTTP answers, and where routes document those answers.

Every error answer is ``{"detail": "<reason>"}``, so clients need one way to read them.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from transferkit.errors import ServiceBusy
from transferkit.service.schemas import ErrorResponse
from transferkit.service.thumbnails import ThumbnailNotFound
from transferkit.service.uploads import UploadError

log = logging.getLogger("transferkit.service")


def error_doc(description: str) -> dict[str, Any]:
    """OpenAPI ``responses=`` entry for an error answer."""
    return {"model": ErrorResponse, "description": description}


# The answers any route that takes an image upload can give besides 200 and 422.
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    code: error_doc(text)
    for code, text in [(400, "corrupt or empty image"), (413, "upload too large"),
                       (415, "not an image"), (503, "too many requests waiting")]}


async def upload_error(_request: Request, exc: UploadError) -> JSONResponse:
    """The client's file is at fault: its status (400/413/415) and reason."""
    return JSONResponse({"detail": exc.message}, status_code=exc.status_code)


async def service_busy(_request: Request, exc: ServiceBusy) -> JSONResponse:
    """The model queue is full: 503 with Retry-After, so clients back off instead of failing."""
    return JSONResponse({"detail": f"service busy: {exc}; retry shortly"}, status_code=503,
                        headers={"Retry-After": "1"})


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
    app.add_exception_handler(UploadError, upload_error)
    app.add_exception_handler(ServiceBusy, service_busy)
    app.add_exception_handler(ThumbnailNotFound, thumbnail_not_found)
    app.add_exception_handler(Exception, internal_error)
