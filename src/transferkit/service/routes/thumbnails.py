"""Thumbnails of indexed images, by index id only, so no request can name a file."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from transferkit.service.http_errors import INVALID, error_doc
from transferkit.service.state import ServiceStateDep
from transferkit.service.thumbnails import THUMBNAIL_SIZES

MAX_ID = 2 ** 63 - 1  # index ids are int64

router = APIRouter()


@router.get("/thumbnails/{item_id}", tags=["images"],
            responses={200: {"content": {"image/jpeg": {}}},
                       404: error_doc("no index loaded, no such id, or its file is unreadable"),
                       **INVALID})
async def thumbnail(state: ServiceStateDep,
                    item_id: int = PathParam(..., ge=0, le=MAX_ID,
                                             description="id from a search hit"),
                    size: int = Query(128, description="longest side in pixels",
                                      json_schema_extra={"enum": list(THUMBNAIL_SIZES)})
                    ) -> Response:
    """JPEG thumbnail of an indexed image (only files of the index, by id)."""
    if size not in THUMBNAIL_SIZES:  # the spec's enum; a query string is text, so checked here
        raise RequestValidationError([{"loc": ("query", "size"), "type": "enum",
                                       "msg": f"Input should be one of {list(THUMBNAIL_SIZES)}"}])
    if state.thumbnails is None:
        raise HTTPException(404, "no index loaded")
    data = state.thumbnails.cached(item_id, size) or await anyio.to_thread.run_sync(
        state.thumbnails.get, item_id, size, limiter=state.thumbnail_limiter)
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "public, max-age=3600"})
