"""Dense predictions for one uploaded image: a segmentation model's mask, a localiser's box,
each with an overlay picture (served with ``serve --model SEGMENTER`` / ``LOCALIZER``).

Uploads follow /api/predict's rules (same limits and 4xx answers); the image is decoded at
full size (no JPEG draft scaling), so fractions and boxes are in the uploaded image's pixels.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, UploadFile

from transferkit.service.http_errors import UPLOAD_ERRORS, error_doc
from transferkit.service.overlays import localize_image, segment_image
from transferkit.service.routes.common import IMAGE_FILE, elapsed_ms, image_info, read_image
from transferkit.service.schemas import LocalizeResponse, SegmentResponse
from transferkit.service.state import ServiceStateDep

router = APIRouter(tags=["dense"])


@router.post("/api/segment", response_model=SegmentResponse,
             responses={**UPLOAD_ERRORS, 404: error_doc("no segmentation model loaded")})
async def segment(state: ServiceStateDep, file: UploadFile = IMAGE_FILE) -> SegmentResponse:
    """Per-pixel classes: the share of the image each class covers, the mask and an
    overlay (base64 PNGs)."""
    model = state.engine.segmenter
    if model is None:
        raise HTTPException(404, "segmentation unavailable: the service was started without "
                                 "a segmentation model (transferkit serve --model MODEL_DIR)")
    image = await read_image(file, state, full_size=True)
    start = time.perf_counter()
    found = await state.engine.run(segment_image, model, image)
    return SegmentResponse(image=image_info(file, image), elapsed_ms=elapsed_ms(start), **found)


@router.post("/api/localize", response_model=LocalizeResponse,
             responses={**UPLOAD_ERRORS, 404: error_doc("no localisation model loaded")})
async def localize(state: ServiceStateDep, file: UploadFile = IMAGE_FILE) -> LocalizeResponse:
    """The one object's class and box (x, y, w, h in the upload's pixels), with an overlay."""
    model = state.engine.localizer
    if model is None:
        raise HTTPException(404, "localisation unavailable: the service was started without "
                                 "a localisation model (transferkit serve --model MODEL_DIR)")
    image = await read_image(file, state, full_size=True)
    start = time.perf_counter()
    found = await state.engine.run(localize_image, model, image)
    return LocalizeResponse(image=image_info(file, image), elapsed_ms=elapsed_ms(start),
                            **found)
