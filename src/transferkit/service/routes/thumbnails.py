"""Thumbnails of indexed images, by index id only, so no request can name a file."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import Response

from transferkit.service.http_errors import error_doc
from transferkit.service.state import ServiceStateDep
from transferkit.service.thumbnails import THUMBNAIL_SIZES

router = APIRouter()


@router.get("/thumbnails/{item_id}", tags=["images"],
            responses={200: {"content": {"image/jpeg": {}}}, 404: error_doc("not in the index")})
async def thumbnail(state: ServiceStateDep,
                    item_id: int = PathParam(..., ge=0, description="id from a search hit"),
                    size: int = Query(128, description=f"one of {list(THUMBNAIL_SIZES)}")
                    ) -> Response:
    """JPEG thumbnail of an indexed image (only files of the index, by id)."""
    if state.thumbnails is None:
        raise HTTPException(404, "no index loaded")
    if size not in THUMBNAIL_SIZES:
        raise HTTPException(400, f"size must be one of {list(THUMBNAIL_SIZES)}")
    data = await anyio.to_thread.run_sync(state.thumbnails.get, item_id, size,
                                          limiter=state.decode_limiter)
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "public, max-age=3600"})
