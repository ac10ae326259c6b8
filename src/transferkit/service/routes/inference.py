"""Model outputs for one uploaded image: top-k classes and the backbone embedding."""

from __future__ import annotations

import time

from fastapi import APIRouter, Query, UploadFile

from transferkit.service.http_errors import UPLOAD_ERRORS
from transferkit.service.routes.common import IMAGE_FILE, elapsed_ms, image_info, read_image
from transferkit.service.schemas import EmbedResponse, PredictResponse
from transferkit.service.state import ServiceStateDep

router = APIRouter()


@router.post("/api/predict", response_model=PredictResponse, responses=UPLOAD_ERRORS,
             tags=["images"])
async def predict(state: ServiceStateDep, file: UploadFile = IMAGE_FILE,
                  k: int = Query(5, ge=1, le=50, description="how many classes")
                  ) -> PredictResponse:
    """Top-k classes: the trained model's if one is loaded, else ImageNet's."""
    image = await read_image(file, state)
    start = time.perf_counter()
    source, rows = await state.engine.run(state.engine.predict, image, k)
    return PredictResponse(source=source, image=image_info(file, image), predictions=rows,
                           elapsed_ms=elapsed_ms(start))


@router.post("/api/embed", response_model=EmbedResponse, responses=UPLOAD_ERRORS,
             tags=["images"])
async def embed(state: ServiceStateDep, file: UploadFile = IMAGE_FILE) -> EmbedResponse:
    """Pooled penultimate features of the backbone (the transfer-learning embedding)."""
    image = await read_image(file, state)
    start = time.perf_counter()
    vector = await state.engine.run(state.engine.embed, image)
    return EmbedResponse(image=image_info(file, image), backbone=state.backbone_name,
                         dim=len(vector), embedding=vector, elapsed_ms=elapsed_ms(start))
