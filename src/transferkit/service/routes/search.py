"""Nearest neighbours: indexed images similar to an upload, indexed texts similar to a query."""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, HTTPException, Query, UploadFile

from transferkit.service.http_errors import BUSY, INVALID, UPLOAD_ERRORS, error_doc
from transferkit.service.routes.common import IMAGE_FILE, elapsed_ms, image_info, read_image
from transferkit.service.schemas import SearchHit, SearchResponse, TextHit, TextSearchResponse
from transferkit.service.state import ServiceStateDep

MAX_QUERY_CHARS = 2000  # a paragraph; longer texts are truncated by the encoders anyway

router = APIRouter()


@router.post("/api/search", response_model=SearchResponse,
             responses={**UPLOAD_ERRORS, 404: error_doc("no index loaded")}, tags=["images"])
async def search(state: ServiceStateDep, file: UploadFile = IMAGE_FILE,
                 k: int = Query(8, ge=1, le=100, description="how many neighbours")
                 ) -> SearchResponse:
    """Most similar indexed images, nearest first, with thumbnail URLs."""
    if state.engine.index is None:
        raise HTTPException(404, "search unavailable: the service was started without an "
                                 "index (transferkit serve --index INDEX)")
    image = await read_image(file, state)
    start = time.perf_counter()
    hits = await state.engine.run(state.engine.search, image, k)
    return SearchResponse(image=image_info(file, image), elapsed_ms=elapsed_ms(start), hits=[
        SearchHit(id=int(h.id), name=os.path.basename(str(h.path)), path=str(h.path),
                  distance=float(h.distance), thumbnail_url=f"/thumbnails/{int(h.id)}")
        for h in hits])


@router.get("/api/search-text", response_model=TextSearchResponse,
            responses={400: error_doc("blank query, or (TF-IDF) no known word"),
                       404: error_doc("no text index loaded"), **INVALID, **BUSY},
            tags=["texts"])
async def search_text(state: ServiceStateDep,
                      q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS,
                                     description="the query text",
                                     examples=["a judge threw out the case"]),
                      k: int = Query(8, ge=1, le=100, description="how many neighbours")
                      ) -> TextSearchResponse:
    """Most similar indexed texts to the query, nearest first."""
    text_index = state.engine.text_index
    if text_index is None:
        raise HTTPException(404, "text search unavailable: the service was started "
                                 "without a text index (transferkit serve --text-index "
                                 "INDEX)")
    if not q.strip():
        raise HTTPException(400, "empty query")
    start = time.perf_counter()
    try:
        hits = await state.engine.run(state.engine.search_text, q, k)
    except ValueError as exc:  # a query the encoder cannot place (TF-IDF: no known word)
        raise HTTPException(400, str(exc)) from None
    return TextSearchResponse(query=q, encoder=str(text_index.spec.get("name")),
                              elapsed_ms=elapsed_ms(start), hits=[
        TextHit(id=h.id, text=h.text, distance=h.distance, score=h.score) for h in hits])
