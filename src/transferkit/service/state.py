"""What every route needs (loaded artefacts and limits), built once and reached by dependency."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, Request

from transferkit.service.catalog import ItemCatalog
from transferkit.service.engine import InferenceEngine
from transferkit.service.mistakes import EvaluationPredictions
from transferkit.service.projection import MapStore
from transferkit.service.schemas import IndexInfo, ModelInfo
from transferkit.service.thumbnails import ThumbnailStore


@dataclass(frozen=True)
class ServiceState:
    """One app's loaded models and limits; routes read it instead of closing over create_app."""

    engine: InferenceEngine
    backbone_name: str
    model_info: ModelInfo | None
    index_info: IndexInfo | None
    text_index_info: IndexInfo | None
    thumbnails: ThumbnailStore | None
    max_upload_bytes: int
    max_image_pixels: int
    decode_limiter: anyio.CapacityLimiter  # upload decoding
    # Thumbnails render on their own threads, so they never wait behind upload decoding.
    thumbnail_limiter: anyio.CapacityLimiter
    max_pending: int  # uploads waiting to be decoded beyond this get 503
    audio_index_info: IndexInfo | None = None
    audio_model_info: ModelInfo | None = None
    catalog: ItemCatalog | None = None  # the collection view's arrays (with an index)
    map_store: MapStore | None = None  # the embedding map (with an index)
    predictions: EvaluationPredictions | None = None  # the model's evaluation (with a model)
    duplicate_groups: Callable[[float], list] | None = None  # threshold -> groups (cached)
    segmenter_info: ModelInfo | None = None  # the served segmentation model
    localizer_info: ModelInfo | None = None  # the served localisation model
    gallery_dir: str | None = None  # transferkit gallery's output, served under /lab/


async def get_state(request: Request) -> ServiceState:
    """The state of the app serving ``request``; async so FastAPI needs no thread to call it."""
    return request.app.state.service


ServiceStateDep = Annotated[ServiceState, Depends(get_state)]
