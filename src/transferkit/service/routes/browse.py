"""Browsing the indexed collection: paged items, one item and its neighbours, the 2-D map of
the embedding space, and near-duplicate groups. Items are addressed by index id only."""

from __future__ import annotations

import json
import time

import anyio
import numpy as np
from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response

from transferkit.service.catalog import ItemCatalog
from transferkit.service.http_errors import INVALID, error_doc
from transferkit.service.routes.common import elapsed_ms
from transferkit.service.schemas import (
    DuplicateGroupInfo,
    DuplicatesResponse,
    Item,
    ItemDetail,
    ItemsResponse,
    MapResponse,
    SearchHit,
    SimilarResponse,
)
from transferkit.service.state import ServiceState, ServiceStateDep

MAX_ID = 2 ** 63 - 1
NO_INDEX = "no index loaded (transferkit serve --index INDEX, or serve DATA_FOLDER)"
ITEM_ID = PathParam(..., ge=0, le=MAX_ID, description="index id (from /api/items)")

router = APIRouter(tags=["collection"])


def _catalog(state: ServiceState) -> ItemCatalog:
    if state.catalog is None:
        raise HTTPException(404, NO_INDEX)
    return state.catalog


def _detail(catalog: ItemCatalog, position: int) -> ItemDetail:
    item_id = int(catalog.ids[position])
    return ItemDetail(id=item_id, name=catalog.names[position], label=catalog.label(position),
                      path=catalog.relative[position], thumbnail_url=f"/thumbnails/{item_id}")


def _position(catalog: ItemCatalog, item_id: int) -> int:
    position = catalog.position(item_id)
    if position is None:
        raise HTTPException(404, f"no indexed image with id {item_id}")
    return position


@router.get("/api/items", response_model=ItemsResponse,
            responses={404: error_doc("no index loaded"), **INVALID})
async def items(state: ServiceStateDep,
                offset: int = Query(0, ge=0, le=MAX_ID, description="first item to list"),
                limit: int = Query(100, ge=1, le=1000, description="how many items"),
                label: str | None = Query(None, max_length=500,
                                          description="only items with this label"),
                q: str | None = Query(None, max_length=500,
                                      description="only file names containing this text "
                                                  "(case-insensitive)")) -> ItemsResponse:
    """A page of the indexed images, in id order, optionally filtered by label and name."""
    catalog = _catalog(state)
    page = catalog.page(offset, limit, label, q)
    return ItemsResponse(total=page.total, offset=offset, labels=catalog.counts, items=[
        Item(id=int(catalog.ids[p]), name=catalog.names[p], label=catalog.label(p))
        for p in page.positions.tolist()])


@router.get("/api/items/{item_id}", response_model=ItemDetail,
            responses={404: error_doc("no index loaded, or no such id"), **INVALID})
async def item(state: ServiceStateDep, item_id: int = ITEM_ID) -> ItemDetail:
    """One indexed image: name, label and its path relative to the indexed folder."""
    catalog = _catalog(state)
    return _detail(catalog, _position(catalog, item_id))


@router.get("/api/items/{item_id}/similar", response_model=SimilarResponse,
            responses={404: error_doc("no index loaded, or no such id"), **INVALID})
async def similar(state: ServiceStateDep, item_id: int = ITEM_ID,
                  k: int = Query(8, ge=1, le=100, description="how many neighbours")
                  ) -> SimilarResponse:
    """The indexed images nearest to an indexed one (its stored vector: no upload, no model)."""
    catalog = _catalog(state)
    position = _position(catalog, item_id)
    index = state.engine.index
    start = time.perf_counter()

    def nearest() -> list:
        vector = index.index.vectors(np.asarray([item_id], np.int64))
        found = index.search_vectors(vector, min(k + 1, len(index)))[0]
        return [h for h in found if int(h.id) != item_id][:k]

    hits = await anyio.to_thread.run_sync(nearest)
    rows = []
    for hit in hits:
        shown = _detail(catalog, _position(catalog, int(hit.id)))
        rows.append(SearchHit(id=shown.id, name=shown.name, path=shown.path,
                              distance=float(hit.distance), thumbnail_url=shown.thumbnail_url))
    return SimilarResponse(item=_detail(catalog, position), hits=rows,
                           elapsed_ms=elapsed_ms(start))


@router.get("/api/map", response_model=MapResponse,
            responses={202: {"model": MapResponse,
                             "description": "still computing: status 'computing' with its "
                                            "progress; ask again (Retry-After: 1)"},
                       404: error_doc("no index loaded"),
                       500: error_doc("the projection failed (the reason is in the server "
                                      "log and in detail)")})
async def embedding_map(state: ServiceStateDep) -> Response:
    """Every indexed image as a point of a 2-D projection of the embeddings, with its label
    and file name.

    The first request starts the projection (answered 202 with progress until it is done);
    the result is cached beside the index and reused while the index is unchanged.
    """
    store = state.map_store
    if store is None or state.catalog is None:
        raise HTTPException(404, NO_INDEX)
    store.start()
    if store.state == "failed":
        raise HTTPException(500, f"embedding map failed: {store.error}")
    if store.state != "ready":
        body = MapResponse(status="computing", method=store.method,
                           progress=min(store.progress, 1.0))
        return JSONResponse(body.model_dump(), status_code=202, headers={"Retry-After": "1"})
    if store.payload is None:  # serialised once: 60,000 points are then served as bytes
        store.payload = _map_payload(state.catalog, store)
    return Response(store.payload, media_type="application/json")


def _map_payload(catalog: ItemCatalog, store) -> bytes:
    points = []
    coordinates = np.round(store.xy.astype(np.float64), 4).tolist()
    for item_id, (x, y) in zip(store.ids.tolist(), coordinates):
        position = catalog.position(item_id)
        if position is not None:
            points.append({"id": item_id, "x": x, "y": y, "label": catalog.label(position),
                           "name": catalog.names[position]})
    return json.dumps({"status": "ready", "method": store.method, "progress": 1.0,
                       "cached": store.from_cache, "points": points},
                      separators=(",", ":")).encode()


@router.get("/api/duplicates", response_model=DuplicatesResponse,
            responses={404: error_doc("no index loaded"), **INVALID})
async def duplicates(state: ServiceStateDep,
                     threshold: float = Query(0.1, ge=0, le=2,
                                              description="largest distance (cosine: 1 - "
                                                          "similarity) between duplicates"),
                     limit: int = Query(50, ge=1, le=500, description="groups to return"),
                     per_group: int = Query(30, ge=1, le=1000,
                                            description="images listed per group (links "
                                                        "chain, so groups can be large)")
                     ) -> DuplicatesResponse:
    """Near-duplicate groups of the index (``transferkit dedupe`` on the indexed vectors),
    largest first; each threshold's answer is kept, so moving a slider back is instant."""
    catalog = _catalog(state)
    start = time.perf_counter()
    groups = await anyio.to_thread.run_sync(state.duplicate_groups, round(threshold, 3))
    shown = [DuplicateGroupInfo(size=len(g.ids), max_distance=g.max_distance, items=[
        _detail(catalog, p) for p in (catalog.position(i) for i in g.ids[:per_group])
        if p is not None]) for g in groups[:limit]]
    return DuplicatesResponse(threshold=threshold, total_groups=len(groups), groups=shown,
                              elapsed_ms=elapsed_ms(start))
