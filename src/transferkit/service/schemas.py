"""Response shapes: they make the OpenAPI spec precise and keep the JSON stable."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Prediction(BaseModel):
    label: str
    probability: float = Field(ge=0, le=1)
    index: int | None = Field(None, description="ImageNet class index (ImageNet mode only)")


class ImageInfo(BaseModel):
    filename: str
    width: int
    height: int


class PredictResponse(BaseModel):
    source: str = Field(description="'imagenet' (backbone's own head) or 'model' (trained)")
    image: ImageInfo
    predictions: list[Prediction]
    elapsed_ms: float


class EmbedResponse(BaseModel):
    image: ImageInfo
    backbone: str
    dim: int
    embedding: list[float]
    elapsed_ms: float


class SearchHit(BaseModel):
    id: int
    name: str = Field(description="file name of the indexed image")
    path: str = Field(description="path as recorded in the index")
    distance: float
    thumbnail_url: str


class SearchResponse(BaseModel):
    image: ImageInfo
    hits: list[SearchHit]
    elapsed_ms: float


class TextHit(BaseModel):
    id: int
    text: str
    distance: float
    score: float = Field(description="cosine similarity (cosine index), else 1/(1+distance)")


class TextSearchResponse(BaseModel):
    query: str
    encoder: str
    hits: list[TextHit]
    elapsed_ms: float


class AudioSearchHit(BaseModel):
    id: int
    path: str
    distance: float
    score: float = Field(description="cosine similarity (cosine index), else 1/(1+distance)")


class AudioSearchResponse(BaseModel):
    name: str
    encoder: str
    hits: list[AudioSearchHit]
    elapsed_ms: float
    licence_note: str | None = Field(None, description="set when the encoder's weights carry "
                                                       "a restrictive licence (speech)")


class AudioPrediction(BaseModel):
    name: str
    encoder: str
    top_k: list[dict[str, Any]]
    elapsed_ms: float
    licence_note: str | None = None


class ModelInfo(BaseModel):
    directory: str
    classes: list[str]
    backbone: str | None = None


class IndexInfo(BaseModel):
    path: str
    size: int
    backbone: str | None = None


class Health(BaseModel):
    status: str
    backbone: str
    model: ModelInfo | None
    index: IndexInfo | None
    text_index: IndexInfo | None = Field(None, description="text index (backbone = encoder)")
    audio_index: IndexInfo | None = Field(None, description="audio index (backbone = encoder)")
    audio_model: ModelInfo | None = Field(None, description="audio classifier (backbone = "
                                                            "encoder)")
    max_upload_bytes: int
    pending: int = Field(description="requests waiting for the model right now")


class ReportResponse(BaseModel):
    model: ModelInfo
    report: dict[str, Any]
    images: dict[str, str] = Field(description="name -> URL of report pictures that exist")


class ErrorResponse(BaseModel):
    detail: str
